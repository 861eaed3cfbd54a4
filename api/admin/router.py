"""GET /admin/stats."""

from fastapi import APIRouter
from sqlmodel import Field, SQLModel

from api.admin import examples as admin_examples
from api.admin import service as admin_service
from api.db import SessionDep
from api.errors import Forbidden, Unauthorized
from api.examples import examples
from api.openapi import error_responses
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users.auth import AdminUser

router = APIRouter(prefix="/admin", tags=["administration"])


class UserStats(SQLModel):
    total: int
    by_role: dict[str, int]
    verified: int
    locked: int
    professional: int


class StatusCounts(SQLModel):
    total: int
    by_status: dict[str, int]


class MonthCounts(SQLModel):
    month: str = Field(description="YYYY-MM, a UTC month")
    events_created: int
    events_published: int
    registrations: int = Field(description="Registrations made in the month")
    check_ins: int


class Stats(SQLModel):
    model_config = examples(admin_examples.STATS)

    users: UserStats
    events: StatusCounts
    registrations: StatusCounts
    by_month: list[MonthCounts] = Field(
        description="The last 12 UTC months, oldest first, ending with the current one"
    )


@router.get(
    "/stats",
    summary="Get platform statistics",
    response_model=Stats,
    responses=error_responses(Unauthorized, Forbidden),
    openapi_extra=token_scope(Scope.ADMIN_READ),
)
async def get_admin_stats(_: AdminUser, session: SessionDep) -> Stats:
    """Users by role and state, events and registrations by status, and the last 12 months'
    activity (admins)."""
    return Stats.model_validate(await admin_service.get_stats(session))
