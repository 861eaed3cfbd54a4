"""The waitlist: filling an event's free seats from the head of its line, and settling the offers
that lapsed (API-attendees.md, Waitlist offers).

A freed seat goes to the head of the line at once in AUTO mode (WAITLISTED -> CONFIRMED,
WAITLIST_PROMOTED), or is offered in OFFER mode (WAITLISTED -> OFFERED, WAITLIST_OFFER): the
offer holds the seat until `offer_expires_at`, now + offer_hours capped at the start. No offer is
made once the event has started or its registration deadline has passed. An offer not accepted
in time becomes EXPIRED (WAITLIST_OFFER_EXPIRED) when it is settled, and its seat moves on.

Everything here runs under the event's row lock, as every seat change does (api.events.service):
each freed seat is filled once, the counters stay exact and the line keeps its order. Lapsed
offers are settled by the routes of the event before their own work (api.registrations
.dependencies) and for all events by the `expire_waitlist_offers` job every minute.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Row, exists, literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.events import queries as event_queries
from api.events.models import Event, EventStatus, WaitlistMode
from api.events.notices import event_summary
from api.notifications.models import NotificationKind
from api.notifications.service import announce, notify_each
from api.outbox.models import DomainEventType
from api.registrations import checkin
from api.registrations.models import Attendee, Registration, RegistrationStatus
from api.users.models import User, UserPublic

# The unique index on registration.checkin_code.
CHECKIN_CODE_INDEX = "uq_registration_checkin_code"
# An open offer, written as the predicate of ix_registration_open_offer (a literal, not a bind
# parameter), so that the planner may read that small index whatever plan it caches.
OPEN_OFFER = col(Registration.status) == literal_column("'OFFERED'")


def attendee(registration: Registration, user: User, position: int | None = None) -> Attendee:
    """A registration as the attendee list shows it: the data of `registration.*` events."""
    return Attendee.model_validate(
        registration,
        update={"waitlist_position": position, "user": UserPublic.model_validate(user)},
    )


# --- filling free seats -----------------------------------------------------------------------


def offers_closed(event: Event, now: datetime) -> bool:
    """No offer is made once the event has started or its registration deadline has passed."""
    deadline = event.registration_deadline
    return event.starts_at <= now or (deadline is not None and deadline < now)


async def fill_free_seats(session: AsyncSession, event: Event) -> None:
    """Fill the free seats of a locked event from the head of its waitlist, as its mode says.

    Called after every change that frees a seat (unregister, decline, expiry, capacity raised,
    account deleted) and after a mode switch: open offers run their course, free seats follow
    the mode the event has now.
    """
    if event.status is not EventStatus.PUBLISHED or not event.waitlist_count:
        return
    now = clock.now()
    if event.starts_at <= now:
        return  # a seat freed once the event has begun is no use to anyone in line
    offering = event.waitlist_mode is WaitlistMode.OFFER
    if offering and offers_closed(event, now):
        return  # the seat stays free and the line stays as it is
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
    if offering:
        await _offer(session, event, rows, now)
    else:
        await _promote(session, event, rows, now)


async def _promote(
    session: AsyncSession,
    event: Event,
    rows: Sequence[Row[tuple[Registration, User]]],
    now: datetime,
) -> None:
    """AUTO: the head of the line takes the free seats at once."""
    await confirm(session, [registration for registration, _ in rows], now)
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


async def _offer(
    session: AsyncSession,
    event: Event,
    rows: Sequence[Row[tuple[Registration, User]]],
    now: datetime,
) -> None:
    """OFFER: each free seat is offered to the next in line, held until offer_expires_at.

    An offer is no domain event of its own: integrations hear of it when it ends, as
    `registration.promoted` (accepted) or `registration.cancelled` (declined or expired).
    """
    expires_at = min(now + timedelta(hours=event.offer_hours), event.starts_at)
    for registration, _ in rows:
        registration.status = RegistrationStatus.OFFERED
        registration.offer_expires_at = expires_at
    event.registered_count += len(rows)
    event.offered_count += len(rows)
    event.waitlist_count -= len(rows)
    session.add_all([event, *(registration for registration, _ in rows)])
    await session.flush()
    summary = event_summary(event)
    await notify_each(
        session,
        NotificationKind.WAITLIST_OFFER,
        [
            (
                user,
                {
                    "event": summary,
                    "registration_id": registration.id,
                    "offer_expires_at": expires_at,
                },
            )
            for registration, user in rows
        ],
    )


async def confirm(
    session: AsyncSession, registrations: Sequence[Registration], now: datetime
) -> None:
    """Give registrations of the line (waitlisted, or offered and accepted) their seats, each
    with a new check-in code.

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


# --- settling lapsed offers -------------------------------------------------------------------


async def has_lapsed_offers(session: AsyncSession, event: Event) -> bool:
    """Whether the event has offers past their time (read without the lock). An event without
    open offers (its offered_count, as loaded) costs no statement."""
    if not event.offered_count:
        return False
    lapsed = exists().where(
        col(Registration.event_id) == event.id,
        OPEN_OFFER,
        col(Registration.offer_expires_at) <= clock.now(),
    )
    return bool(await session.scalar(select(lapsed)))


async def settle_lapsed_offers(session: AsyncSession, event: Event) -> int:
    """Expire the event's lapsed offers and move their seats on, in the caller's transaction,
    under the event's row lock (taken here; `event` is re-read). The number of offers expired.

    The session must be in a transaction, so that the lock holds until it commits: a route
    calls api.registrations.dependencies.settle_first() instead, which sees to that and takes
    the lock only when has_lapsed_offers() says there is something to settle.
    """
    await event_queries.lock_event(session, event)
    return await settle_locked(session, event)


async def settle_locked(session: AsyncSession, event: Event) -> int:
    """settle_lapsed_offers() for an event whose row lock the caller holds."""
    if not event.offered_count:
        return 0
    now = clock.now()
    rows = (
        await session.execute(
            select(Registration, User)
            .join(User, col(User.id) == col(Registration.user_id))
            .where(
                col(Registration.event_id) == event.id,
                OPEN_OFFER,
                col(Registration.offer_expires_at) <= now,
            )
            .order_by(col(Registration.seq))
        )
    ).all()
    if not rows:
        return 0
    for registration, _ in rows:
        registration.status = RegistrationStatus.EXPIRED
        registration.cancelled_at = now
    event.registered_count -= len(rows)
    event.offered_count -= len(rows)
    session.add_all([event, *(registration for registration, _ in rows)])
    await session.flush()
    summary = event_summary(event)
    await announce(
        session,
        DomainEventType.REGISTRATION_CANCELLED,
        [attendee(registration, user) for registration, user in rows],
    )
    await notify_each(
        session,
        NotificationKind.WAITLIST_OFFER_EXPIRED,
        [
            (user, {"event": summary, "registration_id": registration.id})
            for registration, user in rows
        ],
    )
    await fill_free_seats(session, event)
    return len(rows)


async def expire_waitlist_offers(session: AsyncSession) -> int:
    """The job's work: settle the lapsed offers of every event, in the caller's transaction.

    The events are locked in id order (no deadlock with another settler); an event locked by
    someone else is passed by (SKIP LOCKED): its next route settles it, or the next run does.
    The number of offers expired.
    """
    due = select(col(Registration.event_id)).where(
        OPEN_OFFER, col(Registration.offer_expires_at) <= clock.now()
    )
    events = await session.scalars(
        select(Event)
        .where(col(Event.id).in_(due))
        .order_by(col(Event.id))
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    expired = 0
    for event in events.all():
        expired += await settle_locked(session, event)
    return expired
