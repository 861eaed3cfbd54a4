"""Event rules: the approval workflow (create, update, delete, review, submit, cancel), the
transitions it allows, and the registration-rule hooks it runs.

Every change to an event's seats happens under that event's row lock (SELECT ... FOR UPDATE):
registrations, unregistrations, promotions, offers and their expiry, capacity edits, mode
switches and cancellation of one event are serialised by PostgreSQL, so the counters on the
event row are exact and the waitlist is served in arrival order. A CHECK constraint on the row
refuses an overbooked event whatever happens.
Who may see what, the loaders (lock_event among them) and listing are in api/events/queries.py;
the registration rules in api/registrations/, what the workflow tells whom in
api/events/notices.py.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.audit import service as audit_service
from api.audit.models import AuditAction
from api.errors import Conflict, Forbidden, PreconditionFailed, invalid_body
from api.events.models import (
    REVISED_FIELDS,
    Event,
    EventBase,
    EventCreate,
    EventDeleted,
    EventPublic,
    EventStatus,
    EventUpdate,
    check_start_in_future,
)
from api.events.notices import (
    _announce_to_creator,
    _announce_to_reviewers,
    _public,
    _registrants,
    event_summary,
    registrants_by_event,
)
from api.events.queries import lock_event, soonest_first
from api.http_cache import etag_of, if_match_allows
from api.notifications.models import NotificationKind
from api.notifications.service import announce, notify_each
from api.outbox.models import DomainEventType
from api.users.models import User, UserRole

# --- the registration rules the workflow runs -------------------------------------------------
# Registrations build on events, so events do not import them: api.registrations.service joins
# these when it is loaded, and they run in the caller's transaction, under the event's lock.

FillSeats = Callable[[AsyncSession, Event], Awaitable[None]]
ReleaseAll = Callable[[AsyncSession, Sequence[Event], Sequence[User], datetime], Awaitable[None]]


async def _not_joined(*_: Any) -> None:
    raise RuntimeError("api.registrations.service is not loaded")


_fill_seats: FillSeats = _not_joined
_release_all: ReleaseAll = _not_joined


def join_registration_rules(*, fill_seats: FillSeats, release_all: ReleaseAll) -> None:
    """`fill_seats` fills free seats from the waitlist as the event's waitlist_mode says (after a
    raised capacity or a mode switch); `release_all` cancels every live registration of the
    events being cancelled (their registrants given), in one statement."""
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


class CannotReviewOwnEvent(Forbidden):
    """A manager cannot review their own event: another manager or an admin must."""

    code = "CANNOT_REVIEW_OWN_EVENT"
    example_reason = "Another manager or an admin must review this event"


class InvalidEventTransition(Conflict):
    """The event's status does not allow this (PENDING -> PUBLISHED or REJECTED; REJECTED ->
    PENDING; PENDING or PUBLISHED -> CANCELLED)."""

    code = "INVALID_EVENT_TRANSITION"
    example_reason = "An event cannot go from CANCELLED to PUBLISHED"


class CapacityBelowRegistered(Conflict):
    """The new capacity is below the seats taken; `registered_count` says how many."""

    code = "CAPACITY_BELOW_REGISTERED"
    example_reason = (
        "12 people are registered; cancel registrations before lowering the capacity below that"
    )
    example_extra = {"registered_count": 12}


class PartOfSeries(Conflict):
    """The event is an occurrence of a series: review, resubmit or delete the series instead."""

    code = "PART_OF_SERIES"
    example_reason = "The event is an occurrence of a series: approve the series instead"
    example_extra = {"series_id": "8d5e2f61-3c1a-4b7e-9f20-6a4c8b1d2e37"}


def _not_in_series(event: Event, action: str) -> None:
    if event.series_id is not None:
        raise PartOfSeries(
            reason=f"The event is an occurrence of a series: {action} the series instead",
            series_id=str(event.series_id),
        )


# --- the event and its workflow ---------------------------------------------------------------


def check_transition(current: EventStatus, target: EventStatus) -> None:
    """409 unless the state machine lets an event (or a series) go from `current` to `target`."""
    if target not in TRANSITIONS[current]:
        raise InvalidEventTransition(reason=f"An event cannot go from {current} to {target}")


def check_reviewer(reviewer: User, created_by: uuid.UUID | None) -> None:
    """A manager may not review what they created; an admin may."""
    if reviewer.role is UserRole.MANAGER and created_by == reviewer.id:
        raise CannotReviewOwnEvent(reason="Another manager or an admin must review this event")


def _transition(event: Event, target: EventStatus) -> EventStatus:
    check_transition(event.status, target)
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


def check_if_match(event: Event, if_match: str | None) -> None:
    """412 unless `if_match` (when given) names the event's current ETag, that of
    GET /events/{id}; the caller holds the row lock: of two writers holding one tag, one wins."""
    if if_match is not None:
        current = etag_of(EventPublic.model_validate(event))
        if not if_match_allows(if_match, current):
            raise PreconditionFailed(etag=current)


def check_editable(event: Event) -> None:
    if event.status is EventStatus.CANCELLED:
        raise InvalidEventTransition(reason="A cancelled event cannot be edited")


def plan_update(event: Event, changes: dict[str, Any]) -> tuple[EventBase, set[str]]:
    """The event as `changes` would leave it, checked as a whole (422), and the fields they
    change; 409 when the capacity would go below the seats taken. Changes nothing."""
    merged = _merged(event, changes)
    changed = {field for field in changes if getattr(merged, field) != getattr(event, field)}
    if "capacity" in changed and merged.capacity is not None:
        if merged.capacity < event.registered_count:
            raise CapacityBelowRegistered(
                reason=f"{event.registered_count} people are registered; "
                "cancel registrations before lowering the capacity below that",
                registered_count=event.registered_count,
            )
    return merged, changed


async def apply_update(
    session: AsyncSession, event: Event, merged: EventBase, changed: set[str]
) -> None:
    """Write a planned change to the locked event: its seats follow new seat rules, its
    registrants hear of a new time or place while it is published."""
    for field in changed:
        setattr(event, field, getattr(merged, field))
    if changed & REVISED_FIELDS:
        event.revision += 1
    session.add(event)
    await session.flush()
    if not changed:
        return  # nothing changed: nothing to tell
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


async def update_event(
    session: AsyncSession, *, event: Event, event_in: EventUpdate, if_match: str | None = None
) -> Event:
    """Apply a PATCH. With `if_match`, only when it names the event's current ETag (that of
    GET /events/{id}), compared under the row lock: of two writers holding one tag, one wins."""
    await lock_event(session, event)
    check_if_match(event, if_match)
    check_editable(event)
    merged, changed = plan_update(event, event_in.model_dump(exclude_unset=True))
    await apply_update(session, event, merged, changed)
    return event


async def delete_event(session: AsyncSession, *, event: Event) -> None:
    """Only an event nobody could register for yet (PENDING or REJECTED) may be deleted."""
    _not_in_series(event, "delete")
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


def review_outcome(
    reviewer: User, target: EventStatus, feedback: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a review (PUBLISHED or REJECTED) writes on an event, or on a series and its
    occurrences, and the `after` of its audit entry."""
    values: dict[str, Any] = {
        "status": target,
        "reviewed_by": reviewer.id,
        "review_feedback": feedback,
    }
    after: dict[str, Any] = {"status": target}
    if target is EventStatus.PUBLISHED:
        values["published_at"] = after["published_at"] = clock.now()
    else:
        after["review_feedback"] = feedback
    return values, after


# What a review tells the creator, and integrations, by its outcome.
REVIEW_NOTICES = {
    EventStatus.PUBLISHED: (NotificationKind.EVENT_APPROVED, DomainEventType.EVENT_PUBLISHED),
    EventStatus.REJECTED: (NotificationKind.EVENT_REJECTED, DomainEventType.EVENT_REJECTED),
}


async def _review(
    session: AsyncSession,
    *,
    reviewer: User,
    event: Event,
    target: EventStatus,
    feedback: str | None = None,
) -> Event:
    check_reviewer(reviewer, event.created_by)
    _not_in_series(event, "review")
    await lock_event(session, event)
    before = _transition(event, target)
    values, after = review_outcome(reviewer, target, feedback)
    for field, value in values.items():
        setattr(event, field, value)
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
    kind, event_type = REVIEW_NOTICES[target]
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
    _not_in_series(event, "submit")
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
    await _release_all(session, [event], registrants, now)
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


async def cancel_events(
    session: AsyncSession, *, events: Sequence[Event], reason: str | None, now: datetime
) -> list[Event]:
    """Cancel many locked events at once (the occurrences of a cancelled series) as
    cancel_event() cancels one: every live registration released, in one statement, and each
    event's registrants told of their own event. The caller checked the transition and writes
    the audit entry; a constant number of statements, however many events."""
    if not events:
        return []
    by_event = await registrants_by_event(session, events)
    registrants = {user.id: user for users in by_event.values() for user in users}
    await _release_all(session, events, list(registrants.values()), now)
    cancelled = await session.scalars(
        update(Event)
        .where(col(Event.id).in_([event.id for event in events]))
        .values(
            status=EventStatus.CANCELLED,
            revision=col(Event.revision) + 1,
            registered_count=0,
            waitlist_count=0,
            offered_count=0,
            cancelled_at=now,
            cancellation_reason=reason,
        )
        .returning(Event)
        .execution_options(populate_existing=True)
    )
    done = soonest_first(cancelled)
    await announce(
        session, DomainEventType.EVENT_CANCELLED, [EventPublic.model_validate(e) for e in done]
    )
    await notify_each(
        session,
        NotificationKind.EVENT_CANCELLED,
        [
            (user, {"event": event_summary(event), "reason": reason})
            for event in done
            for user in by_event.get(event.id, [])
        ],
    )
    return done
