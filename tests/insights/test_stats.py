"""GET /events/{id}/stats (API-attendees.md, Event insights).

The mixed event below has registrations of every kind made over a week in New York time, several
of them within an hour of midnight, so that a day counted in UTC would come out different.
Each body is compared twice: with the figures written out by hand, and with figures taken
straight from the rows in Python.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.events.models import Event, EventStatus, WaitlistMode
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, register

NEW_YORK = "America/New_York"  # UTC-5 in January
NOT_EVENT_OWNER = {
    "detail": {
        "code": "NOT_EVENT_OWNER",
        "reason": "Only the event's creator, managers and admins may",
    }
}
CONFIRMED = RegistrationStatus.CONFIRMED
WAITLISTED = RegistrationStatus.WAITLISTED
CANCELLED = RegistrationStatus.CANCELLED


def url(event_id: uuid.UUID) -> str:
    return f"/api/v1/events/{event_id}/stats"


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    """A registration as the test writes it (times in UTC)."""

    status: RegistrationStatus
    created_at: datetime
    confirmed_at: datetime | None = None
    promoted_at: datetime | None = None
    cancelled_at: datetime | None = None
    checked_in_at: datetime | None = None


# New York dates in the comments.
MIXED = (
    # Confirmed at once, late on the 9th, checked in.
    Row(CONFIRMED, utc(10, 4, 30), confirmed_at=utc(10, 4, 30), checked_in_at=utc(20, 18)),
    # Confirmed at once, just after midnight on the 10th; did not come.
    Row(CONFIRMED, utc(10, 5, 30), confirmed_at=utc(10, 5, 30)),
    # Waitlisted on the 10th, promoted on the 12th, checked in.
    Row(
        CONFIRMED,
        utc(10, 12),
        confirmed_at=utc(12, 9),
        promoted_at=utc(12, 9),
        checked_in_at=utc(20, 18, 5),
    ),
    # Waitlisted late on the 12th, still waiting.
    Row(WAITLISTED, utc(13, 3)),
    # Confirmed on the 10th, checked in, then cancelled a minute before midnight on the 14th:
    # no longer CONFIRMED, so not counted as checked in.
    Row(
        CANCELLED,
        utc(10, 15),
        confirmed_at=utc(10, 15),
        cancelled_at=utc(15, 4, 59),
        checked_in_at=utc(14, 20),
    ),
    # Waitlisted at 1 a.m. on the 11th, left the line at midnight on the 16th.
    Row(CANCELLED, utc(11, 6), cancelled_at=utc(16, 5)),
    # Waitlisted on the 11th, promoted and cancelled on the 12th.
    Row(
        CANCELLED,
        utc(11, 14),
        confirmed_at=utc(12, 16),
        promoted_at=utc(12, 16),
        cancelled_at=utc(12, 18),
    ),
)
MIXED_TIMELINE = [
    {"date": "2026-01-09", "registered": 1, "cancelled": 0},
    {"date": "2026-01-10", "registered": 3, "cancelled": 0},
    {"date": "2026-01-11", "registered": 2, "cancelled": 0},
    {"date": "2026-01-12", "registered": 1, "cancelled": 1},
    {"date": "2026-01-13", "registered": 0, "cancelled": 0},
    {"date": "2026-01-14", "registered": 0, "cancelled": 1},
    {"date": "2026-01-15", "registered": 0, "cancelled": 0},
    {"date": "2026-01-16", "registered": 0, "cancelled": 1},
]


async def add_rows(session: AsyncSession, event: Event, rows: tuple[Row, ...]) -> None:
    for row in rows:
        registrant = await create_user(session)
        session.add(
            Registration(
                event_id=event.id,
                user_id=registrant.id,
                status=row.status,
                created_at=row.created_at,
                confirmed_at=row.confirmed_at,
                promoted_at=row.promoted_at,
                cancelled_at=row.cancelled_at,
                checked_in_at=row.checked_in_at,
            )
        )
    await session.flush()


def _four_places(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


async def stats_from_rows(session: AsyncSession, event: Event, *, ended: bool) -> dict[str, Any]:
    """What the stats should say, worked out in Python from the event's rows."""
    rows = (
        await session.scalars(select(Registration).where(col(Registration.event_id) == event.id))
    ).all()
    zone = ZoneInfo(event.timezone)

    def count(status: str) -> int:
        return sum(str(row.status) == status for row in rows)

    confirmed = count("CONFIRMED")
    checked_in = sum(row.status is CONFIRMED and row.checked_in_at is not None for row in rows)
    promoted = sum(row.promoted_at is not None for row in rows)
    waited = sum(row.promoted_at is not None or row.confirmed_at is None for row in rows)
    registered_on = [row.created_at.astimezone(zone).date() for row in rows]
    cancelled_on = [row.cancelled_at.astimezone(zone).date() for row in rows if row.cancelled_at]
    timeline = []
    if rows:
        day, last = min(registered_on), max(registered_on + cancelled_on)
        while day <= last:
            timeline.append(
                {
                    "date": day.isoformat(),
                    "registered": registered_on.count(day),
                    "cancelled": cancelled_on.count(day),
                }
            )
            day += timedelta(days=1)
    return {
        "event_id": str(event.id),
        "capacity": event.capacity,
        "registrations": {
            "confirmed": confirmed,
            "waitlisted": count("WAITLISTED"),
            "offered": count("OFFERED"),
            "cancelled": count("CANCELLED"),
            "expired": count("EXPIRED"),
            "checked_in": checked_in,
        },
        "no_show_rate": _four_places(1 - Decimal(checked_in) / confirmed)
        if ended and confirmed
        else None,
        "waitlist_conversion": _four_places(Decimal(promoted) / waited) if waited else None,
        "timeline": timeline,
    }


async def ending_soon(session: AsyncSession, owner: User, **fields: Any) -> Event:
    """An event that ends within the hour a test's access token lasts, so that a test can move
    the clock past its end and still call."""
    starts_at = clock.now() + timedelta(minutes=10)
    return await create_event(
        session,
        owner=owner,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=30),
        **fields,
    )


@pytest.fixture
async def mixed_event(session: AsyncSession, manager: User) -> Event:
    event = await ending_soon(session, manager, capacity=3, timezone=NEW_YORK)
    await add_rows(session, event, MIXED)
    return event


class TestEventStats:
    async def test_creator_200_counts_by_status_and_day_in_the_event_timezone(
        self, client, session, manager, auth_as, mixed_event
    ):
        response = await client.get(url(mixed_event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        assert response.json() == {
            "event_id": str(mixed_event.id),
            "capacity": 3,
            "registrations": {
                "confirmed": 3,
                "waitlisted": 1,
                "offered": 0,
                "cancelled": 3,
                "expired": 0,
                "checked_in": 2,
            },
            "no_show_rate": None,  # not over yet
            # promoted 2 of ever waitlisted 4 (promoted 2, never seated 2)
            "waitlist_conversion": 0.5,
            "timeline": MIXED_TIMELINE,
        }
        assert response.json() == await stats_from_rows(session, mixed_event, ended=False)

    async def test_after_the_end_the_no_show_rate_is_exact(
        self, client, session, manager, auth_as, mixed_event, monkeypatch
    ):
        headers = await auth_as(manager)
        monkeypatch.setattr(clock, "now", lambda: mixed_event.ends_at + timedelta(minutes=1))

        response = await client.get(url(mixed_event.id), headers=headers)

        assert response.status_code == 200
        assert response.json()["no_show_rate"] == 0.3333  # 1 - 2/3
        assert response.json() == await stats_from_rows(session, mixed_event, ended=True)

    async def test_the_no_show_rate_starts_at_ends_at(
        self, client, manager, auth_as, mixed_event, monkeypatch
    ):
        headers = await auth_as(manager)
        rates = []
        for at in (mixed_event.ends_at - timedelta(microseconds=1), mixed_event.ends_at):
            monkeypatch.setattr(clock, "now", lambda at=at: at)
            response = await client.get(url(mixed_event.id), headers=headers)
            assert response.status_code == 200
            rates.append(response.json()["no_show_rate"])

        assert rates == [None, 0.3333]

    async def test_rates_round_to_four_places(self, client, session, manager, auth_as, monkeypatch):
        event = await ending_soon(session, manager, capacity=None)
        seated = utc(5, 12)
        # 1 of 7 confirmed checked in: 1 - 1/7 = 0.857142...; 1 promoted of 3 ever waitlisted.
        rows = (
            Row(CONFIRMED, seated, confirmed_at=seated, checked_in_at=utc(6, 12)),
            *[Row(CONFIRMED, seated, confirmed_at=seated)] * 5,
            Row(CONFIRMED, seated, confirmed_at=utc(7, 1), promoted_at=utc(7, 1)),
            Row(WAITLISTED, seated),
            Row(CANCELLED, seated, cancelled_at=utc(7, 3)),
        )
        await add_rows(session, event, rows)
        headers = await auth_as(manager)
        monkeypatch.setattr(clock, "now", lambda: event.ends_at)

        response = await client.get(url(event.id), headers=headers)

        assert response.status_code == 200
        body = response.json()
        assert (body["capacity"], body["no_show_rate"], body["waitlist_conversion"]) == (
            None,
            0.8571,
            0.3333,
        )
        assert body == await stats_from_rows(session, event, ended=True)

    async def test_no_waitlist_and_no_one_confirmed_give_null_rates(
        self, client, session, manager, auth_as, monkeypatch
    ):
        event = await ending_soon(session, manager, timezone="Asia/Tokyo")
        # Confirmed and cancelled: never waitlisted, and no one left confirmed.
        await add_rows(
            session,
            event,
            (Row(CANCELLED, utc(3, 14, 59), confirmed_at=utc(3, 14, 59), cancelled_at=utc(3, 15)),),
        )
        headers = await auth_as(manager)
        monkeypatch.setattr(clock, "now", lambda: event.ends_at + timedelta(minutes=1))

        response = await client.get(url(event.id), headers=headers)

        assert response.status_code == 200
        body = response.json()
        assert (body["no_show_rate"], body["waitlist_conversion"]) == (None, None)
        # 23:59 and 00:00 in Tokyo: two days.
        assert body["timeline"] == [
            {"date": "2026-01-03", "registered": 1, "cancelled": 0},
            {"date": "2026-01-04", "registered": 0, "cancelled": 1},
        ]

    async def test_no_registrations(self, client, session, manager, auth_as, monkeypatch):
        event = await ending_soon(session, manager, capacity=25)
        headers = await auth_as(manager)
        monkeypatch.setattr(clock, "now", lambda: event.ends_at + timedelta(minutes=1))

        response = await client.get(url(event.id), headers=headers)

        assert response.status_code == 200
        assert response.json() == {
            "event_id": str(event.id),
            "capacity": 25,
            "registrations": {
                "confirmed": 0,
                "waitlisted": 0,
                "offered": 0,
                "cancelled": 0,
                "expired": 0,
                "checked_in": 0,
            },
            "no_show_rate": None,
            "waitlist_conversion": None,
            "timeline": [],
        }

    async def test_lapsed_offers_are_settled_before_counting(
        self, client, session, manager, auth_as, monkeypatch
    ):
        """OFFER mode: an offer that lapsed is EXPIRED, and its seat offered on, before the
        counts are taken: the stats show what the attendee list would."""
        event = await create_event(
            session, owner=manager, capacity=1, waitlist_mode=WaitlistMode.OFFER, offer_hours=2
        )
        first, second = await create_user(session), await create_user(session)
        lapsed = await register(session, event, first, RegistrationStatus.OFFERED)
        await register(session, event, second)  # full: in line
        assert lapsed.offer_expires_at is not None
        after = lapsed.offer_expires_at + timedelta(seconds=1)
        monkeypatch.setattr(clock, "now", lambda: after)
        headers = await auth_as(manager)

        response = await client.get(url(event.id), headers=headers)

        assert response.status_code == 200
        assert response.json()["registrations"] == {
            "confirmed": 0,
            "waitlisted": 0,
            "offered": 1,
            "cancelled": 0,
            "expired": 1,
            "checked_in": 0,
        }
        await session.refresh(lapsed)
        assert lapsed.status is RegistrationStatus.EXPIRED

    async def test_other_events_registrations_do_not_count(
        self, client, session, manager, auth_as, mixed_event
    ):
        other = await create_event(session, owner=manager)
        await add_rows(session, other, (Row(CONFIRMED, utc(1, 1), confirmed_at=utc(1, 1)),))

        response = await client.get(url(mixed_event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        assert response.json()["timeline"] == MIXED_TIMELINE
        assert response.json()["registrations"]["confirmed"] == 3

    async def test_another_manager_200(self, client, session, auth_as, mixed_event):
        other_manager = await create_user(session, role=UserRole.MANAGER)

        response = await client.get(url(mixed_event.id), headers=await auth_as(other_manager))

        assert response.status_code == 200
        assert response.json()["timeline"] == MIXED_TIMELINE

    async def test_admin_200(self, client, admin, auth_as, mixed_event):
        response = await client.get(url(mixed_event.id), headers=await auth_as(admin))

        assert response.status_code == 200
        assert response.json()["registrations"]["checked_in"] == 2

    async def test_anonymous_401(self, client, mixed_event):
        response = await client.get(url(mixed_event.id))

        assert response.status_code == 401
        assert response.json() == {"detail": "UNAUTHORIZED"}

    async def test_registrant_403(self, client, session, user, auth_as, mixed_event):
        await register(session, mixed_event, user)

        response = await client.get(url(mixed_event.id), headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == NOT_EVENT_OWNER

    async def test_pending_event_of_another_404_to_a_user(
        self, client, session, manager, user, auth_as
    ):
        event = await create_event(session, owner=manager, status=EventStatus.PENDING)

        response = await client.get(url(event.id), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == {"detail": "EVENT_NOT_FOUND"}

    async def test_unknown_event_404(self, client, admin, auth_as):
        response = await client.get(url(uuid.uuid4()), headers=await auth_as(admin))

        assert response.status_code == 404
        assert response.json() == {"detail": "EVENT_NOT_FOUND"}

    def test_openapi_documents_the_body_and_errors(self, app):
        operation = app.openapi()["paths"]["/api/v1/events/{event_id}/stats"]["get"]

        assert operation["x-token-scope"] == "registrations:read"
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/EventStats"
        }
        assert {
            code: operation["responses"][code]["description"] for code in ("401", "403", "404")
        } == {
            "401": "UNAUTHORIZED",
            "403": "NOT_EVENT_OWNER, INSUFFICIENT_SCOPE (an API token without registrations:read)",
            "404": "EVENT_NOT_FOUND",
        }


def test_new_york_is_five_hours_behind_in_january():
    """The premise of the mixed event: its near-midnight times fall on another UTC day."""
    assert utc(10, 4, 30).astimezone(ZoneInfo(NEW_YORK)).date() == date(2026, 1, 9)
