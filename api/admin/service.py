"""Counts for the admin dashboard, each in one grouped query."""

from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
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
    }
