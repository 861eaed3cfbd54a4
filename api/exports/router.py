"""GET /users/me/export: the caller's personal data as a JSON file."""

from fastapi import APIRouter, Response

from api.db import SessionDep
from api.errors import Unauthorized
from api.exports import service as export_service
from api.exports.models import PersonalDataExport
from api.openapi import error_responses
from api.users.auth import CurrentUser

router = APIRouter(prefix="/users/me", tags=["users"])


@router.get(
    "/export",
    summary="Export your personal data",
    response_model=PersonalDataExport,
    responses={
        200: {
            "description": "A JSON file (attachment) of the caller's personal data",
            "content": {"application/json": {}},
            "headers": {
                "Content-Disposition": {
                    "description": 'attachment; filename="event-manager-export-<date>.json"',
                    "schema": {"type": "string"},
                }
            },
        },
        **error_responses(Unauthorized),
    },
)
async def export_my_data(user: CurrentUser, session: SessionDep) -> Response:
    """Download every record the service keeps about the caller: account, registrations,
    events created, notifications and their settings, audit entries naming the caller.
    Passwords, tokens and secrets are never part of it."""
    export = await export_service.export_user_data(session, user=user)
    filename = f"event-manager-export-{export.exported_at:%Y-%m-%d}.json"
    return Response(
        export.model_dump_json(),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )
