"""What the waitlist-offer tests share: a clock they move, an OFFER-mode event with a line, and
readers of the rows, notices and outbox rows the offers leave."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.events.models import Event, WaitlistMode
from api.notifications.models import Notification, NotificationKind
from api.outbox.models import OutboxEvent
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User
from tests.factories import create_event, create_user, register

CONFIRMED = RegistrationStatus.CONFIRMED
OFFERED = RegistrationStatus.OFFERED
WAITLISTED = RegistrationStatus.WAITLISTED
CANCELLED = RegistrationStatus.CANCELLED
EXPIRED = RegistrationStatus.EXPIRED
OFFER_HOURS = 12


class Clock:
    """The service clock (api.clock.now), frozen at `at` and moved by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


def whole_second() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def url(event_id: uuid.UUID, tail: str = "") -> str:
    return f"/api/v1/events/{event_id}/registrations{tail}"


@dataclass
class Line:
    """An OFFER-mode event, full: `seated` hold its seats, `waiting` are in line, in order."""

    event: Event
    seated: list[User]
    waiting: list[User]


async def offer_event(
    session: AsyncSession,
    owner: User,
    *,
    capacity: int = 1,
    waiting: int = 2,
    **fields: Any,
) -> Line:
    fields.setdefault("waitlist_mode", WaitlistMode.OFFER)
    fields.setdefault("offer_hours", OFFER_HOURS)
    event = await create_event(session, owner=owner, capacity=capacity, **fields)
    seated = [await create_user(session) for _ in range(capacity)]
    line = [await create_user(session) for _ in range(waiting)]
    for user in [*seated, *line]:
        await register(session, event, user)
    return Line(event, seated, line)


async def registrations(session: AsyncSession, event: Event) -> list[Registration]:
    """The event's registrations as the database has them, in arrival order."""
    rows = await session.scalars(
        select(Registration)
        .where(col(Registration.event_id) == event.id)
        .order_by(col(Registration.seq))
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def statuses(session: AsyncSession, event: Event) -> list[tuple[uuid.UUID, str]]:
    return [(row.user_id, str(row.status)) for row in await registrations(session, event)]


async def counters(session: AsyncSession, event: Event) -> tuple[int, int, int]:
    """(registered_count, offered_count, waitlist_count), as stored."""
    await session.refresh(event)
    return event.registered_count, event.offered_count, event.waitlist_count


async def counted_rows(session: AsyncSession, event: Event) -> tuple[int, int, int]:
    """The same three, counted from the rows: CONFIRMED + OFFERED, OFFERED, WAITLISTED."""
    rows = await session.execute(
        select(col(Registration.status), func.count())
        .where(col(Registration.event_id) == event.id)
        .group_by(col(Registration.status))
    )
    by_status: dict[RegistrationStatus, int] = dict(rows.tuples().all())
    offered = by_status.get(OFFERED, 0)
    return by_status.get(CONFIRMED, 0) + offered, offered, by_status.get(WAITLISTED, 0)


async def notices(
    session: AsyncSession, *kinds: NotificationKind
) -> list[tuple[uuid.UUID, NotificationKind, dict[str, Any]]]:
    """(user, kind, data) of the stored notices of `kinds`, oldest first."""
    rows = await session.scalars(
        select(Notification)
        .where(col(Notification.kind).in_(kinds))
        .order_by(col(Notification.created_at), col(Notification.id))
    )
    return [(row.user_id, row.kind, row.data) for row in rows]


async def last_outbox_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(OutboxEvent.id))) or 0)


async def outbox_since(session: AsyncSession, after: int) -> list[tuple[str, str, str]]:
    """(type, registration id, status) of the registration.* rows written after `after`."""
    rows = await session.scalars(
        select(OutboxEvent).where(col(OutboxEvent.id) > after).order_by(col(OutboxEvent.id))
    )
    return [
        (str(row.type), row.data["id"], row.data["status"])
        for row in rows
        if str(row.type).startswith("registration.")
    ]
