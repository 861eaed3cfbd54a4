"""The /events routes (registrations to them are in api/registrations)."""

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response, status

from api.db import SessionDep
from api.errors import Forbidden, PreconditionFailed, Unauthorized
from api.events import queries as event_queries
from api.events import service as event_service
from api.events.calendar import CONTENT_TYPE, calendar_filename, event_calendar
from api.events.dependencies import (
    OWNER_ERRORS,
    EventDep,
    ManagedEventDep,
    OwnEventDep,
    PublicEventDep,
    ReviewEventDep,
)
from api.events.following import update_following
from api.events.models import (
    Cancellation,
    EventCreate,
    EventPage,
    EventPublic,
    EventStatus,
    EventTime,
    EventType,
    EventUpdate,
    ReviewFeedback,
)
from api.http_cache import json_with_etag, tagged_json
from api.openapi import error_responses
from api.pagination import PageParamsDep
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users.auth import CurrentUser, ManagerUser, OptionalUser

router = APIRouter(prefix="/events", tags=["events"])

NOT_FOUND = event_queries.EventNotFound
TRANSITION_ERRORS = error_responses(*OWNER_ERRORS, event_service.InvalidEventTransition)
# Deleting or resubmitting an occurrence of a series: the series' routes do that.
SERIES_TRANSITION_ERRORS = error_responses(
    *OWNER_ERRORS, event_service.InvalidEventTransition, event_service.PartOfSeries
)


def _public(event: Any) -> EventPublic:
    return EventPublic.model_validate(event)


@router.post(
    "",
    summary="Propose an event",
    response_model=EventPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(Unauthorized, Forbidden),
    openapi_extra=token_scope(Scope.EVENTS_WRITE),
)
async def create_event(
    event_in: EventCreate, creator: ManagerUser, session: SessionDep
) -> EventPublic:
    """Propose an event (managers and admins); it waits as PENDING for another's approval."""
    event = await event_service.create_event(session, creator=creator, event_in=event_in)
    return _public(event)


NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: If-None-Match holds the current ETag"}
}


@router.get(
    "",
    summary="List events",
    response_model=EventPage,
    responses={**NOT_MODIFIED, **error_responses(Unauthorized)},
    openapi_extra=token_scope(Scope.EVENTS_READ),
)
async def list_events(
    session: SessionDep,
    viewer: OptionalUser,
    params: PageParamsDep,
    request: Request,
    q: Annotated[
        str | None, Query(max_length=200, description="title or description contains")
    ] = None,
    event_type: EventType | None = None,
    tag: Annotated[str | None, Query(max_length=30)] = None,
    starts_after: Annotated[
        EventTime | None, Query(description="default: now (upcoming events)")
    ] = None,
    starts_before: EventTime | None = None,
    has_spots: Annotated[
        bool | None, Query(description="true: seats left or unlimited; false: full")
    ] = None,
    event_status: Annotated[
        EventStatus | None,
        Query(
            alias="status",
            description="default PUBLISHED (every status with created_by=me or series_id); "
            "other statuses list only the events the caller may see",
        ),
    ] = None,
    created_by: Annotated[
        Literal["me"] | None, Query(description="me: the caller's own events (needs a token)")
    ] = None,
    series_id: Annotated[
        uuid.UUID | None, Query(description="the occurrences of this recurring series")
    ] = None,
) -> Response:
    """Upcoming published events, soonest first, filtered; anyone may call it.

    The answer carries an ETag: If-None-Match with it answers 304 while the page is unchanged."""
    if created_by is not None and viewer is None:
        raise Unauthorized()
    events, total = await event_queries.list_events(
        session,
        viewer=viewer,
        params=params,
        q=q,
        event_type=event_type,
        tag=tag,
        starts_after=starts_after,
        starts_before=starts_before,
        has_spots=has_spots,
        status=event_status,
        mine=created_by is not None,
        series_id=series_id,
    )
    page = EventPage.build(
        [_public(e) for e in events], total=total, params=params, request=request
    )
    return json_with_etag(request, page)


@router.get(
    "/{event_id}",
    summary="Get an event",
    response_model=EventPublic,
    responses={**NOT_MODIFIED, **error_responses(NOT_FOUND)},
    openapi_extra=token_scope(Scope.EVENTS_READ),
)
async def get_event(event: PublicEventDep, request: Request) -> Response:
    """One event, as its visibility allows; If-None-Match with its ETag answers 304."""
    return json_with_etag(request, event)


ETAG_HEADER = {"ETag": {"description": "the event's current ETag", "schema": {"type": "string"}}}
PATCH_ERRORS = error_responses(
    *OWNER_ERRORS,
    event_service.CapacityBelowRegistered,
    event_service.InvalidEventTransition,
    PreconditionFailed,
)
PATCH_ERRORS[PreconditionFailed.status_code]["headers"] = ETAG_HEADER


@router.patch(
    "/{event_id}",
    summary="Update an event",
    response_model=EventPublic,
    responses={200: {"headers": ETAG_HEADER}, **PATCH_ERRORS},
    openapi_extra=token_scope(Scope.EVENTS_WRITE),
)
async def update_event(
    event_in: EventUpdate,
    event: ManagedEventDep,
    session: SessionDep,
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="apply only if the event's ETag is one of these (`*`: any); "
            "else 412 with the current ETag. Absent: the last write wins",
        ),
    ] = None,
    scope: Annotated[
        Literal["this", "following"],
        Query(
            description="following: for an occurrence of a series, apply the fields sent to it "
            "and to every later occurrence not cancelled and not started, all or none (each "
            "keeps its local date: starts_at may change only the time of day)"
        ),
    ] = "this",
) -> Response:
    """Edit an event (creator or admin); registrants hear of a new time or place.

    The answer carries the event's new ETag; If-Match with the ETag of an earlier read makes
    the edit conditional (412 PRECONDITION_FAILED when the event changed since). With
    scope=following, an occurrence of a series and its later ones change together, or none."""
    edit = update_following if scope == "following" else event_service.update_event
    updated = await edit(session, event=event, event_in=event_in, if_match=if_match)
    return tagged_json(_public(updated))


@router.delete(
    "/{event_id}",
    summary="Delete an event",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=SERIES_TRANSITION_ERRORS,
    openapi_extra=token_scope(Scope.EVENTS_WRITE),
)
async def delete_event(event: ManagedEventDep, session: SessionDep) -> Response:
    """Delete a PENDING or REJECTED event (creator or admin); cancel a published one instead.
    An occurrence of a series goes with its series (DELETE /series/{id})."""
    await event_service.delete_event(session, event=event)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


REVIEW_ERRORS = error_responses(
    Unauthorized,
    Forbidden,
    event_service.CannotReviewOwnEvent,
    NOT_FOUND,
    event_service.InvalidEventTransition,
    event_service.PartOfSeries,
)


@router.post(
    "/{event_id}/approve",
    summary="Approve an event",
    response_model=EventPublic,
    responses=REVIEW_ERRORS,
    openapi_extra=token_scope(Scope.EVENTS_WRITE),
)
async def approve_event(
    event: ReviewEventDep, reviewer: ManagerUser, session: SessionDep
) -> EventPublic:
    """Publish a PENDING event (a manager other than its creator, or an admin); audited.
    An occurrence of a series is reviewed with its series (/series/{id}/approve)."""
    approved = await event_service.approve_event(session, reviewer=reviewer, event=event)
    return _public(approved)


@router.post(
    "/{event_id}/reject",
    summary="Reject an event",
    response_model=EventPublic,
    responses=REVIEW_ERRORS,
    openapi_extra=token_scope(Scope.EVENTS_WRITE),
)
async def reject_event(
    review: ReviewFeedback, event: ReviewEventDep, reviewer: ManagerUser, session: SessionDep
) -> EventPublic:
    """Send a PENDING event back with feedback (a manager other than its creator, or an admin).
    An occurrence of a series is reviewed with its series (/series/{id}/reject)."""
    rejected = await event_service.reject_event(
        session, reviewer=reviewer, event=event, feedback=review.feedback
    )
    return _public(rejected)


@router.post(
    "/{event_id}/submit",
    summary="Resubmit an event",
    response_model=EventPublic,
    responses=SERIES_TRANSITION_ERRORS,
    openapi_extra=token_scope(Scope.EVENTS_WRITE),
)
async def submit_event(
    event: OwnEventDep, creator: CurrentUser, session: SessionDep
) -> EventPublic:
    """Resubmit a REJECTED event for review after editing it (its creator); an occurrence of a
    series goes back with its series (/series/{id}/submit)."""
    submitted = await event_service.submit_event(session, creator=creator, event=event)
    return _public(submitted)


@router.post(
    "/{event_id}/cancel",
    summary="Cancel an event",
    response_model=EventPublic,
    responses=TRANSITION_ERRORS,
    openapi_extra=token_scope(Scope.EVENTS_WRITE),
)
async def cancel_event(
    event: ManagedEventDep,
    actor: CurrentUser,
    session: SessionDep,
    cancellation: Cancellation | None = None,
) -> EventPublic:
    """Cancel a PENDING or PUBLISHED event (creator or admin); every registrant is told."""
    cancelled = await event_service.cancel_event(
        session, actor=actor, event=event, reason=cancellation.reason if cancellation else None
    )
    return _public(cancelled)


@router.get(
    "/{event_id}/calendar.ics",
    summary="Download an event as iCalendar",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {"schema": {"type": "string"}}}},
        **error_responses(NOT_FOUND),
    },
    openapi_extra=token_scope(Scope.EVENTS_READ),
)
async def get_event_calendar(event: EventDep) -> Response:
    """The event as an RFC 5545 calendar file, to import into any calendar."""
    return Response(
        event_calendar(event),
        media_type=CONTENT_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{calendar_filename(event)}"'},
    )
