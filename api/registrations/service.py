"""Registration rules: taking a seat or a place in line, giving a registration up, and check-in
(by registration or by check-in code).

Every change to an event's seats happens under that event's row lock (SELECT ... FOR UPDATE),
as api.events.service describes. Freed seats go to the waitlist as api.registrations.waitlist
says (promotions, offers and their expiry); accepting and declining an offer are in
api.registrations.offers; the attendee list and the caller's own registrations are read in
api.registrations.queries.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from api import clock
from api.errors import Conflict, NotFound
from api.events import queries as event_queries
from api.events import service as event_service
from api.events.models import Event, EventStatus
from api.events.notices import event_summary
from api.notifications.models import NotificationKind
from api.notifications.service import announce, channels_for, notify
from api.outbox.models import DomainEventType
from api.registrations import checkin, hooks, waitlist
from api.registrations.models import ACTIVE_REGISTRATION, Attendee, Registration, RegistrationStatus
from api.registrations.seats import SEAT
from api.registrations.waitlist import attendee
from api.users.models import User, UserPublic


class EventNotOpen(Conflict):
    """The event takes no registrations: not published, cancelled, started, or past its
    registration deadline."""

    code = "EVENT_NOT_OPEN"
    example_reason = "The registration deadline has passed"


class AlreadyRegistered(Conflict):
    """The caller already holds a live registration (CONFIRMED, OFFERED or WAITLISTED) for
    the event."""

    code = "ALREADY_REGISTERED"


class RegistrationNotFound(NotFound):
    """The caller (or the event) has no such registration."""

    code = "REGISTRATION_NOT_FOUND"


class AlreadyCheckedIn(Conflict):
    """The attendee checked in already; `checked_in_at` says when."""

    code = "ALREADY_CHECKED_IN"
    example_reason = "Already checked in"
    example_extra = {"checked_in_at": "2030-03-19T16:52:31.114021+00:00"}


class NotConfirmed(Conflict):
    """The registration is not CONFIRMED (waitlisted, offered or ended)."""

    code = "NOT_CONFIRMED"
    example_reason = "The registration is WAITLISTED"


class CheckinCodeNotFound(NotFound):
    """No CONFIRMED registration of this event has this check-in code."""

    code = "CHECKIN_CODE_NOT_FOUND"


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
            offer_expires_at=None,
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
            raise event_queries.EventNotFound()  # deleted while we waited
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
    session: AsyncSession, *, user: User, event: Event
) -> tuple[Registration, int | None]:
    """A seat when one is free, else the end of the waitlist; decided under the event's lock.
    `event` is visible to the user (its lapsed offers settled first, by the route).

    The lock serialises every registration of a popular event and is held until the commit, so
    everything that does not depend on the seat comes first (the checks, what the notice needs),
    then one statement takes the lock and decides (api.registrations.seats), then the notice is
    written.
    """
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


async def release_registration(
    session: AsyncSession, event: Event, registration: Registration, user: User
) -> None:
    """Cancel one live registration (of `user`) of a locked event (an offer: declined), and
    let the seat it held go to the line. A seat's holder leaves the event's networking
    directory at once."""
    was_confirmed = registration.status is RegistrationStatus.CONFIRMED
    if registration.status is RegistrationStatus.WAITLISTED:
        event.waitlist_count -= 1
    else:
        event.registered_count -= 1
        if registration.status is RegistrationStatus.OFFERED:
            event.offered_count -= 1
    registration.status = RegistrationStatus.CANCELLED
    registration.cancelled_at = clock.now()
    registration.checkin_code = None
    session.add_all([event, registration])
    await session.flush()
    if was_confirmed:
        await hooks.left_confirmed(session, [event.id], user.id)
    await announce(session, DomainEventType.REGISTRATION_CANCELLED, attendee(registration, user))
    await waitlist.fill_free_seats(session, event)


async def unregister_from_event(session: AsyncSession, *, user: User, event: Event) -> None:
    """Give up the user's live registration of `event` (visible to them): a seat, a place in
    line, or an offer (a decline)."""
    await event_queries.lock_event(session, event)
    await waitlist.settle_locked(session, event)
    registration = await _live_registration(session, event.id, user.id)
    if registration is None:
        raise RegistrationNotFound()
    await release_registration(session, event, registration, user)


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
        event = await session.scalar(event_queries.event_by_id(event_id, lock=True))
        if event is None:
            continue
        await waitlist.settle_locked(session, event)
        registration = await _live_registration(session, event_id, user.id)
        if registration is not None:
            await release_registration(session, event, registration, user)


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


async def release_event_registrations(
    session: AsyncSession, events: Sequence[Event], registrants: Sequence[User], now: datetime
) -> None:
    """Cancel every live registration of the cancelled `events` (locked by the caller) in one
    statement, and empty their networking directories; `registrants` are their users."""
    released = await session.scalars(
        update(Registration)
        .where(
            col(Registration.event_id).in_([event.id for event in events]),
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
    await hooks.left_confirmed(session, [event.id for event in events], None)
    users = {user.id: user for user in registrants}
    await announce(
        session,
        DomainEventType.REGISTRATION_CANCELLED,
        [attendee(registration, users[registration.user_id]) for registration in released],
    )


# The event workflow runs these in its transactions: a raised capacity or a mode switch fills
# seats from the waitlist, a cancellation releases every registration (events do not import
# registrations).
event_service.join_registration_rules(
    fill_seats=waitlist.fill_free_seats, release_all=release_event_registrations
)
