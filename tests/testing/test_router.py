"""The test clock and the job triggers (API-attendees.md, Notifications, audit, OpenAPI, testing).

The real time is frozen (`api.clock.real_now`), so that every moment the clock reads is exact;
the clock itself is moved only through the routes. What another process sees is tested against
real servers in tests/testing/test_processes.py.
"""

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col

from api import clock
from api.config import Environment, settings
from api.events.models import WaitlistMode
from api.main import create_app
from api.notifications.models import Notification, NotificationKind
from api.registrations.models import RegistrationStatus
from api.testing.models import LATEST, ClockSetting
from api.users.models import AccessToken, UserRole, hash_token
from api.worker import RUNNABLE_JOBS
from tests.factories import (
    create_event,
    create_user,
    event_body,
    register,
    reminded_at,
    token_headers,
)

CLOCK = "/api/v1/testing/clock"
JOBS = "/api/v1/testing/jobs"
# The real time while a test runs, and a moment years ahead of it, where no event other tests
# leave behind is due for a reminder.
REAL = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
AHEAD = datetime(2032, 5, 4, 9, 0, tzinfo=UTC)
# The jobs the route runs, as API-attendees.md names them.
BUILT = ["expire_waitlist_offers", "send_event_reminders"]


@pytest.fixture
def real(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The real time, frozen at REAL; a test moves it on by assigning real[0]."""
    moment = [REAL]
    monkeypatch.setattr(clock, "real_now", lambda: moment[0])
    return moment


@pytest.fixture
async def admin_headers(session, admin) -> dict[str, str]:
    """An admin's login token live on every moment the clock can be set to: issued at LATEST.
    (One issued at the real time expires when the clock moves past its lifetime.)"""
    token = secrets.token_urlsafe()
    session.add(AccessToken(token=hash_token(token), user_id=admin.id, created_at=LATEST))
    await session.flush()
    return {"Authorization": f"Bearer {token}"}


async def stored(session) -> tuple[int, timedelta] | None:
    row = (
        await session.execute(select(col(ClockSetting.version), col(ClockSetting.time_offset)))
    ).first()
    return None if row is None else (row.version, row.time_offset)


class TestSetClock:
    @pytest.mark.usefixtures("real")
    async def test_admin_200_moves_now(self, client, session, admin_headers):
        response = await client.put(
            CLOCK, headers=admin_headers, json={"now": "2032-05-04T11:00:00+02:00"}
        )

        assert response.status_code == 200
        offset = AHEAD - REAL
        assert response.json() == {
            "now": "2032-05-04T09:00:00Z",
            "offset_seconds": offset.total_seconds(),
        }
        assert clock.now() == AHEAD
        assert await stored(session) == (1, offset)

    async def test_time_runs_on_from_the_moment_set(self, client, admin_headers, real):
        await client.put(CLOCK, headers=admin_headers, json={"now": AHEAD.isoformat()})

        real[0] = REAL + timedelta(minutes=5, seconds=3)
        assert clock.now() == AHEAD + timedelta(minutes=5, seconds=3)

    @pytest.mark.usefixtures("real")
    async def test_backwards_and_again(self, client, session, admin_headers):
        past = datetime(2020, 2, 29, 12, 0, tzinfo=UTC)
        first = await client.put(CLOCK, headers=admin_headers, json={"now": past.isoformat()})
        second = await client.put(CLOCK, headers=admin_headers, json={"now": AHEAD.isoformat()})

        assert first.json() == {
            "now": "2020-02-29T12:00:00Z",
            "offset_seconds": (past - REAL).total_seconds(),
        }
        assert second.status_code == 200
        assert clock.now() == AHEAD
        assert await stored(session) == (2, AHEAD - REAL)

    @pytest.mark.usefixtures("real")
    async def test_login_tokens_expire_on_the_moved_clock(self, client, session, user, admin):
        # Both tokens are issued at REAL; the clock moves one minute past their lifetime.
        user_headers = await token_headers(session, user)
        headers = await token_headers(session, admin)
        lifetime = timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
        assert (await client.get("/api/v1/users/me", headers=user_headers)).status_code == 200

        moved = REAL + lifetime + timedelta(minutes=1)
        response = await client.put(CLOCK, headers=headers, json={"now": moved.isoformat()})
        assert response.status_code == 200

        expired = await client.get("/api/v1/users/me", headers=user_headers)
        assert (expired.status_code, expired.json()) == (401, {"detail": "UNAUTHORIZED"})
        # A token issued on the moved clock is live on it.
        fresh = await client.get("/api/v1/users/me", headers=await token_headers(session, user))
        assert fresh.status_code == 200
        assert fresh.json()["id"] == str(user.id)

    @pytest.mark.usefixtures("real")
    async def test_events_start_relative_to_the_moved_clock(
        self, client, session, admin_headers, manager, user
    ):
        title = f"Clock {uuid.uuid4().hex[:8]}"
        event = await create_event(
            session,
            owner=manager,
            title=title,
            starts_at=REAL + timedelta(days=2),
            ends_at=REAL + timedelta(days=2, hours=2),
        )
        listed = await client.get("/api/v1/events", params={"q": title})
        assert [item["id"] for item in listed.json()["items"]] == [str(event.id)]

        moved = REAL + timedelta(days=3)
        await client.put(CLOCK, headers=admin_headers, json={"now": moved.isoformat()})

        listed = await client.get("/api/v1/events", params={"q": title})
        assert listed.json()["items"] == []
        registering = await client.post(
            f"/api/v1/events/{event.id}/registrations",
            headers=await token_headers(session, user),
        )
        assert (registering.status_code, registering.json()) == (
            409,
            {"detail": {"code": "EVENT_NOT_OPEN", "reason": "The event has already started"}},
        )
        # A new event must start after the moved "now", not after the real one.
        creating = await client.post(
            "/api/v1/events",
            headers=await token_headers(session, manager),
            json=event_body(
                starts_at=(REAL + timedelta(days=2)).isoformat(),
                ends_at=(REAL + timedelta(days=2, hours=1)).isoformat(),
            ),
        )
        assert creating.status_code == 422
        assert [(e["loc"], e["msg"]) for e in creating.json()["detail"]] == [
            (["body", "starts_at"], "Value error, starts_at must be in the future")
        ]

    @pytest.mark.parametrize(
        ("body", "loc", "kind"),
        [
            ({"now": "2032-05-04T09:00:00"}, ["body", "now"], "timezone_aware"),
            ({"now": "tomorrow"}, ["body", "now"], "datetime_from_date_parsing"),
            ({"now": None}, ["body", "now"], "datetime_type"),
            ({}, ["body", "now"], "missing"),
        ],
    )
    async def test_bad_moment_422(self, client, session, admin_headers, body, loc, kind):
        response = await client.put(CLOCK, headers=admin_headers, json=body)

        assert response.status_code == 422
        assert [(e["loc"], e["type"]) for e in response.json()["detail"]] == [(loc, kind)]
        assert clock.offset() == timedelta(0)
        assert await stored(session) is None

    @pytest.mark.parametrize("moment", ["1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z"])
    async def test_moment_out_of_range_422(self, client, admin_headers, moment):
        response = await client.put(CLOCK, headers=admin_headers, json={"now": moment})

        assert response.status_code == 422
        assert [(e["loc"], e["msg"]) for e in response.json()["detail"]] == [
            (
                ["body", "now"],
                "Value error, must be from 2000-01-01T00:00:00Z up to 2100-01-01T00:00:00Z",
            )
        ]

    @pytest.mark.usefixtures("real")
    @pytest.mark.parametrize(
        ("moment", "expected"),
        [
            ("2000-01-01T00:00:00Z", datetime(2000, 1, 1, tzinfo=UTC)),
            # 2099-12-31T23:59:59Z, given with a UTC offset.
            ("2100-01-01T00:59:59+01:00", datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ],
    )
    async def test_moment_at_the_edges_200(self, client, admin_headers, moment, expected):
        response = await client.put(CLOCK, headers=admin_headers, json={"now": moment})

        assert response.status_code == 200
        assert clock.now() == expected

    async def test_anonymous_401(self, client):
        response = await client.put(CLOCK, json={"now": AHEAD.isoformat()})

        assert (response.status_code, response.json()) == (401, {"detail": "UNAUTHORIZED"})
        assert response.headers["WWW-Authenticate"] == "Bearer"

    @pytest.mark.parametrize("role", [UserRole.AUTHENTICATED, UserRole.MANAGER])
    async def test_not_admin_403(self, client, session, role):
        caller = await create_user(session, role=role)
        response = await client.put(
            CLOCK, headers=await token_headers(session, caller), json={"now": AHEAD.isoformat()}
        )

        assert (response.status_code, response.json()) == (403, {"detail": "FORBIDDEN"})
        assert clock.offset() == timedelta(0)
        assert await stored(session) is None


class TestResetClock:
    @pytest.mark.usefixtures("real")
    async def test_admin_204_restores_real_time(self, client, session, admin_headers):
        await client.put(CLOCK, headers=admin_headers, json={"now": AHEAD.isoformat()})

        response = await client.delete(CLOCK, headers=admin_headers)

        assert (response.status_code, response.content) == (204, b"")
        assert clock.now() == REAL
        assert await stored(session) == (2, timedelta(0))

    @pytest.mark.usefixtures("real")
    async def test_old_tokens_live_again(self, client, session, user, admin):
        user_headers = await token_headers(session, user)
        headers = await token_headers(session, admin)
        await client.put(CLOCK, headers=headers, json={"now": "2027-01-01T00:00:00Z"})
        assert (await client.get("/api/v1/users/me", headers=user_headers)).status_code == 401
        # The admin's first token expired with the move too: one issued on the moved clock.
        headers = await token_headers(session, admin)

        assert (await client.delete(CLOCK, headers=headers)).status_code == 204

        assert (await client.get("/api/v1/users/me", headers=user_headers)).status_code == 200

    @pytest.mark.usefixtures("real")
    async def test_without_a_setting_204(self, client, session, admin_headers):
        response = await client.delete(CLOCK, headers=admin_headers)

        assert response.status_code == 204
        assert clock.now() == REAL
        assert await stored(session) == (1, timedelta(0))

    async def test_anonymous_401(self, client):
        response = await client.delete(CLOCK)

        assert (response.status_code, response.json()) == (401, {"detail": "UNAUTHORIZED"})

    @pytest.mark.parametrize("role", [UserRole.AUTHENTICATED, UserRole.MANAGER])
    async def test_not_admin_403(self, client, session, role):
        caller = await create_user(session, role=role)
        response = await client.delete(CLOCK, headers=await token_headers(session, caller))

        assert (response.status_code, response.json()) == (403, {"detail": "FORBIDDEN"})
        assert await stored(session) is None


class TestRunJob:
    def test_the_jobs_built_so_far(self):
        assert sorted(RUNNABLE_JOBS) == BUILT

    @pytest.mark.usefixtures("real")
    async def test_expire_waitlist_offers_on_the_moved_clock(
        self, client, session, admin_headers, manager, user
    ):
        """An offer made now (12 hours) lapses on a clock moved 13 hours on: the job expires it
        and offers the seat to the next in line."""
        event = await create_event(
            session, owner=manager, capacity=1, waitlist_mode=WaitlistMode.OFFER, offer_hours=12
        )
        holder, next_in_line = await create_user(session), await create_user(session)
        await register(session, event, holder)
        offered = await register(session, event, user)
        waiting = await register(session, event, next_in_line)
        left = await client.delete(
            f"/api/v1/events/{event.id}/registrations/me",
            headers=await token_headers(session, holder),
        )
        assert left.status_code == 204
        await session.refresh(offered)
        assert offered.status is RegistrationStatus.OFFERED
        assert offered.offer_expires_at == REAL + timedelta(hours=12)
        moved = REAL + timedelta(hours=13)
        await client.put(CLOCK, headers=admin_headers, json={"now": moved.isoformat()})

        response = await client.post(f"{JOBS}/expire_waitlist_offers", headers=admin_headers)

        assert response.status_code == 200
        assert response.json() == {
            "job": "expire_waitlist_offers",
            "ran_at": "2026-12-05T22:00:00Z",
            "count": 1,
        }
        await session.refresh(offered)
        await session.refresh(waiting)
        assert (offered.status, offered.cancelled_at) == (RegistrationStatus.EXPIRED, moved)
        assert (waiting.status, waiting.offer_expires_at) == (
            RegistrationStatus.OFFERED,
            moved + timedelta(hours=12),
        )

    @pytest.mark.usefixtures("real")
    async def test_send_event_reminders_on_the_moved_clock(
        self, client, session, admin_headers, manager, user
    ):
        # Due within 24 hours of the moved clock; years away in real time.
        event = await create_event(
            session,
            owner=manager,
            starts_at=AHEAD + timedelta(hours=12),
            ends_at=AHEAD + timedelta(hours=14),
        )
        await register(session, event, user)
        await client.put(CLOCK, headers=admin_headers, json={"now": AHEAD.isoformat()})

        response = await client.post(f"{JOBS}/send_event_reminders", headers=admin_headers)

        assert response.status_code == 200
        assert response.json() == {
            "job": "send_event_reminders",
            "ran_at": "2032-05-04T09:00:00Z",
            "count": 1,
        }
        assert await reminded_at(session, event) == AHEAD
        kinds = await session.scalars(
            select(col(Notification.kind)).where(col(Notification.user_id) == user.id)
        )
        assert list(kinds) == [NotificationKind.EVENT_REMINDER]

    @pytest.mark.usefixtures("real")
    async def test_nothing_due_on_real_time(self, client, session, admin_headers, manager, user):
        event = await create_event(
            session,
            owner=manager,
            starts_at=AHEAD + timedelta(hours=12),
            ends_at=AHEAD + timedelta(hours=14),
        )
        await register(session, event, user)

        response = await client.post(f"{JOBS}/send_event_reminders", headers=admin_headers)

        assert response.status_code == 200
        assert response.json()["ran_at"] == "2026-12-05T09:00:00Z"
        assert await reminded_at(session, event) is None

    @pytest.mark.usefixtures("real")
    async def test_runs_on_the_stored_setting(self, client, session, admin_headers):
        """A setting another process stored (its notification not yet here) is read first."""
        session.add(ClockSetting(id=1, time_offset=AHEAD - REAL, version=7))
        await session.flush()
        assert clock.now() == REAL

        response = await client.post(f"{JOBS}/send_event_reminders", headers=admin_headers)

        assert response.json()["ran_at"] == "2032-05-04T09:00:00Z"
        assert clock.now() == AHEAD

    @pytest.mark.parametrize("name", ["no_such_job", "SEND_EVENT_REMINDERS", "expire_offers"])
    async def test_unknown_job_404(self, client, admin_headers, name):
        response = await client.post(f"{JOBS}/{name}", headers=admin_headers)

        assert (response.status_code, response.json()) == (404, {"detail": "JOB_NOT_FOUND"})

    async def test_anonymous_401(self, client):
        response = await client.post(f"{JOBS}/send_event_reminders")

        assert (response.status_code, response.json()) == (401, {"detail": "UNAUTHORIZED"})

    @pytest.mark.parametrize("role", [UserRole.AUTHENTICATED, UserRole.MANAGER])
    @pytest.mark.parametrize("name", ["send_event_reminders", "no_such_job"])
    async def test_not_admin_403_before_404(self, client, session, role, name):
        caller = await create_user(session, role=role)
        response = await client.post(f"{JOBS}/{name}", headers=await token_headers(session, caller))

        assert (response.status_code, response.json()) == (403, {"detail": "FORBIDDEN"})

    async def test_runs_nothing_for_a_manager(self, client, session, manager, user):
        event = await create_event(
            session,
            owner=manager,
            starts_at=clock.now() + timedelta(hours=12),
            ends_at=clock.now() + timedelta(hours=14),
        )
        await register(session, event, user)

        response = await client.post(
            f"{JOBS}/send_event_reminders", headers=await token_headers(session, manager)
        )

        assert response.status_code == 403
        assert await reminded_at(session, event) is None


class TestOutsideTest:
    """TEST-1 in-process; tests/testing/test_processes.py proves it on a production server."""

    @pytest.mark.security("TEST-1")
    @pytest.mark.parametrize("environment", [Environment.PRODUCTION, Environment.DEVELOPMENT])
    def test_routes_absent_from_the_document(self, monkeypatch, environment):
        monkeypatch.setattr(settings, "ENVIRONMENT", environment)

        paths = create_app(run_worker=False).openapi()["paths"]

        assert [path for path in paths if "testing" in path] == []

    def test_routes_documented_with_environment_test(self, app):
        paths = app.openapi()["paths"]

        assert {path: sorted(paths[path]) for path in paths if "testing" in path} == {
            CLOCK: ["delete", "put"],
            f"{JOBS}/{{name}}": ["post"],
        }
