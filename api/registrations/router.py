"""Registrations: taking and giving up a seat, seat offers (accept, decline), the attendee list,
check-in (by registration or by check-in code), the caller's own registrations and their
tickets. The rules are in api/registrations/service.py, waitlist.py and offers.py, the reads in
api/registrations/queries.py. The routes on one event settle its lapsed offers first
(api/registrations/dependencies.py)."""

import csv
import io
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from api.db import SessionDep
from api.errors import Forbidden, Unauthorized
from api.events import queries as event_queries
from api.events.dependencies import OWNER_ERRORS
from api.openapi import error_responses
from api.pagination import PageParamsDep
from api.registrations import checkin, offers, waitlist
from api.registrations import queries as registration_queries
from api.registrations import service as registration_service
from api.registrations.dependencies import RegistrantEventDep, SettledStaffedEventDep
from api.registrations.models import (
    Attendee,
    AttendeePage,
    CheckInByCode,
    OwnEventRegistration,
    OwnRegistration,
    OwnRegistrationPage,
    RegistrationOwnerView,
    RegistrationPublic,
    RegistrationStatus,
)
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users.auth import CurrentUser, VerifiedUser

# The same tags as before the move: generated clients group operations by tag, so these stay
# in their `events` module.
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
    summary="Register for an event",
    response_model=RegistrationOwnerView,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        Unauthorized,
        Forbidden,
        event_queries.EventNotFound,
        registration_service.AlreadyRegistered,
        registration_service.EventNotOpen,
    ),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def register_for_event(
    user: VerifiedUser, event: RegistrantEventDep, session: SessionDep
) -> RegistrationOwnerView:
    """Take a seat, or a place on the waitlist when the event is full (verified users); a seat
    comes with its check-in code."""
    registration, position = await registration_service.register_for_event(
        session, user=user, event=event
    )
    return RegistrationOwnerView.model_validate(
        registration, update={"waitlist_position": position}
    )


@router.delete(
    "/{event_id}/registrations/me",
    summary="Give up your registration",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        Unauthorized, event_queries.EventNotFound, registration_service.RegistrationNotFound
    ),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def unregister_from_event(
    user: CurrentUser, event: RegistrantEventDep, session: SessionDep
) -> Response:
    """Give up one's registration (an offer: declined); a freed seat goes to the head of the
    waitlist, at once or as an offer, as the event's waitlist_mode says."""
    await registration_service.unregister_from_event(session, user=user, event=event)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


OWN_REGISTRATION_ERRORS = (
    Unauthorized,
    event_queries.EventNotFound,
    registration_service.RegistrationNotFound,
)
OFFER_ERRORS = (*OWN_REGISTRATION_ERRORS, offers.OfferExpired, offers.NoOpenOffer)


def _owner_view(registration: Any, position: int | None = None) -> RegistrationOwnerView:
    return RegistrationOwnerView.model_validate(
        registration, update={"waitlist_position": position}
    )


@router.get(
    "/{event_id}/registrations/me",
    summary="Get your registration for an event",
    response_model=OwnEventRegistration,
    responses=error_responses(*OWN_REGISTRATION_ERRORS),
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def get_my_event_registration(
    user: CurrentUser, event: RegistrantEventDep, session: SessionDep
) -> OwnEventRegistration:
    """The caller's registration of the event: the live one (CONFIRMED, OFFERED or WAITLISTED),
    else the latest; with its place in line, offer deadline, check-in code, and whether the
    caller is in the event's networking directory."""
    registration, position, in_directory = await registration_queries.get_own_event_registration(
        session, user=user, event=event
    )
    return OwnEventRegistration.model_validate(
        registration, update={"waitlist_position": position, "in_directory": in_directory}
    )


@router.post(
    "/{event_id}/registrations/me/accept",
    summary="Accept a seat offer",
    response_model=RegistrationOwnerView,
    responses=error_responses(*OFFER_ERRORS),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def accept_seat_offer(
    user: CurrentUser, event: RegistrantEventDep, session: SessionDep
) -> RegistrationOwnerView:
    """Accept the seat offered to the caller before offer_expires_at: CONFIRMED, with a
    check-in code (a registration already CONFIRMED is answered unchanged)."""
    registration = await offers.accept_offer(session, user=user, event=event)
    return _owner_view(registration)


@router.post(
    "/{event_id}/registrations/me/decline",
    summary="Decline a seat offer",
    response_model=RegistrationOwnerView,
    responses=error_responses(*OFFER_ERRORS),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def decline_seat_offer(
    user: CurrentUser, event: RegistrantEventDep, session: SessionDep
) -> RegistrationOwnerView:
    """Decline the seat offered to the caller: CANCELLED, and the seat is offered on."""
    registration = await offers.decline_offer(session, user=user, event=event)
    return _owner_view(registration)


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
    summary="List an event's attendees",
    response_model=AttendeePage,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **error_responses(*OWNER_ERRORS),
    },
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def list_event_registrations(
    event: SettledStaffedEventDep,
    session: SessionDep,
    params: PageParamsDep,
    request: Request,
    registration_status: Annotated[
        RegistrationStatus | None,
        Query(
            alias="status", description="default: the live ones (CONFIRMED, OFFERED, WAITLISTED)"
        ),
    ] = None,
) -> AttendeePage | Response:
    """The attendee list (creator, managers, admins): confirmed first, then open offers, then the
    waitlist in order. With `Accept: text/csv`, every matching registration as CSV (no paging)."""
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
    return AttendeePage.build(
        [waitlist.attendee(*row) for row in rows],
        total=total,
        params=params,
        request=request,
    )


@router.post(
    "/{event_id}/registrations/{registration_id}/check-in",
    summary="Check in a registration",
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
    registration_id: uuid.UUID, event: SettledStaffedEventDep, session: SessionDep
) -> RegistrationPublic:
    """Mark a confirmed attendee as arrived (creator, managers, admins)."""
    registration = await registration_service.check_in(
        session, event=event, registration_id=registration_id
    )
    return _registration(registration, None)


@router.post(
    "/{event_id}/check-in",
    summary="Check in by code",
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
    check_in_in: CheckInByCode, event: SettledStaffedEventDep, session: SessionDep
) -> Attendee:
    """Mark the holder of a check-in code as arrived (creator, managers, admins); the code may be
    typed in any case, with spaces or hyphens, O for 0 and I or L for 1."""
    registration, registrant = await registration_service.check_in_by_code(
        session, event=event, code=check_in_in.code
    )
    return waitlist.attendee(registration, registrant)


@me_router.get(
    "/registrations",
    summary="List your registrations",
    response_model=OwnRegistrationPage,
    responses=error_responses(Unauthorized),
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def list_my_registrations(
    user: CurrentUser, session: SessionDep, params: PageParamsDep, request: Request
) -> OwnRegistrationPage:
    """The caller's registrations, newest first, each with its event and place in line."""
    rows, total = await registration_queries.list_user_registrations(
        session, user=user, params=params
    )
    items = [OwnRegistration.of(*row) for row in rows]
    return OwnRegistrationPage.build(items, total=total, params=params, request=request)


@me_router.get(
    "/registrations/{registration_id}",
    summary="Get one of your registrations",
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
    summary="Get a ticket's QR code",
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
