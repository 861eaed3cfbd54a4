"""An event's statistics (API-attendees.md, Event insights), counted in PostgreSQL.

Two statements whatever the number of registrations: the counts by status with the two rates,
then the day-by-day timeline. Both read the event's registrations through its event_id indexes.
"""

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Numeric, Select, bindparam, cast, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.events.models import Event
from api.insights.models import EventStats, RegistrationCounts, TimelineDay
from api.registrations.models import Registration, RegistrationStatus

# Rates are reported to 4 decimal places, rounded half away from zero (PostgreSQL numeric).
RATE_PLACES = 4


def _ratio(numerator: Any, denominator: Any) -> Any:
    """numerator / denominator as numeric; NULL when the denominator is 0."""
    return cast(numerator, Numeric) / func.nullif(denominator, 0)


def _rounded(rate: Any) -> Any:
    return func.round(rate, RATE_PLACES)


def _counts_statement(event_id: Any) -> Select[Any]:
    """One row per current status of the event's registrations (status, count), plus the ROLLUP
    row (status NULL: the status column is NOT NULL, so only the total row has none) holding the
    checked-in count and the two rates over all of them.

    Grouping by status, rather than naming each status, reports any status the enum gains.
    """
    status = col(Registration.status)
    promoted = col(Registration.promoted_at).is_not(None)
    confirmed = func.count().filter(status == RegistrationStatus.CONFIRMED)
    checked_in = func.count().filter(
        status == RegistrationStatus.CONFIRMED, col(Registration.checked_in_at).is_not(None)
    )
    # "Ever WAITLISTED": a registration starts either CONFIRMED, with confirmed_at set at
    # creation, or WAITLISTED, with confirmed_at NULL until it gets a seat, when promoted_at and
    # confirmed_at are set together. confirmed_at is kept when it is cancelled. So a row waited
    # in line at some point exactly when it was promoted, or never got a seat at all.
    ever_waitlisted = func.count().filter(or_(promoted, col(Registration.confirmed_at).is_(None)))
    return (
        select(
            status,
            func.count().label("registrations"),
            checked_in.label("checked_in"),
            _rounded(1 - _ratio(checked_in, confirmed)).label("no_show_rate"),
            _rounded(_ratio(func.count().filter(promoted), ever_waitlisted)).label(
                "waitlist_conversion"
            ),
        )
        .where(col(Registration.event_id) == event_id)
        .group_by(func.rollup(status))
    )


# Each registration marks the day it was made and, if so, the day it was cancelled, both in the
# event's time zone; every day from the first mark to the last is reported, days without any
# included. No registration: no marks, min() and max() are NULL, and the series is empty.
# (Dates are stepped as timestamps without time zone, so a DST change moves nothing.)
_TIMELINE = (
    text(
        """
WITH marks AS (
    SELECT (mark.at AT TIME ZONE :timezone)::date AS day, mark.is_cancellation
    FROM registration,
        LATERAL (VALUES (registration.created_at, false), (registration.cancelled_at, true))
            AS mark (at, is_cancellation)
    WHERE registration.event_id = :event_id AND mark.at IS NOT NULL
), days AS (
    SELECT day::date AS day
    FROM (SELECT min(day) AS first_day, max(day) AS last_day FROM marks) AS span,
        generate_series(span.first_day::timestamp, span.last_day::timestamp, interval '1 day')
            AS day
)
SELECT days.day AS date,
    count(marks.day) FILTER (WHERE NOT marks.is_cancellation) AS registered,
    count(marks.day) FILTER (WHERE marks.is_cancellation) AS cancelled
FROM days LEFT JOIN marks ON marks.day = days.day
GROUP BY days.day
ORDER BY days.day
"""
    )
    .bindparams(bindparam("event_id", type_=sa.Uuid()), bindparam("timezone", type_=sa.String()))
    .columns(date=sa.Date(), registered=sa.Integer(), cancelled=sa.Integer())
)


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


async def get_event_stats(session: AsyncSession, *, event: Event) -> EventStats:
    """The event's registrations by status, its no-show rate and waitlist conversion, and its
    registrations and cancellations per day."""
    rows = (await session.execute(_counts_statement(event.id))).all()
    by_status = {str(row.status): row.registrations for row in rows if row.status is not None}
    total = next((row for row in rows if row.status is None), None)
    timeline = (
        await session.execute(_TIMELINE, {"event_id": event.id, "timezone": event.timezone})
    ).all()
    counts = RegistrationCounts(
        confirmed=by_status.get("CONFIRMED", 0),
        waitlisted=by_status.get("WAITLISTED", 0),
        offered=by_status.get("OFFERED", 0),
        cancelled=by_status.get("CANCELLED", 0),
        expired=by_status.get("EXPIRED", 0),
        checked_in=total.checked_in if total else 0,
    )
    ended = clock.now() >= event.ends_at
    return EventStats(
        event_id=event.id,
        capacity=event.capacity,
        registrations=counts,
        no_show_rate=_as_float(total.no_show_rate) if total and ended else None,
        waitlist_conversion=_as_float(total.waitlist_conversion) if total else None,
        timeline=[
            TimelineDay(date=row.date, registered=row.registered, cancelled=row.cancelled)
            for row in timeline
        ],
    )
