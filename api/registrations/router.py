"""Registrations: taking and giving up a seat, the attendee list, check-in (by registration or
by check-in code), the caller's own registrations and their tickets. The rules are in
api/registrations/service.py, the reads in api/registrations/queries.py."""

import csv
import io
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from api.db import SessionDep
from api.errors import Forbidden, Unauthorized, error_responses
from api.events import service as event_service
from api.events.dependencies import OWNER_ERRORS, StaffedEventDep
from api.pagination import Page, PageParamsDep
from api.registrations import checkin
from api.registrations import queries as registration_queries
from api.registrations import service as registration_service
from api.registrations.models import (
    Attendee,
    CheckInByCode,
    OwnRegistration,
    RegistrationOwnerView,
    RegistrationPublic,
    RegistrationStatus,
)
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users.auth import CurrentUser, VerifiedUser

# The same tags as before the move: operation ids (`<tag>-<handler>`) stay as they were.
router = APIRouter(prefix="/events", tags=["events"])
me_router = APIRouter(prefix="/users/me", tags=["registrations"])

CSV_COLUMNS = (
    "registration_id",
    "status",
    "waitlist_position",
    "user_id",
    "nickname",
    "first_name",
    "last_name",
    "is_professional",
    "registered_at",
    "checked_in_at",
)


def _registration(registration: Any, position: int | None) -> RegistrationPublic:
    return RegistrationPublic.model_validate(registration, update={"waitlist_position": position})


@router.post(
    "/{event_id}/registrations",
    response_model=RegistrationOwnerView,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        Unauthorized,
        Forbidden,
        event_service.EventNotFound,
        registration_service.AlreadyRegistered,
        registration_service.EventNotOpen,
    ),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def register_for_event(
    event_id: uuid.UUID, user: VerifiedUser, session: SessionDep
) -> RegistrationOwnerView:
    """Take a seat, or a place on the waitlist when the event is full (verified users); a seat
    comes with its check-in code."""
    registration, position = await registration_service.register_for_event(
        session, user=user, event_id=event_id
    )
    return RegistrationOwnerView.model_validate(
        registration, update={"waitlist_position": position}
    )


@router.delete(
    "/{event_id}/registrations/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        Unauthorized, event_service.EventNotFound, registration_service.RegistrationNotFound
    ),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def unregister_from_event(
    event_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Response:
    """Give up one's registration; the first on the waitlist takes the freed seat."""
    await registration_service.unregister_from_event(session, user=user, event_id=event_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _attendees_csv(rows: Any) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for registration, user, position in rows:
        writer.writerow(
            [
                registration.id,
                registration.status,
                position or "",
                user.id,
                user.nickname,
                user.first_name or "",
                user.last_name or "",
                str(user.is_professional).lower(),
                registration.created_at.isoformat(),
                registration.checked_in_at.isoformat() if registration.checked_in_at else "",
            ]
        )
    return out.getvalue()


@router.get(
    "/{event_id}/registrations",
    response_model=Page[Attendee],
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **error_responses(*OWNER_ERRORS),
    },
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def list_event_registrations(
    event: StaffedEventDep,
    session: SessionDep,
    params: PageParamsDep,
    request: Request,
    registration_status: Annotated[
        RegistrationStatus | None,
        Query(alias="status", description="default: CONFIRMED and WAITLISTED"),
    ] = None,
) -> Page[Attendee] | Response:
    """The attendee list (creator, managers, admins): confirmed first, then the waitlist in
    order. With `Accept: text/csv`, every matching registration as CSV (no paging)."""
    if "text/csv" in request.headers.get("accept", ""):
        rows = await registration_queries.all_attendees(
            session, event=event, status=registration_status
        )
        return Response(
            _attendees_csv(rows),
            media_type="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="event-{event.id}-registrations.csv"'
            },
        )
    rows, total = await registration_queries.list_attendees(
        session, event=event, params=params, status=registration_status
    )
    return Page[Attendee].build(
        [registration_service.attendee(*row) for row in rows],
        total=total,
        params=params,
        request=request,
    )


@router.post(
    "/{event_id}/registrations/{registration_id}/check-in",
    response_model=RegistrationPublic,
    responses=error_responses(
        *OWNER_ERRORS,
        registration_service.RegistrationNotFound,
        registration_service.AlreadyCheckedIn,
        registration_service.NotConfirmed,
    ),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def check_in_registration(
    registration_id: uuid.UUID, event: StaffedEventDep, session: SessionDep
) -> RegistrationPublic:
    """Mark a confirmed attendee as arrived (creator, managers, admins)."""
    registration = await registration_service.check_in(
        session, event=event, registration_id=registration_id
    )
    return _registration(registration, None)


@router.post(
    "/{event_id}/check-in",
    response_model=Attendee,
    responses=error_responses(
        *OWNER_ERRORS,
        registration_service.CheckinCodeNotFound,
        registration_service.AlreadyCheckedIn,
        registration_service.NotConfirmed,
    ),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def check_in_by_code(
    check_in_in: CheckInByCode, event: StaffedEventDep, session: SessionDep
) -> Attendee:
    """Mark the holder of a check-in code as arrived (creator, managers, admins); the code may be
    typed in any case, with spaces or hyphens, O for 0 and I or L for 1."""
    registration, registrant = await registration_service.check_in_by_code(
        session, event=event, code=check_in_in.code
    )
    return registration_service.attendee(registration, registrant)


@me_router.get(
    "/registrations",
    response_model=Page[OwnRegistration],
    responses=error_responses(Unauthorized),
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def list_my_registrations(
    user: CurrentUser, session: SessionDep, params: PageParamsDep, request: Request
) -> Page[OwnRegistration]:
    """The caller's registrations, newest first, each with its event and place in line."""
    rows, total = await registration_queries.list_user_registrations(
        session, user=user, params=params
    )
    items = [OwnRegistration.of(*row) for row in rows]
    return Page[OwnRegistration].build(items, total=total, params=params, request=request)


@me_router.get(
    "/registrations/{registration_id}",
    response_model=OwnRegistration,
    responses=error_responses(Unauthorized, registration_service.RegistrationNotFound),
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def get_my_registration(
    registration_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> OwnRegistration:
    """One of the caller's registrations, with its event, place in line and check-in code."""
    row = await registration_queries.get_user_registration(
        session, user=user, registration_id=registration_id
    )
    return OwnRegistration.of(*row)


@me_router.get(
    "/registrations/{registration_id}/ticket.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses(
            Unauthorized,
            registration_service.RegistrationNotFound,
            registration_service.NotConfirmed,
        ),
    },
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def get_my_ticket(
    registration_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Response:
    """The ticket of a confirmed registration: a QR code holding its check-in code."""
    code = await registration_queries.get_ticket_code(
        session, user=user, registration_id=registration_id
    )
    # A few milliseconds of CPU: drawn off the event loop, which other requests share.
    png = await run_in_threadpool(checkin.ticket_png, code)
    return Response(
        png,
        media_type="image/png",
        headers={"Cache-Control": "private, no-store"},
    )
