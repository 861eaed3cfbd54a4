"""GET /api/v1/admin/stats (API.md, Audit log and administration).

The counting tests first empty the user, event and registration tables inside their own
(rolled-back) transaction, so the body they compare is exactly the rows they create.
"""

from datetime import timedelta

import pytest
from sqlalchemy import text

from api import clock
from api.events.models import EventStatus
from api.registrations.models import RegistrationStatus
from api.users.models import UserRole
from tests.factories import create_event, create_user, register

URL = "/api/v1/admin/stats"
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
FORBIDDEN = {"detail": "FORBIDDEN"}


@pytest.fixture
async def only_ours(session):
    for table in ("registration", "event", '"user"'):
        await session.execute(text(f"DELETE FROM {table}"))


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

    @pytest.mark.usefixtures("only_ours")
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
        }

    @pytest.mark.usefixtures("only_ours")
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
