"""Event rules: visibility, the approval workflow, capacity and the waitlist.

Every change to an event's seats happens under that event's row lock (SELECT ... FOR UPDATE):
registrations, unregistrations, promotions, capacity edits and cancellation of one event are
serialised by PostgreSQL, so the counters on the event row are exact and the waitlist is served
in arrival order. A CHECK constraint on the row refuses an overbooked event whatever happens.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import Select, bindparam, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from api import clock
from api.audit import service as audit_service
from api.audit.models import AuditAction
from api.config import settings
from api.db import contains_pattern, shown_columns
from api.errors import Conflict, Forbidden, NotFound, PreconditionFailed, invalid_body
from api.events import checkin
from api.events.models import (
    ACTIVE_REGISTRATION,
    REVISED_FIELDS,
    Attendee,
    Event,
    EventBase,
    EventCreate,
    EventDeleted,
    EventPublic,
    EventStatus,
    EventType,
    EventUpdate,
    Registration,
    RegistrationStatus,
    check_start_in_future,
    seats_left,
)
from api.events.seats import SEAT
from api.http_cache import etag_of, if_match_allows
from api.notifications.models import NotificationKind
from api.notifications.service import announce, channels_for, notify, notify_all
from api.outbox.models import DomainEventType
from api.pagination import PageParams, Total, paginate, paginate_rows
from api.users.models import STAFF_ROLES, User, UserPublic, UserRole, Viewer

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


class EventNotOpen(Conflict):
    code = "EVENT_NOT_OPEN"


class AlreadyRegistered(Conflict):
    code = "ALREADY_REGISTERED"


class RegistrationNotFound(NotFound):
    code = "REGISTRATION_NOT_FOUND"


class AlreadyCheckedIn(Conflict):
    code = "ALREADY_CHECKED_IN"


class NotConfirmed(Conflict):
    code = "NOT_CONFIRMED"


class CheckinCodeNotFound(NotFound):
    code = "CHECKIN_CODE_NOT_FOUND"


# The unique index on registration.checkin_code.
CHECKIN_CODE_INDEX = "uq_registration_checkin_code"


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


async def _lock(session: AsyncSession, event: Event) -> Event:
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


# --- notices ----------------------------------------------------------------------------------


def event_summary(event: Event) -> dict[str, Any]:
    """What mails say about an event: its title, local time, place and address."""
    zone = ZoneInfo(event.timezone)
    starts, ends = event.starts_at.astimezone(zone), event.ends_at.astimezone(zone)
    end_format = "%H:%M" if starts.date() == ends.date() else "%a %d %b %Y, %H:%M"
    return {
        "id": str(event.id),
        "title": event.title,
        "when": f"{starts:%a %d %b %Y, %H:%M} to {ends.strftime(end_format)} ({event.timezone})",
        "where": event.location or event.online_url,
        "url": f"{settings.PUBLIC_BASE_URL.rstrip('/')}/api/v1/events/{event.id}",
    }


def attendee(registration: Registration, user: User, position: int | None = None) -> Attendee:
    """A registration as the attendee list shows it: the data of `registration.*` events."""
    return Attendee.model_validate(
        registration,
        update={"waitlist_position": position, "user": UserPublic.model_validate(user)},
    )


async def _public(session: AsyncSession, event: Event) -> EventPublic:
    """The event as GET /events/{id} shows it after the change (flushed first: updated_at)."""
    await session.flush()
    return EventPublic.model_validate(event)


async def _announce_to_reviewers(
    session: AsyncSession, event: Event, event_type: DomainEventType, *, submitter: User
) -> None:
    reviewers = await session.scalars(
        select(User).where(
            col(User.role).in_(STAFF_ROLES),
            col(User.is_active).is_(True),
            col(User.id) != submitter.id,
        )
    )
    await announce(
        session,
        event_type,
        await _public(session, event),
        notify=reviewers.all(),
        kind=NotificationKind.EVENT_SUBMITTED,
        event=event_summary(event),
    )


async def _announce_to_creator(
    session: AsyncSession,
    event: Event,
    event_type: DomainEventType,
    kind: NotificationKind,
    **context: Any,
) -> None:
    creator = await session.get(User, event.created_by) if event.created_by else None
    await announce(
        session,
        event_type,
        await _public(session, event),
        notify=[] if creator is None else [creator],
        kind=kind,
        event=event_summary(event),
        **context,
    )


async def _registrants(
    session: AsyncSession,
    event: Event,
    statuses: Sequence[RegistrationStatus] = ACTIVE_REGISTRATION,
) -> Sequence[User]:
    users = await session.scalars(
        select(User)
        .join(Registration, col(Registration.user_id) == col(User.id))
        .where(
            col(Registration.event_id) == event.id,
            col(Registration.status).in_(statuses),
        )
    )
    return users.all()


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
    await _lock(session, event)
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
    if "starts_at" in changed:
        event.reminder_sent_at = None  # a new start time deserves its own reminder
    session.add(event)
    await session.flush()
    if not changed:
        return event  # nothing changed: nothing to tell
    if "capacity" in changed:
        await _promote(session, event)
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
    await _lock(session, event)
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
    await _lock(session, event)
    _transition(event, EventStatus.PENDING)
    session.add(event)
    await _announce_to_reviewers(session, event, DomainEventType.EVENT_SUBMITTED, submitter=creator)
    return event


async def cancel_event(
    session: AsyncSession, *, actor: User, event: Event, reason: str | None
) -> Event:
    """Cancel the event and release every registration; registrants are told why."""
    await _lock(session, event)
    before_status = _transition(event, EventStatus.CANCELLED)
    before = {
        "status": before_status,
        "registered_count": event.registered_count,
        "waitlist_count": event.waitlist_count,
    }
    registrants = await _registrants(session, event)
    now = clock.now()
    released = await session.scalars(
        update(Registration)
        .where(
            col(Registration.event_id) == event.id,
            col(Registration.status).in_(ACTIVE_REGISTRATION),
        )
        .values(
            status=RegistrationStatus.CANCELLED,
            cancelled_at=now,
            updated_at=now,
            checkin_code=None,
        )
        .returning(Registration)
    )
    users = {user.id: user for user in registrants}
    await announce(
        session,
        DomainEventType.REGISTRATION_CANCELLED,
        [attendee(registration, users[registration.user_id]) for registration in released],
    )
    event.registered_count = event.waitlist_count = 0
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


# --- reminders --------------------------------------------------------------------------------

REMINDER_AHEAD = timedelta(hours=24)


async def send_due_reminders(session: AsyncSession) -> int:
    """Remind confirmed registrants of published events starting within 24 hours; once each.

    The events are locked (SKIP LOCKED: a second worker passes them by) and marked in the same
    transaction that queues the notices, so a crash before the commit leaves them due again.
    """
    now = clock.now()
    events = (
        await session.scalars(
            select(Event)
            .where(
                col(Event.status) == EventStatus.PUBLISHED,
                col(Event.reminder_sent_at).is_(None),
                col(Event.starts_at) > now,
                col(Event.starts_at) <= now + REMINDER_AHEAD,
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    for event in events:
        confirmed = await _registrants(session, event, [RegistrationStatus.CONFIRMED])
        await notify_all(
            session, confirmed, NotificationKind.EVENT_REMINDER, event=event_summary(event)
        )
        event.reminder_sent_at = now
        session.add(event)
    await session.flush()
    return len(events)


# --- registrations ----------------------------------------------------------------------------


def _not_open_reason(event: Event, now: datetime) -> str | None:
    if event.status is not EventStatus.PUBLISHED:
        return f"The event is {event.status}, not open for registration"
    if event.starts_at <= now:
        return "The event has already started"
    if event.registration_deadline is not None and event.registration_deadline < now:
        return "The registration deadline has passed"
    return None


async def _live_registration(
    session: AsyncSession, event_id: uuid.UUID, user_id: uuid.UUID
) -> Registration | None:
    result = await session.scalars(
        select(Registration).where(
            col(Registration.event_id) == event_id,
            col(Registration.user_id) == user_id,
            col(Registration.status).in_(ACTIVE_REGISTRATION),
        )
    )
    return result.first()


def _ensure_open(event: Event, now: datetime | None = None) -> None:
    reason = _not_open_reason(event, now or clock.now())
    if reason is not None:
        raise EventNotOpen(reason=reason)


def _seat_announcements(
    registration_id: uuid.UUID, event: Event, user: User, now: datetime
) -> dict[str, dict[str, Any]]:
    """The domain event's data either way: the seat statement writes the one that happens, with
    the place in line it gave (announced with the change, in the one round trip under the lock).
    """
    return {
        name: Attendee(
            id=registration_id,
            event_id=event.id,
            user_id=user.id,
            status=status,
            waitlist_position=position,
            created_at=now,
            promoted_at=None,
            checked_in_at=None,
            cancelled_at=None,
            user=UserPublic.model_validate(user),
        ).model_dump(mode="json")
        for name, status, position in (
            ("confirmed", RegistrationStatus.CONFIRMED, None),
            ("waitlisted", RegistrationStatus.WAITLISTED, 0),  # the statement writes the place
        )
    }


async def _take_seat(
    session: AsyncSession, event: Event, user: User, now: datetime
) -> tuple[Registration | None, int]:
    """Run the seat statement: the new registration (None when none was made) and the event's
    waitlist count, the event's fields updated to what the statement saw under the lock.

    Nothing inserted although the event is open and the user holds no live registration means
    the check-in code was taken (a chance of 2^-50 per confirmed registration in the table):
    the statement runs again with another code. The other outcomes are final.
    """
    while True:
        registration_id = uuid.uuid4()
        seat = {
            "event_id": event.id,
            "user_id": user.id,
            "registration_id": registration_id,
            "now": now,
            "checkin_code": checkin.generate(),
            **_seat_announcements(registration_id, event, user, now),
        }
        row = (await session.execute(SEAT, seat)).one_or_none()
        if row is None:
            raise EventNotFound()  # deleted while we waited
        registration, status, starts_at, deadline, registered_count, waitlist_count = row
        # The event as locked, without marking it changed: the statement wrote the counters.
        for name, value in (
            ("status", status),
            ("starts_at", starts_at),
            ("registration_deadline", deadline),
            ("registered_count", registered_count),
            ("waitlist_count", waitlist_count),
        ):
            set_committed_value(event, name, value)
        if (
            registration is not None
            or _not_open_reason(event, now) is not None
            or await _live_registration(session, event.id, user.id) is not None
        ):
            return registration, waitlist_count


async def register_for_event(
    session: AsyncSession, *, user: User, event_id: uuid.UUID
) -> tuple[Registration, int | None]:
    """A seat when one is free, else the end of the waitlist; decided under the event's lock.

    The lock serialises every registration of a popular event and is held until the commit, so
    everything that does not depend on the seat comes first (the checks, what the notice needs),
    then one statement takes the lock and decides (api.events.seats), then the notice is written.
    """
    event = await get_visible_event(session, event_id, viewer=user)
    _ensure_open(event)
    if await _live_registration(session, event.id, user.id) is not None:
        raise AlreadyRegistered()
    kind = NotificationKind.REGISTRATION_CONFIRMED
    channels = await channels_for(session, [user.id], kind)
    summary = event_summary(event)
    now = clock.now()
    registration, waitlist_count = await _take_seat(session, event, user, now)
    if registration is None:
        _ensure_open(event, now)  # cancelled, or closed, while we waited for the lock
        raise AlreadyRegistered()
    position = waitlist_count if registration.status is RegistrationStatus.WAITLISTED else None
    # The outbox row went out with the statement: only the notice is left to raise.
    await notify(session, user, kind, channels=channels, event=summary, waitlist_position=position)
    return registration, position


async def _promote(session: AsyncSession, event: Event) -> None:
    """Fill free seats from the head of the waitlist (the event is locked by the caller)."""
    if event.status is not EventStatus.PUBLISHED or not event.waitlist_count:
        return
    if event.starts_at <= clock.now():
        return  # a seat freed once the event has begun is no use to anyone in line
    free = None if event.capacity is None else event.capacity - event.registered_count
    if free is not None and free <= 0:
        return
    rows = (
        await session.execute(
            select(Registration, User)
            .join(User, col(User.id) == col(Registration.user_id))
            .where(
                col(Registration.event_id) == event.id,
                col(Registration.status) == RegistrationStatus.WAITLISTED,
            )
            .order_by(col(Registration.seq).asc())
            .limit(free)
        )
    ).all()
    if not rows:
        return
    await _confirm(session, [registration for registration, _ in rows], clock.now())
    event.registered_count += len(rows)
    event.waitlist_count -= len(rows)
    session.add(event)
    await announce(
        session,
        DomainEventType.REGISTRATION_PROMOTED,
        [attendee(registration, user) for registration, user in rows],
        notify=[user for _, user in rows],
        kind=NotificationKind.WAITLIST_PROMOTED,
        event=event_summary(event),
    )


async def _confirm(
    session: AsyncSession, registrations: Sequence[Registration], now: datetime
) -> None:
    """Promote waitlisted registrations, each with a new check-in code.

    Written in a savepoint: were a code already taken (a chance of 2^-50 per confirmed
    registration), the unique index refuses the write, and it is made again with new codes.
    """
    while True:
        try:
            async with session.begin_nested():
                for registration in registrations:
                    registration.status = RegistrationStatus.CONFIRMED
                    registration.promoted_at = registration.confirmed_at = now
                    registration.checkin_code = checkin.generate()
                    session.add(registration)
        except IntegrityError as error:
            if _constraint_name(error) != CHECKIN_CODE_INDEX:
                raise
            continue
        return


def _constraint_name(error: IntegrityError) -> str | None:
    return getattr(getattr(error.orig, "__cause__", None), "constraint_name", None)


async def _release(
    session: AsyncSession, event: Event, registration: Registration, user: User
) -> None:
    """Cancel one live registration (of `user`) of a locked event, and move the line up."""
    if registration.status is RegistrationStatus.CONFIRMED:
        event.registered_count -= 1
    else:
        event.waitlist_count -= 1
    registration.status = RegistrationStatus.CANCELLED
    registration.cancelled_at = clock.now()
    registration.checkin_code = None
    session.add_all([event, registration])
    await session.flush()
    await announce(session, DomainEventType.REGISTRATION_CANCELLED, attendee(registration, user))
    await _promote(session, event)


async def unregister_from_event(session: AsyncSession, *, user: User, event_id: uuid.UUID) -> None:
    event = await get_visible_event(session, event_id, viewer=user, lock=True)
    registration = await _live_registration(session, event.id, user.id)
    if registration is None:
        raise RegistrationNotFound()
    await _release(session, event, registration, user)


async def release_user_registrations(session: AsyncSession, *, user: User) -> None:
    """Before an account goes: give up its seats and places in line, as unregistering does."""
    event_ids = (
        await session.scalars(
            select(col(Registration.event_id))
            .where(
                col(Registration.user_id) == user.id,
                col(Registration.status).in_(ACTIVE_REGISTRATION),
            )
            .order_by(col(Registration.event_id))  # one lock order: no deadlock with others
        )
    ).all()
    for event_id in event_ids:
        event = await session.scalar(_event_by_id(event_id, lock=True))
        registration = await _live_registration(session, event_id, user.id)
        if event is not None and registration is not None:
            await _release(session, event, registration, user)


async def check_in(
    session: AsyncSession, *, event: Event, registration_id: uuid.UUID
) -> Registration:
    row = (
        await session.execute(
            select(Registration, User)
            .join(User, col(User.id) == col(Registration.user_id))
            .where(col(Registration.id) == registration_id, col(Registration.event_id) == event.id)
            .with_for_update(of=Registration)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        raise RegistrationNotFound()
    registration: Registration = row[0]
    user: User = row[1]
    if registration.status is not RegistrationStatus.CONFIRMED:
        raise NotConfirmed(reason=f"The registration is {registration.status}")
    if registration.checked_in_at is not None:
        raise AlreadyCheckedIn(
            reason="Already checked in", checked_in_at=registration.checked_in_at.isoformat()
        )
    registration.checked_in_at = clock.now()
    session.add(registration)
    await session.flush()
    await announce(session, DomainEventType.REGISTRATION_CHECKED_IN, attendee(registration, user))
    return registration


async def find_by_checkin_code(session: AsyncSession, *, event: Event, code: str) -> uuid.UUID:
    """The id of the event's registration holding `code` as typed, else 404."""
    normalised = checkin.normalise(code)
    registration_id: uuid.UUID | None = (
        None
        if normalised is None
        else await session.scalar(
            select(col(Registration.id)).where(
                col(Registration.checkin_code) == normalised,
                col(Registration.event_id) == event.id,
            )
        )
    )
    if registration_id is None:
        raise CheckinCodeNotFound()
    return registration_id


async def check_in_by_code(
    session: AsyncSession, *, event: Event, code: str
) -> tuple[Registration, User]:
    """Check in the holder of a check-in code, as check_in() does; with the registrant, for the
    attendee-list row."""
    registration_id = await find_by_checkin_code(session, event=event, code=code)
    registration = await check_in(session, event=event, registration_id=registration_id)
    registrant = await session.get(User, registration.user_id)
    assert registrant is not None  # the registration goes with its user (ON DELETE CASCADE)
    return registration, registrant


def _positions(*conditions: Any) -> Any:
    """Each waitlisted registration's place in its event's line."""
    return (
        select(
            col(Registration.id).label("id"),
            func.row_number()
            .over(partition_by=col(Registration.event_id), order_by=col(Registration.seq))
            .label("position"),
        )
        .where(col(Registration.status) == RegistrationStatus.WAITLISTED, *conditions)
        .subquery()
    )


def attendees_query(event: Event, status: RegistrationStatus | None) -> Select[Any]:
    """Confirmed first, then the waitlist in order; live registrations unless `status` says."""
    positions = _positions(col(Registration.event_id) == event.id)
    statement = (
        select(Registration, User, positions.c.position)
        .join(User, col(User.id) == col(Registration.user_id))
        .outerjoin(positions, positions.c.id == col(Registration.id))
        .where(col(Registration.event_id) == event.id)
    )
    if status is None:
        statement = statement.where(col(Registration.status).in_(ACTIVE_REGISTRATION))
    else:
        statement = statement.where(col(Registration.status) == status)
    return statement.order_by(col(Registration.status), col(Registration.seq))


async def list_attendees(
    session: AsyncSession,
    *,
    event: Event,
    params: PageParams,
    status: RegistrationStatus | None = None,
) -> tuple[Sequence[Any], Total]:
    return await paginate_rows(session, attendees_query(event, status), params)


async def all_attendees(
    session: AsyncSession, *, event: Event, status: RegistrationStatus | None = None
) -> Sequence[Any]:
    return (await session.execute(attendees_query(event, status))).all()


def user_registrations_query(user_id: uuid.UUID) -> Select[Any]:
    """Rows (registration, event, place in line) of the user's registrations, newest first."""
    own_events = select(col(Registration.event_id)).where(col(Registration.user_id) == user_id)
    positions = _positions(col(Registration.event_id).in_(own_events))
    return (
        select(Registration, Event, positions.c.position)
        .join(Event, col(Event.id) == col(Registration.event_id))
        .outerjoin(positions, positions.c.id == col(Registration.id))
        .where(col(Registration.user_id) == user_id)
        .order_by(col(Registration.created_at).desc(), col(Registration.seq).desc())
    )


async def get_user_registration(
    session: AsyncSession, *, user: User, registration_id: uuid.UUID
) -> tuple[Registration, Event, int | None]:
    """One of the user's registrations with its event and place in line; another's is 404."""
    statement = user_registrations_query(user.id).where(col(Registration.id) == registration_id)
    row = (await session.execute(statement)).first()
    if row is None:
        raise RegistrationNotFound()
    registration, event, position = row
    return registration, event, position


async def get_ticket_code(session: AsyncSession, *, user: User, registration_id: uuid.UUID) -> str:
    """The check-in code of one of the user's registrations: 404 for another's, 409 unless
    CONFIRMED."""
    registration = await session.scalar(
        select(Registration).where(
            col(Registration.id) == registration_id, col(Registration.user_id) == user.id
        )
    )
    if registration is None:
        raise RegistrationNotFound()
    if registration.status is not RegistrationStatus.CONFIRMED or not registration.checkin_code:
        raise NotConfirmed(reason=f"The registration is {registration.status}")
    return registration.checkin_code


async def list_user_registrations(
    session: AsyncSession, *, user: User, params: PageParams
) -> tuple[Sequence[Any], Total]:
    """The user's registrations, newest first, each with its event and place in line."""
    return await paginate_rows(session, user_registrations_query(user.id), params)
