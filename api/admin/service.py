"""Counts for the admin dashboard, each in one grouped query."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.events.models import Event, EventStatus
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User, UserRole


async def _by(session: AsyncSession, column: Any, values: type[StrEnum]) -> dict[str, int]:
    """Rows per value of `column`, every value present (0 when none)."""
    rows = await session.execute(select(column, func.count()).group_by(column))
    counts = {str(value): count for value, count in rows.tuples()}
    return {value.value: counts.get(value.value, 0) for value in values}


MONTHS = 12

# Each of the last MONTHS UTC months, oldest first, with the events created and published, the
# registrations made and the check-ins in it; months without any included. Each table is read
# once (a LATERAL VALUES turns a row into its dated marks), the marks are counted by month, and
# the 12 months are joined to those counts. No index backs the range: over a year it is most of
# both tables, for which a sequential scan is the right plan anyway, and an index on
# registration.created_at would slow every registration for a route only admins read.
_BY_MONTH = (
    text(
        """
WITH marks AS (
    SELECT mark.at, mark.kind
    FROM event,
        LATERAL (VALUES (event.created_at, 'events_created'),
            (event.published_at, 'events_published')) AS mark (at, kind)
    WHERE mark.at >= :since AND mark.at < :until
    UNION ALL
    SELECT mark.at, mark.kind
    FROM registration,
        LATERAL (VALUES (registration.created_at, 'registrations'),
            (registration.checked_in_at, 'check_ins')) AS mark (at, kind)
    WHERE mark.at >= :since AND mark.at < :until
), counts AS (
    SELECT date_trunc('month', at AT TIME ZONE 'UTC') AS start,
        count(*) FILTER (WHERE kind = 'events_created') AS events_created,
        count(*) FILTER (WHERE kind = 'events_published') AS events_published,
        count(*) FILTER (WHERE kind = 'registrations') AS registrations,
        count(*) FILTER (WHERE kind = 'check_ins') AS check_ins
    FROM marks
    GROUP BY 1
)
SELECT to_char(months.start, 'YYYY-MM') AS month,
    coalesce(counts.events_created, 0) AS events_created,
    coalesce(counts.events_published, 0) AS events_published,
    coalesce(counts.registrations, 0) AS registrations,
    coalesce(counts.check_ins, 0) AS check_ins
FROM generate_series(
        :since AT TIME ZONE 'UTC',
        (:until AT TIME ZONE 'UTC') - interval '1 month',
        interval '1 month'
    ) AS months (start)
    LEFT JOIN counts ON counts.start = months.start
ORDER BY months.start
"""
    )
    .bindparams(
        bindparam("since", type_=sa.DateTime(timezone=True)),
        bindparam("until", type_=sa.DateTime(timezone=True)),
    )
    .columns(
        month=sa.String(),
        events_created=sa.Integer(),
        events_published=sa.Integer(),
        registrations=sa.Integer(),
        check_ins=sa.Integer(),
    )
)


def _month_start(months_since_year_zero: int) -> datetime:
    year, month = divmod(months_since_year_zero, 12)
    return datetime(year, month + 1, 1, tzinfo=UTC)


def _month_window(now: datetime) -> tuple[datetime, datetime]:
    """The start of the UTC month MONTHS - 1 months before `now`'s, and of the month after."""
    current = now.astimezone(UTC)
    index = current.year * 12 + current.month - 1
    return _month_start(index - (MONTHS - 1)), _month_start(index + 1)


async def _by_month(session: AsyncSession) -> list[dict[str, Any]]:
    since, until = _month_window(clock.now())
    rows = await session.execute(_BY_MONTH, {"since": since, "until": until})
    return [dict(row._mapping) for row in rows]


async def get_stats(session: AsyncSession) -> dict[str, Any]:
    users = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(col(User.is_verified).is_(True)),
                func.count().filter(col(User.locked_until) > clock.now()),
                func.count().filter(col(User.is_professional).is_(True)),
            ).select_from(User)
        )
    ).one()
    by_role = await _by(session, col(User.role), UserRole)
    events = await _by(session, col(Event.status), EventStatus)
    registrations = await _by(session, col(Registration.status), RegistrationStatus)
    return {
        "users": {
            "total": users[0],
            "by_role": by_role,
            "verified": users[1],
            "locked": users[2],
            "professional": users[3],
        },
        "events": {"total": sum(events.values()), "by_status": events},
        "registrations": {"total": sum(registrations.values()), "by_status": registrations},
        "by_month": await _by_month(session),
    }
