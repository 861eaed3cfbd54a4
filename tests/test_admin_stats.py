"""GET /api/v1/admin/stats (API.md, Audit log and administration).

The counting tests first empty the user, event and registration tables inside their own
(rolled-back) transaction, so the body they compare is exactly the rows they create.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from api import clock
from api.events.models import EventStatus
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import UserRole
from tests.factories import create_event, create_user, register

URL = "/api/v1/admin/stats"
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
FORBIDDEN = {"detail": "FORBIDDEN"}


# Mid-month, so that nothing a test makes "now" falls into another month.
NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)
MONTHS = [f"{year}-{month:02d}" for year, month in [(2025, m) for m in range(4, 13)]] + [
    "2026-01",
    "2026-02",
    "2026-03",
]


def by_month(**counts: dict[str, int]) -> list[dict[str, Any]]:
    """The 12 months ending with NOW's, zeros but for `counts` (keyed "m2025_04")."""
    return [
        {
            "month": month,
            "events_created": 0,
            "events_published": 0,
            "registrations": 0,
            "check_ins": 0,
            **counts.get(f"m{month.replace('-', '_')}", {}),
        }
        for month in MONTHS
    ]


@pytest.fixture
async def only_ours(session):
    for table in ("registration", "event", '"user"'):
        await session.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def fixed_now(monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: NOW)


class TestAdminStats:
    async def test_anonymous_401(self, client):
        response = await client.get(URL)

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"

    async def test_unverified_user_403(self, client, unverified_user, auth_as):
        response = await client.get(URL, headers=await auth_as(unverified_user))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN

    async def test_user_403(self, client, user, auth_as):
        response = await client.get(URL, headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN

    async def test_manager_403(self, client, manager, auth_as):
        response = await client.get(URL, headers=await auth_as(manager))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN

    @pytest.mark.usefixtures("only_ours", "fixed_now")
    async def test_admin_alone_every_key_present_with_zeros(self, client, session, auth_as):
        admin = await create_user(session, role=UserRole.ADMIN)

        response = await client.get(URL, headers=await auth_as(admin))

        assert response.status_code == 200
        assert response.json() == {
            "users": {
                "total": 1,
                "by_role": {"ANONYMOUS": 0, "AUTHENTICATED": 0, "MANAGER": 0, "ADMIN": 1},
                "verified": 1,
                "locked": 0,
                "professional": 0,
            },
            "events": {
                "total": 0,
                "by_status": {"PENDING": 0, "PUBLISHED": 0, "REJECTED": 0, "CANCELLED": 0},
            },
            "registrations": {
                "total": 0,
                "by_status": {
                    "CONFIRMED": 0,
                    "OFFERED": 0,
                    "WAITLISTED": 0,
                    "CANCELLED": 0,
                    "EXPIRED": 0,
                },
            },
            "by_month": by_month(),
        }

    @pytest.mark.usefixtures("only_ours", "fixed_now")
    async def test_admin_200_counts_every_row(self, client, session, auth_as):
        now = clock.now()
        admin = await create_user(session, role=UserRole.ADMIN)
        managers = [await create_user(session, role=UserRole.MANAGER) for _ in range(2)]
        await create_user(session, role=UserRole.ANONYMOUS, is_verified=False)
        members = [
            await create_user(session),
            await create_user(session, locked_until=now + timedelta(hours=1)),
            await create_user(session, locked_until=now - timedelta(minutes=1)),  # lock over
            await create_user(session, is_professional=True),
        ]
        published = await create_event(session, owner=managers[0], capacity=2)
        await create_event(session, owner=managers[0])
        await create_event(session, owner=managers[1], status=EventStatus.PENDING)
        await create_event(session, owner=managers[1], status=EventStatus.PENDING)
        await create_event(session, owner=admin, status=EventStatus.PENDING)
        await create_event(session, owner=managers[1], status=EventStatus.CANCELLED)
        await register(session, published, members[0])
        await register(session, published, members[1])
        await register(session, published, members[2])  # full: waitlisted
        await register(session, published, members[3], RegistrationStatus.CANCELLED)

        response = await client.get(URL, headers=await auth_as(admin))

        assert response.status_code == 200
        assert response.json() == {
            "users": {
                "total": 8,
                "by_role": {"ANONYMOUS": 1, "AUTHENTICATED": 4, "MANAGER": 2, "ADMIN": 1},
                "verified": 7,
                "locked": 1,
                "professional": 1,
            },
            "events": {
                "total": 6,
                "by_status": {"PENDING": 3, "PUBLISHED": 2, "REJECTED": 0, "CANCELLED": 1},
            },
            "registrations": {
                "total": 4,
                "by_status": {
                    "CONFIRMED": 2,
                    "OFFERED": 0,
                    "WAITLISTED": 1,
                    "CANCELLED": 1,
                    "EXPIRED": 0,
                },
            },
            "by_month": by_month(
                m2026_03={"events_created": 6, "events_published": 2, "registrations": 4}
            ),
        }

    @pytest.mark.usefixtures("only_ours")
    async def test_lock_ending_later_is_counted_until_it_ends(
        self, client, session, auth_as, monkeypatch
    ):
        now = clock.now()
        admin = await create_user(session, role=UserRole.ADMIN)
        await create_user(session, locked_until=now + timedelta(minutes=30))
        headers = await auth_as(admin)
        monkeypatch.setattr(clock, "now", lambda: now + timedelta(minutes=31))

        response = await client.get(URL, headers=headers)

        assert response.status_code == 200
        assert response.json()["users"]["locked"] == 0


def at(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


class TestAdminStatsByMonth:
    @pytest.mark.usefixtures("only_ours", "fixed_now")
    async def test_the_last_12_utc_months_by_creation_publication_and_check_in(
        self, client, session, auth_as
    ):
        admin = await create_user(session, role=UserRole.ADMIN)
        owner = await create_user(session, role=UserRole.MANAGER)

        async def event(created_at: datetime, published_at: datetime | None = None) -> Any:
            status = EventStatus.PUBLISHED if published_at else EventStatus.PENDING
            made = await create_event(session, owner=owner, status=status)
            made.created_at, made.published_at = created_at, published_at
            session.add(made)
            await session.flush()
            return made

        async def registration(created_at: datetime, checked_in_at: datetime | None = None) -> None:
            registrant = await create_user(session)
            session.add(
                Registration(
                    event_id=host.id,
                    user_id=registrant.id,
                    status=RegistrationStatus.CONFIRMED,
                    created_at=created_at,
                    confirmed_at=created_at,
                    checked_in_at=checked_in_at,
                )
            )
            await session.flush()

        await event(at(2025, 3, 31, 23, 59, 59, 999999))  # a moment before the first month
        host = await event(at(2025, 4, 1), published_at=at(2025, 4, 30, 23, 59))
        await event(at(2025, 6, 10), published_at=at(2025, 7, 1))
        # 22:30 on April 30th at UTC-5 is May 1st in UTC.
        await event(datetime.fromisoformat("2025-04-30T22:30:00-05:00"))
        await event(at(2026, 3, 1), published_at=at(2026, 3, 15, 11))
        await event(at(2026, 4, 1), published_at=at(2026, 4, 1))  # after this month
        # Made before the window, checked in inside it: only the check-in counts.
        await registration(at(2025, 3, 20), checked_in_at=at(2025, 4, 2))
        await registration(at(2025, 4, 15), checked_in_at=at(2025, 5, 1))
        await registration(at(2025, 4, 16))
        await registration(at(2026, 2, 28, 23, 59, 59), checked_in_at=at(2026, 3, 1))

        response = await client.get(URL, headers=await auth_as(admin))

        assert response.status_code == 200
        assert response.json()["by_month"] == by_month(
            m2025_04={
                "events_created": 1,
                "events_published": 1,
                "registrations": 2,
                "check_ins": 1,
            },
            m2025_05={"events_created": 1, "check_ins": 1},
            m2025_06={"events_created": 1},
            m2025_07={"events_published": 1},
            m2026_02={"registrations": 1},
            m2026_03={"events_created": 1, "events_published": 1, "check_ins": 1},
        )

    @pytest.mark.usefixtures("only_ours")
    async def test_months_run_across_the_new_year(self, client, session, auth_as, monkeypatch):
        monkeypatch.setattr(clock, "now", lambda: at(2027, 1, 1, 0, 0, 1))
        admin = await create_user(session, role=UserRole.ADMIN)

        response = await client.get(URL, headers=await auth_as(admin))

        assert response.status_code == 200
        months = [entry["month"] for entry in response.json()["by_month"]]
        assert months == [f"2026-{month:02d}" for month in range(2, 13)] + ["2027-01"]
        # The admin account made this month is not an event or a registration.
        assert {entry["events_created"] for entry in response.json()["by_month"]} == {0}

    def test_openapi_documents_by_month(self, app):
        schemas = app.openapi()["components"]["schemas"]

        assert schemas["Stats"]["properties"]["by_month"]["items"] == {
            "$ref": "#/components/schemas/MonthCounts"
        }
        assert schemas["MonthCounts"]["required"] == [
            "month",
            "events_created",
            "events_published",
            "registrations",
            "check_ins",
        ]
