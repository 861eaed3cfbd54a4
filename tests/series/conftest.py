"""Fixtures and helpers for the series tests."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.events.models import Event
from api.notifications.models import Notification, NotificationKind
from api.outbox.models import OutboxEvent
from api.series.models import Series
from api.users.models import User, UserRole
from tests.factories import create_user, event_body

SERIES = "/api/v1/series"
EVENTS = "/api/v1/events"
AuthAs = Callable[[User], Awaitable[dict[str, str]]]


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The service clock, frozen at the current second."""
    frozen = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(clock, "now", lambda: frozen)
    return frozen


@pytest.fixture
async def other_manager(session: AsyncSession) -> User:
    return await create_user(session, role=UserRole.MANAGER)


def series_body(rrule: str = "FREQ=WEEKLY;COUNT=3", **overrides: Any) -> dict[str, Any]:
    """A valid POST /series body: a weekly Berlin event a week from now, three times."""
    return event_body(rrule=rrule, **overrides)


def iso(moment: datetime) -> str:
    """A datetime as the API writes it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def last_sunday(year: int, month: int) -> date:
    """Europe's DST changes: the last Sunday of March and of October."""
    day = date(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def wall(moment: datetime | str, zone: str) -> str:
    """A start as the local clock reads it, with its offset."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %z")


def at(day: date, hour: int, zone: str, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(zone))


async def occurrences(session: AsyncSession, series_id: uuid.UUID | str | None) -> list[Event]:
    """The series' occurrences as the database holds them now, soonest first."""
    assert series_id is not None
    statement = (
        select(Event)
        .where(col(Event.series_id) == uuid.UUID(str(series_id)))
        .order_by(col(Event.starts_at))
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(statement)).all())


async def db_series(session: AsyncSession, series_id: uuid.UUID | str) -> Series | None:
    statement = (
        select(Series)
        .where(col(Series.id) == uuid.UUID(str(series_id)))
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).first()


async def notices(session: AsyncSession, kind: NotificationKind) -> list[tuple[uuid.UUID, Any]]:
    """(recipient, data) of every notice of `kind`, sorted."""
    rows = await session.execute(
        select(col(Notification.user_id), col(Notification.data)).where(
            col(Notification.kind) == kind
        )
    )
    return sorted(((user_id, data) for user_id, data in rows), key=str)


async def outbox_after(session: AsyncSession, seen: int) -> list[tuple[str, Any]]:
    rows = await session.scalars(
        select(OutboxEvent).where(col(OutboxEvent.id) > seen).order_by(col(OutboxEvent.id))
    )
    return [(str(row.type), row.data) for row in rows]


async def outbox_mark(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(OutboxEvent.id))) or 0)
