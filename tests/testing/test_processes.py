"""The test clock across processes, and TEST-1, against real servers on databases of their own.

With ENVIRONMENT=test (the suite's), a PUT on one connection moves the clock of every web worker,
of another server on the same database, of one started afterwards and of an `event-manager
worker` process. Observed through what "now" decides: which events GET /events lists (those not
started yet), whether a login token is past its lifetime, when the reminder job runs.

With ENVIRONMENT=production the routes do not exist: 404 as for any unknown path, and absent from
/openapi.json; no process listens for the clock.
"""

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api import clock
from api.db import create_engine
from api.events.models import Event
from api.mail.service import queries_for
from api.testing.models import LATEST
from api.testing.service import LISTENER_APPLICATION_NAME
from api.users.models import AccessToken, UserRole, hash_token
from api.worker import SEND_REMINDERS
from tests.factories import create_event, create_user, register, reminded_at, token_headers
from tests.support import ROOT, ServerProcess, TestDatabaseServer, run_server

CLOCK = "/api/v1/testing/clock"
JOB = "/api/v1/testing/jobs/send_event_reminders"
# Requests on new connections, which the kernel hands to either web worker.
REQUESTS_PER_CHECK = 8
# How long a process may take to receive a change's notification (milliseconds, in practice).
NOTICE_SECONDS = 5.0
WORKER_SECONDS = 60.0
# The event starts 3.5 days after the real time: a clock moved 4 days has it started, one
# moved 3 days has it due for its reminder.
PAST_THE_START = timedelta(days=4)
REMINDER_DUE = timedelta(days=3)


@dataclass(frozen=True)
class Deployment:
    server: ServerProcess
    database_url: str


@dataclass(frozen=True)
class World:
    """Committed in the deployment's database: an admin with a token that never expires on a
    clock the tests set, one that expires an hour after the real time, and an event."""

    admin: dict[str, str]
    expiring: dict[str, str]
    title: str
    event_id: str
    registrant_id: uuid.UUID


@pytest.fixture(scope="module")
def deployment(db_server: TestDatabaseServer) -> Iterator[Deployment]:
    """Two web workers on a database of their own (dropped afterwards)."""
    with run_server({}, workers=2, own_database=db_server) as server:
        yield Deployment(server, server.database_url)


@asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


async def admin_token(session: AsyncSession, user_id: uuid.UUID) -> dict[str, str]:
    """A login token issued at the latest moment the clock can read: live whatever it says."""
    token = secrets.token_urlsafe()
    session.add(AccessToken(token=hash_token(token), user_id=user_id, created_at=LATEST))
    await session.flush()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def world(deployment: Deployment) -> AsyncIterator[World]:
    async with engine_for(deployment.database_url) as engine:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            admin = await create_user(session, role=UserRole.ADMIN)
            manager = await create_user(session, role=UserRole.MANAGER)
            registrant = await create_user(session)
            title = f"Clock {uuid.uuid4().hex[:8]}"
            starts_at = clock.now() + timedelta(days=3, hours=12)
            event = await create_event(
                session,
                owner=manager,
                title=title,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=2),
            )
            await register(session, event, registrant)
            found = World(
                admin=await admin_token(session, admin.id),
                expiring=await token_headers(session, admin),
                title=title,
                event_id=str(event.id),
                registrant_id=registrant.id,
            )
            await session.commit()
        yield found
        # Real time again for the next test, whatever this one left.
        async with httpx.AsyncClient(base_url=deployment.server.base_url) as client:
            response = await client.delete(CLOCK, headers=found.admin)
            assert response.status_code == 204


async def new_connection_get(
    base_url: str, path: str, headers: dict[str, str] | None = None, **params: str
) -> httpx.Response:
    """A GET on a connection of its own, which either web worker may accept."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.get(path, headers=headers or {}, params=params)


async def listed(base_url: str, title: str) -> list[str]:
    response = await new_connection_get(base_url, "/api/v1/events", q=title)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def me_status(base_url: str, headers: dict[str, str]) -> int:
    return (await new_connection_get(base_url, "/api/v1/users/me", headers)).status_code


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def sees(base_url: str, world: World, *, moved: bool) -> None:
    """Every request, on new connections, sees the clock moved PAST_THE_START (the event has
    started, the expiring token is past its lifetime) or the real time (neither)."""
    event_ids = [] if moved else [world.event_id]
    expiring_status = 401 if moved else 200

    async def first() -> bool:
        return await listed(base_url, world.title) == event_ids

    await eventually(first, NOTICE_SECONDS)
    for _ in range(REQUESTS_PER_CHECK):
        assert await listed(base_url, world.title) == event_ids
        assert await me_status(base_url, world.expiring) == expiring_status


async def put_clock(base_url: str, world: World, moment: datetime) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.put(CLOCK, headers=world.admin, json={"now": moment.isoformat()})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listeners(database_url: str) -> int:
    """Connections listening for the clock on that database."""
    async with engine_for(database_url) as engine, engine.connect() as connection:
        count = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = :name"
            ),
            {"name": LISTENER_APPLICATION_NAME},
        )
    return int(count or 0)


class TestSharedClock:
    async def test_each_web_worker_listens(self, deployment: Deployment) -> None:
        # The server answers once one worker is up; the other may still be starting.
        await eventually(lambda: _listeners_at_least(deployment.database_url, 2), NOTICE_SECONDS)
        await asyncio.sleep(0.5)
        assert await listeners(deployment.database_url) == 2

    async def test_every_web_worker_follows_put_and_delete(
        self, deployment: Deployment, world: World
    ) -> None:
        base_url = deployment.server.base_url
        await sees(base_url, world, moved=False)

        await put_clock(base_url, world, clock.now() + PAST_THE_START)
        await sees(base_url, world, moved=True)

        async with httpx.AsyncClient(base_url=base_url) as client:
            assert (await client.delete(CLOCK, headers=world.admin)).status_code == 204
        await sees(base_url, world, moved=False)

    async def test_another_server_on_the_database_follows(
        self, deployment: Deployment, world: World
    ) -> None:
        with run_server({"DATABASE_URL": deployment.database_url}, workers=1) as other:
            await sees(other.base_url, world, moved=False)

            await put_clock(deployment.server.base_url, world, clock.now() + PAST_THE_START)
            await sees(other.base_url, world, moved=True)

            # And back, from the other server this time.
            async with httpx.AsyncClient(base_url=other.base_url) as client:
                assert (await client.delete(CLOCK, headers=world.admin)).status_code == 204
            await sees(deployment.server.base_url, world, moved=False)
            await sees(other.base_url, world, moved=False)

    async def test_a_server_started_later_reads_it_at_start(
        self, deployment: Deployment, world: World
    ) -> None:
        await put_clock(deployment.server.base_url, world, clock.now() + PAST_THE_START)

        with run_server({"DATABASE_URL": deployment.database_url}, workers=1) as later:
            # Its very first request: it read the setting before it served.
            assert await listed(later.base_url, world.title) == []
            assert await me_status(later.base_url, world.expiring) == 401

    async def test_a_worker_process_runs_jobs_on_it(
        self, deployment: Deployment, world: World
    ) -> None:
        body = await put_clock(deployment.server.base_url, world, clock.now() + REMINDER_DUE)
        offset = timedelta(seconds=body["offset_seconds"])
        with running_worker(deployment.database_url) as log_path:
            await eventually(
                lambda: _listeners_at_least(deployment.database_url, 3), WORKER_SECONDS
            )
            async with engine_for(deployment.database_url) as engine:
                enqueued = clock.real_now()
                async with AsyncSession(engine) as session:
                    await (await queries_for(session)).enqueue(SEND_REMINDERS, None)
                    await session.commit()
                reminded = await reminder_sent_at(engine, world, log_path)
                observed = clock.real_now()

        # Sent on the moved clock: real time plus the offset, between the enqueue and now.
        assert enqueued + offset <= reminded <= observed + offset


async def _listeners_at_least(database_url: str, count: int) -> bool:
    return await listeners(database_url) >= count


async def reminder_sent_at(engine: AsyncEngine, world: World, log_path: Path) -> datetime:
    deadline = time.monotonic() + WORKER_SECONDS
    while True:
        async with AsyncSession(engine) as session:
            event = await session.get(Event, uuid.UUID(world.event_id))
            assert event is not None
            sent_at = await reminded_at(session, event)
            if sent_at is not None:
                return sent_at
        assert time.monotonic() < deadline, tail(log_path)
        await asyncio.sleep(0.1)


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-5000:]


@contextmanager
def running_worker(database_url: str) -> Iterator[Path]:
    """`event-manager worker` on that database; yields the path of its output."""
    log_file = tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        yield Path(log_file.name)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        Path(log_file.name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def production(db_server: TestDatabaseServer) -> Iterator[ServerProcess]:
    """A production-mode server (the suite's SECRET_KEY is long enough for it)."""
    with run_server({"ENVIRONMENT": "production"}, workers=1, own_database=db_server) as server:
        yield server


@pytest.mark.security("TEST-1")
class TestProductionServer:
    async def test_routes_answer_404_as_unknown_paths(self, production: ServerProcess) -> None:
        async with engine_for(production.database_url) as engine:
            async with AsyncSession(engine) as session:
                admin = await create_user(session, role=UserRole.ADMIN)
                headers = await admin_token(session, admin.id)
                await session.commit()
        async with httpx.AsyncClient(base_url=production.base_url, timeout=10) as client:
            me = await client.get("/api/v1/users/me", headers=headers)
            unknown = await client.put("/api/v1/no-such-route", headers=headers)
            answers = [
                await client.put(CLOCK, headers=headers, json={"now": "2032-05-04T09:00:00Z"}),
                await client.delete(CLOCK, headers=headers),
                await client.post(JOB, headers=headers),
                await client.post("/api/v1/testing/jobs/no_such_job", headers=headers),
                await client.put(CLOCK, json={"now": "2032-05-04T09:00:00Z"}),
            ]

        assert me.status_code == 200  # the admin's token works there
        assert (unknown.status_code, unknown.json()) == (404, {"detail": "NOT_FOUND"})
        assert [(a.status_code, a.json()) for a in answers] == [
            (404, {"detail": "NOT_FOUND"})
        ] * len(answers)

    async def test_routes_absent_from_openapi_json(self, production: ServerProcess) -> None:
        async with httpx.AsyncClient(base_url=production.base_url, timeout=10) as client:
            response = await client.get("/openapi.json")

        assert response.status_code == 200
        paths = response.json()["paths"]
        assert "/api/v1/events" in paths
        assert [path for path in paths if "testing" in path] == []
        assert "testing" not in response.text

    async def test_no_process_listens_for_the_clock(self, production: ServerProcess) -> None:
        assert await listeners(production.database_url) == 0
