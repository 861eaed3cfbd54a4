"""`event-manager seed-demo` and api/demo.seed: fake data that keeps every rule of the service."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from typer.testing import CliRunner

from api import clock
from api.cli import app
from api.config import settings
from api.db import get_database_url
from api.demo import ADMIN_EMAIL, DEMO_PASSWORD, EMAIL_DOMAIN, HORIZON_DAYS, SeedSummary, seed
from api.events.models import Event, EventStatus, EventType
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User, UserRole
from api.users.passwords import password_problem
from tests.factories import create_user, queued_mail
from tests.support import ROOT, TestDatabaseServer

LOGIN = "/api/v1/auth/login"
runner = CliRunner()


async def demo_users(session: AsyncSession) -> list[User]:
    statement = (
        select(User)
        .where(col(User.email).like(f"%@{EMAIL_DOMAIN}"))
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(statement)).all())


async def all_events(session: AsyncSession) -> list[Event]:
    statement = select(Event).execution_options(populate_existing=True)
    return list((await session.scalars(statement)).all())


async def registrations_by_event(session: AsyncSession) -> dict[uuid.UUID, list[Registration]]:
    statement = (
        select(Registration)
        .order_by(col(Registration.seq))
        .execution_options(populate_existing=True)
    )
    lines: dict[uuid.UUID, list[Registration]] = {}
    for registration in (await session.scalars(statement)).all():
        lines.setdefault(registration.event_id, []).append(registration)
    return lines


async def seeded(session: AsyncSession, **counts: int) -> SeedSummary:
    sizes = {"users": 30, "managers": 4, "events": 40, "seed": 7, **counts}
    return await seed(
        session,
        users=sizes["users"],
        managers=sizes["managers"],
        events=sizes["events"],
        seed=sizes["seed"],
        registrations=counts.get("registrations"),
    )


class TestSeed:
    async def test_summary_counts_match_the_database(self, session):
        summary = await seeded(session)

        roles = Counter(user.role for user in await demo_users(session))
        events = Counter(event.status for event in await all_events(session))
        registrations = Counter(
            r.status for line in (await registrations_by_event(session)).values() for r in line
        )
        assert (summary.users, summary.managers) == (30, 4)
        assert (summary.admin_email, summary.admin_created) == (ADMIN_EMAIL, True)
        assert summary.password == DEMO_PASSWORD
        assert roles == {UserRole.AUTHENTICATED: 30, UserRole.MANAGER: 4, UserRole.ADMIN: 1}
        assert sum(summary.events.values()) == 40
        assert summary.events == {status: events[status] for status in EventStatus}
        assert summary.registrations == {
            status: registrations[status] for status in RegistrationStatus
        }

    async def test_every_account_is_verified_and_active(self, session):
        await seeded(session)

        users = await demo_users(session)
        assert len(users) == 35
        assert {(u.is_verified, u.is_active, u.is_locked) for u in users} == {(True, True, False)}
        assert {u.email for u in users if u.is_superuser} == {ADMIN_EMAIL}
        assert len({u.email.lower() for u in users}) == 35
        assert len({u.nickname.lower() for u in users}) == 35

    async def test_every_status_and_type_is_present(self, session):
        await seeded(session)

        events = await all_events(session)
        assert {e.status for e in events} == set(EventStatus)
        assert {e.event_type for e in events} == set(EventType)
        assert Counter(e.status for e in events).most_common(1)[0][0] is EventStatus.PUBLISHED

    async def test_events_are_upcoming_and_valid(self, session):
        before = clock.now()
        await seeded(session)

        for event in await all_events(session):
            assert before < event.starts_at < before + timedelta(days=HORIZON_DAYS, hours=1)
            assert event.ends_at > event.starts_at
            assert event.location is not None or event.online_url is not None
            assert event.registration_deadline is None or before < event.registration_deadline
            assert event.capacity is None or 1 <= event.capacity <= 100_000
            assert 1 <= len(event.tags) <= 3
            assert event.tags == [tag.lower() for tag in event.tags]

    async def test_capacity_mixes_limited_and_unlimited(self, session):
        await seeded(session)

        capacities = {e.capacity is None for e in await all_events(session)}
        assert capacities == {True, False}

    async def test_review_fields_follow_the_status(self, session):
        await seeded(session)

        for event in await all_events(session):
            if event.status is EventStatus.PUBLISHED:
                assert event.published_at is not None
                assert event.reviewed_by not in (None, event.created_by)
            if event.status is EventStatus.REJECTED:
                assert event.review_feedback
                assert event.reviewed_by not in (None, event.created_by)
            if event.status is EventStatus.PENDING:
                assert (event.reviewed_by, event.published_at) == (None, None)
            assert (event.cancelled_at is not None) == (event.status is EventStatus.CANCELLED)

    async def test_counters_equal_the_rows_of_every_event(self, session):
        await seeded(session)

        lines = await registrations_by_event(session)
        for event in await all_events(session):
            statuses = Counter(r.status for r in lines.get(event.id, []))
            assert event.registered_count == statuses[RegistrationStatus.CONFIRMED]
            assert event.waitlist_count == statuses[RegistrationStatus.WAITLISTED]

    async def test_no_event_over_capacity(self, session):
        await seeded(session)

        for event in await all_events(session):
            assert event.capacity is None or event.registered_count <= event.capacity

    async def test_waitlist_only_where_full(self, session):
        await seeded(session)

        events = await all_events(session)
        waitlisted = [e for e in events if e.waitlist_count]
        assert waitlisted != []
        assert {e.registered_count == e.capacity for e in waitlisted} == {True}

    async def test_lines_are_first_come_first_served(self, session):
        await seeded(session)

        for line in (await registrations_by_event(session)).values():
            assert [r.created_at for r in line] == sorted(r.created_at for r in line)
            live = [r for r in line if r.status is not RegistrationStatus.CANCELLED]
            confirmed = [r.status is RegistrationStatus.CONFIRMED for r in live]
            # Every CONFIRMED row comes before every WAITLISTED one in seq order.
            assert confirmed == sorted(confirmed, reverse=True)

    async def test_confirmed_ones_hold_check_in_codes(self, session):
        await seeded(session)

        rows = [r for line in (await registrations_by_event(session)).values() for r in line]
        confirmed = [r for r in rows if r.status is RegistrationStatus.CONFIRMED]
        assert confirmed != []
        assert all(r.checkin_code is not None for r in confirmed)
        assert [r for r in rows if r not in confirmed and r.checkin_code is not None] == []

    async def test_promotions_follow_cancellations(self, session):
        await seeded(session)

        for line in (await registrations_by_event(session)).values():
            for registration in line:
                if registration.promoted_at is not None:
                    assert registration.status is RegistrationStatus.CONFIRMED
                    assert registration.promoted_at > registration.created_at
                if registration.status is RegistrationStatus.CANCELLED:
                    assert registration.cancelled_at is not None

    async def test_registrations_only_on_events_that_were_open(self, session):
        await seeded(session)

        events = {e.id: e for e in await all_events(session)}
        lines = await registrations_by_event(session)
        assert lines != {}
        for event_id, line in lines.items():
            event = events[event_id]
            assert event.published_at is not None
            assert {r.created_at > event.published_at for r in line} == {True}
            if event.status is EventStatus.CANCELLED:
                assert {r.status for r in line} == {RegistrationStatus.CANCELLED}
                assert (event.registered_count, event.waitlist_count) == (0, 0)
            # One live registration per user and event.
            live = [r.user_id for r in line if r.status is not RegistrationStatus.CANCELLED]
            assert len(live) == len(set(live))

    async def test_registrants_are_the_seeded_users(self, session):
        await seeded(session)

        users = {u.id: u.role for u in await demo_users(session)}
        lines = await registrations_by_event(session)
        roles = {users[r.user_id] for line in lines.values() for r in line}
        assert roles == {UserRole.AUTHENTICATED}

    async def test_no_mail_is_queued(self, session):
        await seeded(session)

        assert await queued_mail(session) == []

    async def test_demo_password_logs_a_user_in(self, client, session):
        await seeded(session)
        user = next(u for u in await demo_users(session) if u.role is UserRole.AUTHENTICATED)

        response = await client.post(
            LOGIN, data={"username": user.email, "password": DEMO_PASSWORD}
        )

        assert response.status_code == 200
        assert response.json()["token_type"] == "bearer"
        me = await client.get(
            "/api/v1/users/me",
            headers={"Authorization": f"Bearer {response.json()['access_token']}"},
        )
        assert (me.json()["email"], me.json()["role"]) == (user.email, "AUTHENTICATED")

    async def test_demo_password_logs_the_admin_in(self, client, session):
        await seeded(session)

        response = await client.post(
            LOGIN, data={"username": ADMIN_EMAIL, "password": DEMO_PASSWORD}
        )

        assert response.status_code == 200
        me = await client.get(
            "/api/v1/users/me",
            headers={"Authorization": f"Bearer {response.json()['access_token']}"},
        )
        assert me.json()["role"] == "ADMIN"

    async def test_seeded_events_are_listed(self, client, session):
        summary = await seeded(session)

        response = await client.get("/api/v1/events", params={"size": 100})

        assert response.status_code == 200
        assert response.json()["total"] == summary.events[EventStatus.PUBLISHED]

    def test_demo_password_passes_the_policy(self):
        assert password_problem(DEMO_PASSWORD, ADMIN_EMAIL) is None
        assert password_problem(DEMO_PASSWORD, f"someone@{EMAIL_DOMAIN}") is None

    async def test_running_twice_adds_more(self, session):
        first = await seeded(session)
        titles = Counter(e.title for e in await all_events(session))

        second = await seeded(session)

        assert (first.admin_created, second.admin_created) == (True, False)
        roles = Counter(user.role for user in await demo_users(session))
        assert roles == {UserRole.AUTHENTICATED: 60, UserRole.MANAGER: 8, UserRole.ADMIN: 1}
        assert second.events == first.events
        # The same seed gives the same content; only ids, emails and nicknames differ.
        assert Counter(e.title for e in await all_events(session)) == {
            title: 2 * n for title, n in titles.items()
        }

    async def test_existing_admin_email_is_left_alone(self, session):
        existing = await create_user(session, role=UserRole.MANAGER, email=ADMIN_EMAIL.upper())

        summary = await seeded(session)

        assert summary.admin_created is False
        accounts = await session.scalar(
            select(func.count()).select_from(User).where(func.lower(col(User.email)) == ADMIN_EMAIL)
        )
        assert accounts == 1
        await session.refresh(existing)
        assert existing.role is UserRole.MANAGER

    async def test_without_users_or_managers_the_admin_creates_events(self, session):
        summary = await seed(session, users=0, managers=0, events=6, seed=1)

        events = await all_events(session)
        admin = await session.scalar(select(User).where(col(User.email) == ADMIN_EMAIL))
        assert admin is not None
        assert {e.created_by for e in events} == {admin.id}
        assert {e.event_type for e in events} == set(EventType)
        assert await registrations_by_event(session) == {}
        assert sum(summary.registrations.values()) == 0

    async def test_progress_is_told_after_the_accounts_and_each_chunk_of_events(
        self, session, monkeypatch
    ):
        import sys

        monkeypatch.setattr(sys.modules["api.demo.seed"], "EVENT_CHUNK", 4)
        done: list[int] = []

        await seed(session, users=3, managers=1, events=10, seed=1, on_progress=done.append)

        assert done == [0, 4, 8, 10]
        assert await session.scalar(select(func.count()).select_from(Event)) == 10

    async def test_negative_count_is_refused(self, session):
        with pytest.raises(ValueError, match="counts must not be negative"):
            await seed(session, users=-1, managers=0, events=0, seed=1)


class TestRegistrationsTarget:
    """seed(registrations=n): about n registrations, under the same rules as the default."""

    async def test_about_the_asked_number_of_registrations(self, session):
        summary = await seeded(session, users=60, events=40, registrations=600)

        lines = await registrations_by_event(session)
        total = sum(len(line) for line in lines.values())
        assert total == sum(summary.registrations.values())
        assert 600 * 0.7 <= total <= 600 * 1.3

    async def test_rules_hold_with_crowded_events(self, session):
        await seeded(session, users=60, events=40, registrations=1200)

        lines = await registrations_by_event(session)
        for event in await all_events(session):
            line = lines.get(event.id, [])
            statuses = Counter(r.status for r in line)
            assert event.registered_count == statuses[RegistrationStatus.CONFIRMED]
            assert event.waitlist_count == statuses[RegistrationStatus.WAITLISTED]
            assert event.capacity is None or event.registered_count <= event.capacity
            assert event.waitlist_count == 0 or event.registered_count == event.capacity
            assert len({r.user_id for r in line}) == len(line)
            live = [r for r in line if r.status is not RegistrationStatus.CANCELLED]
            confirmed = [r.status is RegistrationStatus.CONFIRMED for r in live]
            assert confirmed == sorted(confirmed, reverse=True)

    async def test_negative_target_is_refused(self, session):
        with pytest.raises(ValueError, match="counts must not be negative"):
            await seed(session, users=1, managers=0, events=1, registrations=-1, seed=1)


def _fetch(url: str, sql: str) -> list[Any]:
    async def run() -> list[Any]:
        connection = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            return [tuple(r) for r in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(run())


@pytest.fixture
def fresh_database(db_server: TestDatabaseServer, monkeypatch: pytest.MonkeyPatch):
    """An empty throwaway database that the CLI uses (DATABASE_URL), dropped afterwards."""
    name = db_server.create_database(prefix="event_manager_demo")
    url = db_server.url_for(name)
    monkeypatch.setattr(settings, "DATABASE_URL", url)
    get_database_url.cache_clear()
    try:
        yield url
    finally:
        get_database_url.cache_clear()
        db_server.drop_database(name)


class TestSeedDemoCommand:
    def test_help_lists_the_options(self):
        result = runner.invoke(app, ["seed-demo", "--help"])

        assert result.exit_code == 0, result.output
        for option in ("--users", "--managers", "--events", "--registrations", "--seed"):
            assert option in result.output

    def test_seeds_a_migrated_database_twice(self, fresh_database):
        assert runner.invoke(app, ["migrate"]).exit_code == 0
        args = ["seed-demo", "--users", "6", "--managers", "2", "--events", "8", "--seed", "3"]

        first = runner.invoke(app, args)
        second = runner.invoke(app, args)

        assert first.exit_code == 0, first.output
        assert second.exit_code == 0, second.output
        assert DEMO_PASSWORD in first.output
        assert f"{ADMIN_EMAIL} (created)" in first.output
        assert f"{ADMIN_EMAIL} (existing)" in second.output
        roles = _fetch(fresh_database, 'SELECT role::text, count(*) FROM "user" GROUP BY 1')
        assert dict(roles) == {"AUTHENTICATED": 12, "MANAGER": 4, "ADMIN": 1}
        assert _fetch(fresh_database, "SELECT count(*) FROM event") == [(16,)]
        assert _fetch(fresh_database, "SELECT count(*) FROM pgqueuer") == [(0,)]
        unbalanced = _fetch(
            fresh_database,
            "SELECT e.id FROM event e WHERE registered_count <> (SELECT count(*) FROM "
            "registration r WHERE r.event_id = e.id AND r.status = 'CONFIRMED') "
            "OR waitlist_count <> (SELECT count(*) FROM registration r "
            "WHERE r.event_id = e.id AND r.status = 'WAITLISTED')",
        )
        assert unbalanced == []

    def test_unmigrated_database_exits_1(self, fresh_database):
        result = runner.invoke(app, ["seed-demo", "--users", "1", "--events", "1"])

        assert result.exit_code == 1
        assert "has `event-manager migrate` run?" in result.output
        assert _fetch(
            fresh_database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ) == [(0,)]

    def test_negative_count_is_a_usage_error(self):
        result = runner.invoke(app, ["seed-demo", "--users", "-1"])

        assert result.exit_code == 2

    def test_the_installed_command_seeds_in_a_process_of_its_own(self, fresh_database):
        """The command as a user runs it: a new process that imported only what the command
        imports, so every table a seeded row refers to must be known to it."""
        assert runner.invoke(app, ["migrate"]).exit_code == 0
        env = {**os.environ, "DATABASE_URL": fresh_database}
        args = ["seed-demo", "--users", "3", "--managers", "1", "--events", "4", "--seed", "5"]

        done = subprocess.run(
            [sys.executable, "-m", "api.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert done.returncode == 0, done.stdout + done.stderr
        assert f"password {DEMO_PASSWORD}" in " ".join(done.stdout.split())
        assert _fetch(fresh_database, "SELECT count(*) FROM event") == [(4,)]
