"""The calendar feed: making, rotating and reading a user's feed; always in the caller's
transaction.

A feed shows one VEVENT per event (api.events.calendar builds it, as for calendar.ics) the
owner holds a CONFIRMED registration for, or cancelled a CONFIRMED one of less than
CALENDAR_FEED_CANCELLED_DAYS ago, and for managers and admins each event they created; nothing
that ended FORGET_ENDED_AFTER ago or more. It is read in two statements whatever its size: the
owner by the token's hash, then every event with the owner's registrations summed up.
"""

import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import icalendar
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.errors import NotFound
from api.events.calendar import CANCELLED, ICAL_STATUS, PRODID, event_vevent
from api.events.models import Event, EventStatus
from api.feeds.models import (
    TOKEN_LENGTH,
    CalendarFeed,
    CalendarFeedPublic,
    feed_token,
    hash_feed_token,
    new_nonce,
)
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import STAFF_ROLES, User, UserRole

CALENDAR_NAME = "event-manager: my events"
REFRESH = timedelta(hours=1)
FORGET_ENDED_AFTER = timedelta(days=90)
TOKEN_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")


class CalendarFeedNotFound(NotFound):
    """No feed has this token: rotated, or its owner deactivated or deleted."""

    code = "CALENDAR_FEED_NOT_FOUND"


def feed_url(token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/api/v1/calendar/{token}.ics"


async def _shown(session: AsyncSession, feed: CalendarFeed) -> CalendarFeedPublic:
    """The feed's URL. Should the signing key have changed since the token was derived, the
    stored hash follows the token shown now (the old URL stops working, as on a rotation)."""
    token = feed_token(feed.nonce)
    if feed.token_hash != hash_feed_token(token):
        feed.token_hash = hash_feed_token(token)
        session.add(feed)
        await session.flush()
    return CalendarFeedPublic(url=feed_url(token), created_at=feed.created_at)


async def get_feed(session: AsyncSession, *, user_id: uuid.UUID) -> CalendarFeedPublic:
    """The user's feed, made on the first call (two first calls at once make one)."""
    by_user = select(CalendarFeed).where(col(CalendarFeed.user_id) == user_id)
    feed = await session.scalar(by_user)
    if feed is None:
        nonce = new_nonce()
        await session.execute(
            insert(CalendarFeed)
            .values(
                id=uuid.uuid4(),
                user_id=user_id,
                nonce=nonce,
                token_hash=hash_feed_token(feed_token(nonce)),
                created_at=clock.now(),
            )
            .on_conflict_do_nothing(index_elements=[col(CalendarFeed.user_id)])
        )
        feed = await session.scalar(by_user)
        assert feed is not None
    return await _shown(session, feed)


async def rotate_feed(session: AsyncSession, *, user_id: uuid.UUID) -> CalendarFeedPublic:
    """A new URL for the user's feed; the old one is not found from now on."""
    await get_feed(session, user_id=user_id)
    nonce = new_nonce()
    feed = await session.scalar(
        update(CalendarFeed)
        .where(col(CalendarFeed.user_id) == user_id)
        .values(nonce=nonce, token_hash=hash_feed_token(feed_token(nonce)), created_at=clock.now())
        .returning(CalendarFeed)
        .execution_options(populate_existing=True)
    )
    assert feed is not None
    return await _shown(session, feed)


# --- reading the feed -------------------------------------------------------------------------


async def _owner(session: AsyncSession, token: str) -> tuple[uuid.UUID, UserRole]:
    """The active owner of the feed the token opens, or CALENDAR_FEED_NOT_FOUND."""
    if not TOKEN_SHAPE.fullmatch(token):
        raise CalendarFeedNotFound()
    row = (
        await session.execute(
            select(col(User.id), col(User.role))
            .join(CalendarFeed, col(CalendarFeed.user_id) == col(User.id))
            .where(
                col(CalendarFeed.token_hash) == hash_feed_token(token),
                col(User.is_active).is_(True),
            )
        )
    ).first()
    if row is None:
        raise CalendarFeedNotFound()
    return row[0], row[1]


def _feed_events(owner_id: uuid.UUID, *, staff: bool, now: datetime) -> Any:
    """Rows (event, holds a seat, registration changes, last registration change) of the feed.

    The owner's registrations are summed up per event: SEQUENCE adds how often the registration
    was cancelled or made again (each registration row but the first was made again; rows are
    never deleted while the owner exists, so this never falls)."""
    # An expired offer ended the registration as a cancellation does.
    cancelled = col(Registration.status).in_(
        (RegistrationStatus.CANCELLED, RegistrationStatus.EXPIRED)
    )
    recent = now - timedelta(days=settings.CALENDAR_FEED_CANCELLED_DAYS)
    held = (
        select(
            col(Registration.event_id).label("event_id"),
            func.bool_or(col(Registration.status) == RegistrationStatus.CONFIRMED).label("seat"),
            func.bool_or(
                and_(
                    cancelled,
                    col(Registration.confirmed_at).is_not(None),
                    col(Registration.cancelled_at) > recent,
                )
            ).label("recently_cancelled"),
            (func.count().filter(cancelled) + func.count() - 1).label("changes"),
            func.max(col(Registration.updated_at)).label("changed_at"),
        )
        .where(col(Registration.user_id) == owner_id)
        .group_by(col(Registration.event_id))
        .cte("held")
    )
    # The events to show, as ids: each part is read through its own index (the registrations'
    # user_id, the events' created_by), then the events by primary key.
    shown: Any = select(held.c.event_id).where(or_(held.c.seat, held.c.recently_cancelled))
    if staff:
        shown = shown.union(select(col(Event.id)).where(col(Event.created_by) == owner_id))
    return (
        select(Event, held.c.seat, held.c.changes, held.c.changed_at)
        .outerjoin(held, held.c.event_id == col(Event.id))
        .where(col(Event.id).in_(shown), col(Event.ends_at) > now - FORGET_ENDED_AFTER)
        .order_by(col(Event.starts_at), col(Event.id))
    )


def _vevent(
    event: Event,
    *,
    owner_id: uuid.UUID,
    staff: bool,
    seat: bool | None,
    changes: int | None,
    changed_at: datetime | None,
) -> icalendar.Event:
    creator = staff and event.created_by == owner_id
    if event.status is EventStatus.CANCELLED or not (seat or creator):
        status = CANCELLED  # the event, or the owner's registration, was cancelled
    else:
        status = ICAL_STATUS[event.status]
    modified = event.updated_at if changed_at is None else max(event.updated_at, changed_at)
    return event_vevent(
        event, status=status, sequence=event.revision + (changes or 0), modified=modified
    )


def feed_calendar(vevents: Sequence[icalendar.Event]) -> bytes:
    """The VCALENDAR of a feed: published for subscription, refreshed hourly. Built property by
    property: the same events always give the same bytes (and so the same ETag)."""
    calendar = icalendar.Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "PUBLISH")
    calendar.add("X-WR-CALNAME", CALENDAR_NAME)
    calendar.add("REFRESH-INTERVAL", icalendar.vDuration(REFRESH), parameters={"VALUE": "DURATION"})
    calendar.add("X-PUBLISHED-TTL", icalendar.vDuration(REFRESH))
    for vevent in vevents:
        calendar.add_component(vevent)
    ical: bytes = calendar.to_ical()
    return ical


async def read_feed(session: AsyncSession, *, token: str) -> bytes:
    """The feed the token opens, as an RFC 5545 calendar; CALENDAR_FEED_NOT_FOUND for an unknown
    token, an old one (rotated) and a deactivated owner's."""
    owner_id, role = await _owner(session, token)
    staff = role in STAFF_ROLES
    rows = await session.execute(_feed_events(owner_id, staff=staff, now=clock.now()))
    return feed_calendar(
        [
            _vevent(
                event,
                owner_id=owner_id,
                staff=staff,
                seat=seat,
                changes=changes,
                changed_at=changed_at,
            )
            for event, seat, changes, changed_at in rows
        ]
    )
