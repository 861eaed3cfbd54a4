"""Answering a seat offer (API-attendees.md, Waitlist offers): accept it (OFFERED -> CONFIRMED)
or decline it (OFFERED -> CANCELLED, the seat offered on).

Both run under the event's row lock and settle its lapsed offers first, so an offer past its
time is never accepted: it is EXPIRED, and the answer says so (409 OFFER_EXPIRED).
"""

from sqlalchemy.ext.asyncio import AsyncSession

from api import clock
from api.errors import Conflict
from api.events import queries as event_queries
from api.events.models import Event
from api.events.notices import event_summary
from api.notifications.models import NotificationKind
from api.notifications.service import announce
from api.outbox.models import DomainEventType
from api.registrations import waitlist
from api.registrations.models import Registration, RegistrationStatus
from api.registrations.queries import own_registration_query
from api.registrations.service import RegistrationNotFound, release_registration
from api.users.models import User


class OfferExpired(Conflict):
    """The seat offered to the caller was not accepted in time; they may register again."""

    code = "OFFER_EXPIRED"
    example_reason = "The seat offered to you was not accepted in time; you may register again"
    example_extra = {"offer_expires_at": "2030-03-16T20:30:00+00:00"}


class NoOpenOffer(Conflict):
    """The caller has no open seat offer: still WAITLISTED, or CONFIRMED (give a seat up
    with DELETE)."""

    code = "NO_OPEN_OFFER"
    example_reason = "You are on the waitlist: no seat is offered to you yet"


async def _offer_of(session: AsyncSession, event: Event, user: User) -> Registration:
    """Lock the event, settle its lapsed offers, and return the user's live registration;
    404 when there is none (their latest CANCELLED, or none at all), 409 OFFER_EXPIRED when
    their latest is an expired offer."""
    await event_queries.lock_event(session, event)
    await waitlist.settle_locked(session, event)
    registration = await session.scalar(own_registration_query(event.id, user.id))
    if registration is None or registration.status is RegistrationStatus.CANCELLED:
        raise RegistrationNotFound()
    if registration.status is RegistrationStatus.EXPIRED:
        assert registration.offer_expires_at is not None
        raise OfferExpired(
            reason="The seat offered to you was not accepted in time; you may register again",
            offer_expires_at=registration.offer_expires_at.isoformat(),
        )
    return registration


async def accept_offer(session: AsyncSession, *, user: User, event: Event) -> Registration:
    """Take the seat offered to the user: CONFIRMED, with a check-in code, as a promotion is;
    an already CONFIRMED registration is returned unchanged."""
    registration = await _offer_of(session, event, user)
    if registration.status is RegistrationStatus.CONFIRMED:
        return registration
    if registration.status is RegistrationStatus.WAITLISTED:
        raise NoOpenOffer(reason="You are on the waitlist: no seat is offered to you yet")
    await waitlist.confirm(session, [registration], clock.now())
    event.offered_count -= 1
    session.add(event)
    await session.flush()
    await announce(
        session,
        DomainEventType.REGISTRATION_PROMOTED,
        waitlist.attendee(registration, user),
        notify=[user],
        kind=NotificationKind.REGISTRATION_CONFIRMED,
        event=event_summary(event),
        waitlist_position=None,  # a seat, not a place in line
    )
    return registration


async def decline_offer(session: AsyncSession, *, user: User, event: Event) -> Registration:
    """Turn down the seat offered to the user: CANCELLED, and the seat goes on down the line."""
    registration = await _offer_of(session, event, user)
    if registration.status is not RegistrationStatus.OFFERED:
        raise NoOpenOffer(
            reason=f"Your registration is {registration.status}, not an offer: give it up "
            f"with DELETE /api/v1/events/{event.id}/registrations/me"
        )
    await release_registration(session, event, registration, user)
    return registration
