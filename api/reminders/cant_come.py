"""The "can't come" link of a reminder mail: a signed token for one CONFIRMED registration, and
giving the seat up with it.

The token is a JWT (HS256 with the key of the verification and reset tokens, but its own
audience, so none of them stands in for another) that names the registration, expires when the
event starts, and is bound to the seat it was issued for (a digest of the registration's id and
confirmed_at). It works only while that registration still holds that seat: once used, the
registration is CANCELLED for good (registering again makes a new one), so the link never works
again. Nothing of it is stored; the link is the authorisation, so the form that posts it needs
no other credential (and no CSRF token: a forged post needs the token it would forge).
"""

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.events import queries as event_queries
from api.events.models import Event
from api.registrations import service as registration_service
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User

AUDIENCE = "event-manager:cant-come"
ALGORITHM = "HS256"
# Ours are about 300 characters; anything much longer is not worth decoding.
MAX_TOKEN_LENGTH = 2048
PATH = "/cant-come"


class InvalidLink(Exception):  # noqa: N818 - a page says so; not an error of the service
    """The token is malformed, forged, expired, or its seat is already given up."""


@dataclass(frozen=True)
class Seat:
    """The registration a valid link gives up, with its event and registrant."""

    registration: Registration
    event: Event
    user: User


@dataclass(frozen=True)
class _Claims:
    registration_id: uuid.UUID
    expires: int
    seat_digest: str


def _seat_digest(registration: Registration) -> str:
    confirmed = registration.confirmed_at
    stamp = "" if confirmed is None else confirmed.astimezone(UTC).isoformat()
    return hashlib.sha256(f"{registration.id}:{stamp}".encode()).hexdigest()[:32]


def issue_token(registration: Registration, *, starts_at: datetime, hours_before: int) -> str:
    """The token of one reminder mail to one CONFIRMED registration of an event at `starts_at`."""
    claims: dict[str, Any] = {
        "sub": str(registration.id),
        "aud": AUDIENCE,
        "exp": int(starts_at.timestamp()),
        "seat": _seat_digest(registration),
        # One token per reminder: the 24-hour and the 2-hour mails carry different links.
        "hours_before": hours_before,
    }
    return jwt.encode(claims, settings.signing_key, algorithm=ALGORITHM)


def link(token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{PATH}?token={token}"


def _claims(token: str) -> _Claims:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidLink()
    try:
        # Expiry is checked against the service's clock below, not the machine's.
        data = jwt.decode(
            token,
            settings.signing_key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "aud", "exp", "seat"], "verify_exp": False},
        )
        expires, seat_digest = data["exp"], data["seat"]
        if not isinstance(expires, int) or not isinstance(seat_digest, str):
            raise InvalidLink()
        return _Claims(uuid.UUID(str(data["sub"])), expires, seat_digest)
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as error:
        raise InvalidLink() from error


def _check(claims: _Claims, registration: Registration, event: Event) -> None:
    now = clock.now()
    if (
        registration.status is not RegistrationStatus.CONFIRMED
        or not hmac.compare_digest(claims.seat_digest, _seat_digest(registration))
        or now.timestamp() >= claims.expires
        or now >= event.starts_at
    ):
        raise InvalidLink()


async def _load(session: AsyncSession, claims: _Claims) -> Seat:
    row = (
        await session.execute(
            select(Registration, Event, User)
            .join(Event, col(Event.id) == col(Registration.event_id))
            .join(User, col(User.id) == col(Registration.user_id))
            .where(col(Registration.id) == claims.registration_id)
        )
    ).one_or_none()
    if row is None:
        raise InvalidLink()
    seat = Seat(*row)
    _check(claims, seat.registration, seat.event)
    return seat


async def seat_for(session: AsyncSession, token: str) -> Seat:
    """What the link would give up (GET: nothing changes); InvalidLink when nothing."""
    return await _load(session, _claims(token))


async def give_up_seat(session: AsyncSession, token: str) -> Seat:
    """Release the link's registration exactly as DELETE /events/{id}/registrations/me does
    (the seat then goes on by the event's waitlist rules); InvalidLink when there is none.

    Checked again under the event's row lock, which every seat change takes, so that what is
    released is the link's own registration as it is now (not, say, one its user made again
    since); of two posts of one link, the second waits, then finds the seat given up.
    """
    claims = _claims(token)
    seat = await _load(session, claims)
    try:
        event = await event_queries.get_visible_event(
            session, seat.event.id, viewer=seat.user, lock=True
        )
        await session.refresh(seat.registration)
        _check(claims, seat.registration, event)
        await registration_service.unregister_from_event(session, user=seat.user, event=event)
    except (event_queries.EventNotFound, registration_service.RegistrationNotFound) as error:
        raise InvalidLink() from error
    return seat
