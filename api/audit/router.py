"""GET /audit-log: the audit trail, for admins. It has no update or delete route."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.audit import service as audit_service
from api.audit.models import AuditAction, AuditLogPage, AuditLogPublic
from api.db import SessionDep
from api.errors import Forbidden, Unauthorized
from api.events.models import EventTime
from api.openapi import error_responses
from api.pagination import PageParamsDep
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users.auth import AdminUser

router = APIRouter(prefix="/audit-log", tags=["administration"])


@router.get(
    "",
    summary="List the audit log",
    response_model=AuditLogPage,
    responses=error_responses(Unauthorized, Forbidden),
    openapi_extra=token_scope(Scope.ADMIN_READ),
)
async def list_audit_log(
    _: AdminUser,
    session: SessionDep,
    params: PageParamsDep,
    request: Request,
    actor_id: uuid.UUID | None = None,
    target_id: uuid.UUID | None = None,
    action: AuditAction | None = None,
    since: Annotated[EventTime | None, Query(description="at or after")] = None,
    until: Annotated[EventTime | None, Query(description="before")] = None,
) -> AuditLogPage:
    """Audit entries, newest first, filtered (admins)."""
    entries, total = await audit_service.list_entries(
        session,
        params=params,
        actor_id=actor_id,
        target_id=target_id,
        action=action,
        since=since,
        until=until,
    )
    return AuditLogPage.build(
        [AuditLogPublic.model_validate(e) for e in entries],
        total=total,
        params=params,
        request=request,
    )
