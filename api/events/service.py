"""Event rules: visibility, listing and the approval workflow.

Every change to an event's seats happens under that event's row lock (SELECT ... FOR UPDATE):
registrations, unregistrations, promotions, offers and their expiry, capacity edits, mode
switches and cancellation of one event are serialised by PostgreSQL, so the counters on the
event row are exact and the waitlist is served in arrival order. A CHECK constraint on the row
refuses an overbooked event whatever happens.
The registration rules are in api/registrations/, what the workflow tells whom in
api/events/notices.py.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, bindparam, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.audit import service as audit_service
from api.audit.models import AuditAction
from api.db import contains_pattern, shown_columns
from api.errors import Conflict, Forbidden, NotFound, PreconditionFailed, invalid_body
from api.events.models import (
    REVISED_FIELDS,
    Event,
    EventBase,
    EventCreate,
    EventDeleted,
    EventPublic,
    EventStatus,
    EventType,
    EventUpdate,
    check_start_in_future,
    seats_left,
)
from api.events.notices import (
    _announce_to_creator,
    _announce_to_reviewers,
    _public,
    _registrants,
    event_summary,
)
from api.http_cache import etag_of, if_match_allows
from api.notifications.models import NotificationKind
from api.notifications.service import announce
from api.outbox.models import DomainEventType
from api.pagination import PageParams, Total, paginate
from api.users.models import STAFF_ROLES, User, UserRole, Viewer

# --- the registration rules the workflow runs -------------------------------------------------
# Registrations build on events, so events do not import them: api.registrations.service joins
# these when it is loaded, and they run in the caller's transaction, under the event's lock.

FillSeats = Callable[[AsyncSession, Event], Awaitable[None]]
ReleaseAll = Callable[[AsyncSession, Event, Sequence[User], datetime], Awaitable[None]]


async def _not_joined(*_: Any) -> None:
    raise RuntimeError("api.registrations.service is not loaded")


_fill_seats: FillSeats = _not_joined
_release_all: ReleaseAll = _not_joined


def join_registration_rules(*, fill_seats: FillSeats, release_all: ReleaseAll) -> None:
    """`fill_seats` fills free seats from the waitlist as the event's waitlist_mode says (after a
    raised capacity or a mode switch); `release_all` cancels every live registration of an event
    being cancelled (its registrants given)."""
    global _fill_seats, _release_all
    _fill_seats, _release_all = fill_seats, release_all


TRANSITIONS: dict[EventStatus, frozenset[EventStatus]] = {
    EventStatus.PENDING: frozenset(
        {EventStatus.PUBLISHED, EventStatus.REJECTED, EventStatus.CANCELLED}
    ),
    EventStatus.REJECTED: frozenset({EventStatus.PENDING}),
    EventStatus.PUBLISHED: frozenset({EventStatus.CANCELLED}),
    EventStatus.CANCELLED: frozenset(),
}
DELETABLE = frozenset({EventStatus.PENDING, EventStatus.REJECTED})
# A change to one of these on a published event is news for its registrants.
TIME_AND_PLACE = frozenset({"starts_at", "ends_at", "timezone", "location", "online_url"})
# A change to one of these may let free seats go to the waitlist: a raised capacity; a mode
# switch (open offers run their course, free seats follow the new mode at once); a deadline
# moved later (in OFFER mode no offer is made past it).
SEAT_RULES = frozenset({"capacity", "waitlist_mode", "registration_deadline"})


class EventNotFound(NotFound):
    code = "EVENT_NOT_FOUND"


class NotEventOwner(Forbidden):
    code = "NOT_EVENT_OWNER"


class CannotReviewOwnEvent(Forbidden):
    code = "CANNOT_REVIEW_OWN_EVENT"


class InvalidEventTransition(Conflict):
    code = "INVALID_EVENT_TRANSITION"


class CapacityBelowRegistered(Conflict):
    code = "CAPACITY_BELOW_REGISTERED"


# --- who may see and do what ------------------------------------------------------------------


def is_staff(user: User | Viewer | None) -> bool:
    return user is not None and user.role in STAFF_ROLES


def can_see(event: Event, viewer: User | None) -> bool:
    """PUBLISHED events are public; the rest only for the creator, managers and admins."""
    return (
        event.status is EventStatus.PUBLISHED
        or is_staff(viewer)
        or (viewer is not None and event.created_by == viewer.id)
    )


def can_manage(event: Event, user: User) -> bool:
    """Edit, delete, cancel: the creator or an admin."""
    return user.role is UserRole.ADMIN or event.created_by == user.id


def can_see_attendees(event: Event, user: User) -> bool:
    return is_staff(user) or event.created_by == user.id


def _visible_to(viewer: User | Viewer | None, *, viewer_id: Any = None) -> Any:
    """The SQL form of can_see(). `viewer_id` stands for the viewer's id when given (a bind
    parameter, in a statement built once for every viewer of the same kind)."""
    if is_staff(viewer):
        return true()
    published = col(Event.status) == EventStatus.PUBLISHED
    if viewer is None:
        return published
    return or_(published, col(Event.created_by) == (viewer.id if viewer_id is None else viewer_id))


def _event_by_id(event_id: uuid.UUID, *, lock: bool) -> Select[tuple[Event]]:
    """The event; with `lock`, its row lock taken and the row re-read (seats may have moved)."""
    statement = select(Event).where(col(Event.id) == event_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return statement


async def get_visible_event(
    session: AsyncSession, event_id: uuid.UUID, *, viewer: User | None, lock: bool = False
) -> Event:
    """The event, or 404 when it does not exist or the viewer may not see it."""
    event = await session.scalar(_event_by_id(event_id, lock=lock))
    if event is None or not can_see(event, viewer):
        raise EventNotFound()
    return event


# The columns EventPublic shows (spots_left is computed from two of them).
PUBLIC_EVENT = select(*shown_columns(Event, EventPublic)).where(
    col(Event.id) == bindparam("event_id")
)
# PUBLIC_EVENT with the visibility rule, by kind of viewer (None: anonymous, True: staff, False:
# anyone else). Built once: building a select of two dozen columns and its cache key costs
# more CPU than running it.
_public_event_for: dict[bool | None, Select[Any]] = {}


async def get_public_event(
    session: AsyncSession, event_id: uuid.UUID, *, viewer: Viewer | None
) -> EventPublic:
    """GET /events/{id}: the event in its public shape, or 404 when the viewer may not see it.

    A read that changes nothing: a Core row of exactly the public columns, with the visibility
    rule in SQL, costs far less CPU than an ORM Event that nothing will track.
    """
    kind = None if viewer is None else is_staff(viewer)
    statement = _public_event_for.get(kind)
    if statement is None:
        visible = _visible_to(viewer, viewer_id=bindparam("viewer_id"))
        statement = _public_event_for[kind] = PUBLIC_EVENT.where(visible)
    parameters = {"event_id": event_id, "viewer_id": None if viewer is None else viewer.id}
    row = (await (await session.connection()).execute(statement, parameters)).first()
    if row is None:
        raise EventNotFound()
    values = row._asdict()
    values["spots_left"] = seats_left(values["capacity"], values["registered_count"])
    return EventPublic.model_validate(values)


async def lock_event(session: AsyncSession, event: Event) -> Event:
    """Take the event's row lock and re-read it into `event`."""
    await session.execute(_event_by_id(event.id, lock=True))
    return event


# --- listing ----------------------------------------------------------------------------------


async def list_events(
    session: AsyncSession,
    *,
    viewer: User | None,
    params: PageParams,
    q: str | None = None,
    event_type: EventType | None = None,
    tag: str | None = None,
    starts_after: datetime | None = None,
    starts_before: datetime | None = None,
    has_spots: bool | None = None,
    status: EventStatus | None = None,
    mine: bool = False,
) -> tuple[Sequence[Event], Total]:
    """Upcoming published events by default, soonest first; only what the viewer may see.

    `status` defaults to PUBLISHED, or to every status for the caller's own events (`mine`);
    the time window defaults to events that have not started yet.
    """
    statement = select(Event).where(_visible_to(viewer))
    if mine:
        assert viewer is not None
        statement = statement.where(col(Event.created_by) == viewer.id)
    if status is not None or not mine:
        statement = statement.where(col(Event.status) == (status or EventStatus.PUBLISHED))
    statement = statement.where(col(Event.starts_at) >= (starts_after or clock.now()))
    if starts_before is not None:
        statement = statement.where(col(Event.starts_at) < starts_before)
    if q:
        pattern = contains_pattern(q)
        statement = statement.where(
            or_(
                col(Event.title).ilike(pattern, escape="\\"),
                col(Event.description).ilike(pattern, escape="\\"),
            )
        )
    if event_type is not None:
        statement = statement.where(col(Event.event_type) == event_type)
    if tag:
        statement = statement.where(col(Event.tags).contains([tag.strip().lower()]))
    if has_spots is not None:
        # The predicate of ix_event_open_status_starts_at: keep the two alike.
        open_seats = or_(
            col(Event.capacity).is_(None), col(Event.registered_count) < col(Event.capacity)
        )
        statement = statement.where(open_seats if has_spots else ~open_seats)
    ordered = statement.order_by(col(Event.starts_at).asc(), col(Event.id).asc())
    return await paginate(session, ordered, params)


# --- the event and its workflow ---------------------------------------------------------------


def _transition(event: Event, target: EventStatus) -> EventStatus:
    if target not in TRANSITIONS[event.status]:
        raise InvalidEventTransition(reason=f"An event cannot go from {event.status} to {target}")
    before, event.status = event.status, target
    event.revision += 1
    return before


async def create_event(session: AsyncSession, *, creator: User, event_in: EventCreate) -> Event:
    event = Event.model_validate(event_in, update={"created_by": creator.id})
    session.add(event)
    await session.flush()
    await _announce_to_reviewers(session, event, DomainEventType.EVENT_CREATED, submitter=creator)
    return event


def _merged(event: Event, changes: dict[str, Any]) -> EventBase:
    """The event as it would be after `changes`, validated as a whole (422 when it is not)."""
    current = EventBase.model_validate(event).model_dump()
    try:
        merged = EventBase.model_validate({**current, **changes})
        if "starts_at" in changes:
            check_start_in_future(merged.starts_at)
    except ValidationError as error:
        raise invalid_body(error.errors(include_url=False)) from error
    return merged


async def update_event(
    session: AsyncSession, *, event: Event, event_in: EventUpdate, if_match: str | None = None
) -> Event:
    """Apply a PATCH. With `if_match`, only when it names the event's current ETag (that of
    GET /events/{id}), compared under the row lock: of two writers holding one tag, one wins."""
    await lock_event(session, event)
    if if_match is not None:
        current = etag_of(EventPublic.model_validate(event))
        if not if_match_allows(if_match, current):
            raise PreconditionFailed(etag=current)
    if event.status is EventStatus.CANCELLED:
        raise InvalidEventTransition(reason="A cancelled event cannot be edited")
    changes = event_in.model_dump(exclude_unset=True)
    merged = _merged(event, changes)
    changed = {field for field in changes if getattr(merged, field) != getattr(event, field)}
    if "capacity" in changed and merged.capacity is not None:
        if merged.capacity < event.registered_count:
            raise CapacityBelowRegistered(
                reason=f"{event.registered_count} people are registered; "
                "cancel registrations before lowering the capacity below that",
                registered_count=event.registered_count,
            )
    for field in changed:
        setattr(event, field, getattr(merged, field))
    if changed & REVISED_FIELDS:
        event.revision += 1
    session.add(event)
    await session.flush()
    if not changed:
        return event  # nothing changed: nothing to tell
    if changed & SEAT_RULES:
        await _fill_seats(session, event)
    told = event.status is EventStatus.PUBLISHED and bool(changed & TIME_AND_PLACE)
    await announce(
        session,
        DomainEventType.EVENT_UPDATED,
        await _public(session, event),
        notify=await _registrants(session, event) if told else [],
        kind=NotificationKind.EVENT_UPDATED if told else None,
        event=event_summary(event),
    )
    return event


async def delete_event(session: AsyncSession, *, event: Event) -> None:
    """Only an event nobody could register for yet (PENDING or REJECTED) may be deleted."""
    if event.status not in DELETABLE:
        raise InvalidEventTransition(
            reason=f"A {event.status} event cannot be deleted; cancel it instead"
        )
    await session.delete(event)
    await session.flush()
    await announce(
        session,
        DomainEventType.EVENT_DELETED,
        EventDeleted(id=event.id, created_by=event.created_by),
    )


async def _review(
    session: AsyncSession,
    *,
    reviewer: User,
    event: Event,
    target: EventStatus,
    feedback: str | None = None,
) -> Event:
    if reviewer.role is UserRole.MANAGER and event.created_by == reviewer.id:
        raise CannotReviewOwnEvent(reason="Another manager or an admin must review this event")
    await lock_event(session, event)
    before = _transition(event, target)
    event.reviewed_by = reviewer.id
    event.review_feedback = feedback
    after: dict[str, Any] = {"status": target}
    if target is EventStatus.PUBLISHED:
        event.published_at = after["published_at"] = clock.now()
    else:
        after["review_feedback"] = feedback
    session.add(event)
    action = (
        AuditAction.EVENT_APPROVED
        if target is EventStatus.PUBLISHED
        else AuditAction.EVENT_REJECTED
    )
    await audit_service.record(
        session,
        actor_id=reviewer.id,
        action=action,
        target_type="event",
        target_id=event.id,
        before={"status": before},
        after=after,
        reason=feedback,
    )
    if target is EventStatus.PUBLISHED:
        kind, event_type = NotificationKind.EVENT_APPROVED, DomainEventType.EVENT_PUBLISHED
    else:
        kind, event_type = NotificationKind.EVENT_REJECTED, DomainEventType.EVENT_REJECTED
    await _announce_to_creator(session, event, event_type, kind, feedback=feedback)
    return event


async def approve_event(session: AsyncSession, *, reviewer: User, event: Event) -> Event:
    return await _review(session, reviewer=reviewer, event=event, target=EventStatus.PUBLISHED)


async def reject_event(
    session: AsyncSession, *, reviewer: User, event: Event, feedback: str
) -> Event:
    return await _review(
        session, reviewer=reviewer, event=event, target=EventStatus.REJECTED, feedback=feedback
    )


async def submit_event(session: AsyncSession, *, creator: User, event: Event) -> Event:
    """A rejected event, edited, goes back to review."""
    await lock_event(session, event)
    _transition(event, EventStatus.PENDING)
    session.add(event)
    await _announce_to_reviewers(session, event, DomainEventType.EVENT_SUBMITTED, submitter=creator)
    return event


async def cancel_event(
    session: AsyncSession, *, actor: User, event: Event, reason: str | None
) -> Event:
    """Cancel the event and release every registration; registrants are told why."""
    await lock_event(session, event)
    before_status = _transition(event, EventStatus.CANCELLED)
    before = {
        "status": before_status,
        "registered_count": event.registered_count,
        "waitlist_count": event.waitlist_count,
    }
    registrants = await _registrants(session, event)
    now = clock.now()
    await _release_all(session, event, registrants, now)
    event.registered_count = event.waitlist_count = event.offered_count = 0
    event.cancelled_at = now
    event.cancellation_reason = reason
    session.add(event)
    await audit_service.record(
        session,
        actor_id=actor.id,
        action=AuditAction.EVENT_CANCELLED,
        target_type="event",
        target_id=event.id,
        before=before,
        after={"status": event.status, "registered_count": 0, "waitlist_count": 0},
        reason=reason,
    )
    await announce(
        session,
        DomainEventType.EVENT_CANCELLED,
        await _public(session, event),
        notify=registrants,
        kind=NotificationKind.EVENT_CANCELLED,
        event=event_summary(event),
        reason=reason,
    )
    return event
