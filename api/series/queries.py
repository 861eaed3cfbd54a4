"""Reading series: who may see one (the events' rule, in SQL), the loaders, and the public shape
with what it shows of its occurrences."""

import uuid
from typing import Any

from sqlalchemy import Select, String, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.errors import NotFound
from api.events.models import Event
from api.events.queries import visibility_rule
from api.series.models import Series, SeriesPublic
from api.users.models import User, Viewer


class SeriesNotFound(NotFound):
    """No series has this id, or the caller may not see it."""

    code = "SERIES_NOT_FOUND"


def _visible_to(viewer: User | Viewer | None) -> Any:
    """Visible as an event is: PUBLISHED to everyone, else to its creator, managers, admins."""
    return visibility_rule(viewer, status=col(Series.status), created_by=col(Series.created_by))


def series_by_id(series_id: uuid.UUID, *, lock: bool) -> Select[tuple[Series]]:
    """The series; with `lock`, its row lock taken and the row re-read."""
    statement = select(Series).where(col(Series.id) == series_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return statement


async def get_visible_series(
    session: AsyncSession, series_id: uuid.UUID, *, viewer: User | None
) -> Series:
    """The series, or 404 when it does not exist or the viewer may not see it."""
    series = await session.scalar(series_by_id(series_id, lock=False).where(_visible_to(viewer)))
    if series is None:
        raise SeriesNotFound()
    return series


async def lock_series(session: AsyncSession, series: Series) -> Series:
    """Take the series' row lock (before any of its occurrences') and re-read it."""
    await session.execute(series_by_id(series.id, lock=True))
    return series


def occurrences_of(series_id: uuid.UUID, *, lock: bool) -> Select[tuple[Event]]:
    """The series' occurrences; with `lock`, their row locks taken in id order (the order every
    change to several events takes them in, so that two never wait on each other)."""
    statement = select(Event).where(col(Event.series_id) == series_id)
    if lock:
        statement = (
            statement.order_by(col(Event.id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    return statement


# What a series shows of its occurrences, computed from them in the same statement.
_OCCURRENCES = (
    select(
        func.count().label("occurrence_count"),
        func.min(col(Event.starts_at)).label("first_starts_at"),
        func.max(col(Event.starts_at)).label("last_starts_at"),
        func.array_agg(
            aggregate_order_by(col(Event.title), col(Event.starts_at), col(Event.id)),
            type_=ARRAY(String),
        )[1].label("title"),
    )
    .where(col(Event.series_id) == col(Series.id))
    .lateral("occurrences")
)
_PUBLIC_SERIES = select(Series, *_OCCURRENCES.c).join(_OCCURRENCES, true())


def _public(row: Any) -> SeriesPublic:
    series, *occurrences = row
    values = dict(zip(_OCCURRENCES.c.keys(), occurrences, strict=True))
    return SeriesPublic.model_validate(series, update=values)


async def get_public_series(
    session: AsyncSession, series_id: uuid.UUID, *, viewer: User | None
) -> SeriesPublic:
    """GET /series/{id}: the series as the viewer may see it, else 404."""
    row = (
        await session.execute(
            _PUBLIC_SERIES.where(col(Series.id) == series_id, _visible_to(viewer))
        )
    ).first()
    if row is None:
        raise SeriesNotFound()
    return _public(row)


async def public_series_of(session: AsyncSession, *, created_by: uuid.UUID) -> list[SeriesPublic]:
    """Every series `created_by` created, oldest first (the personal data export)."""
    rows = await session.execute(
        _PUBLIC_SERIES.where(col(Series.created_by) == created_by).order_by(
            col(Series.created_at), col(Series.id)
        )
    )
    return [_public(row) for row in rows]
