"""IDEM-1 against a real server: two uvicorn workers, parallel requests with one key.

The server has a throwaway database of its own; the caller and the events are written there
directly before the requests.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api.db import create_engine
from api.registrations.models import Registration
from api.users.models import UserRole
from tests.factories import create_event, create_user, token_headers
from tests.leaks import LeakScanner
from tests.support import ServerProcess, TestDatabaseServer, report_figure, run_server

PARALLEL = 20
ROUNDS = 3
IN_USE = {
    "detail": {
        "code": "IDEMPOTENCY_KEY_IN_USE",
        "reason": "The first request with this Idempotency-Key is still running; retry shortly.",
    }
}


@pytest.fixture(scope="module")
def server(db_server: TestDatabaseServer) -> Iterator[ServerProcess]:
    env = {"AUTH_RATE_LIMIT": "off", "RUN_WORKER_IN_PROCESS": "false", "DB_POOL_SIZE": "15"}
    with run_server(env, workers=2, own_database=db_server) as process:
        yield process


@pytest.fixture
async def server_db(server: ServerProcess) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(server.database_url, pool_size=2)
    yield engine
    await engine.dispose()


async def registrations_of(engine: AsyncEngine, event_id: uuid.UUID) -> int:
    async with AsyncSession(engine) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Registration)
            .where(col(Registration.event_id) == event_id)
        )
        return int(count or 0)


@pytest.mark.security("IDEM-1")
async def test_parallel_same_key_registers_once(
    server: ServerProcess, server_db: AsyncEngine
) -> None:
    async with AsyncSession(server_db, expire_on_commit=False) as session:
        manager = await create_user(session, role=UserRole.MANAGER)
        attendee = await create_user(session, role=UserRole.AUTHENTICATED)
        headers = await token_headers(session, attendee)
        events = [await create_event(session, owner=manager) for _ in range(ROUNDS)]
        await session.commit()

    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=30, limits=limits, event_hooks=LeakScanner().hooks
    ) as client:
        for event in events:
            url = f"/api/v1/events/{event.id}/registrations"
            keyed = {**headers, "Idempotency-Key": f"idem-1-{uuid.uuid4()}"}
            answers = await asyncio.gather(
                *(client.post(url, headers=keyed) for _ in range(PARALLEL))
            )
            created = [a for a in answers if a.status_code == 201]
            [first] = [a for a in created if "idempotent-replayed" not in a.headers]
            replayed = [a for a in created if a.headers.get("idempotent-replayed") == "true"]
            in_use = [a for a in answers if a.status_code == 409 and a.json() == IN_USE]
            assert len(created) == 1 + len(replayed)
            assert 1 + len(replayed) + len(in_use) == PARALLEL, [
                (a.status_code, a.text) for a in answers
            ]
            assert all(a.content == first.content for a in replayed)
            assert all(a.headers["retry-after"] == "1" for a in in_use)
            assert not [a for a in answers if "ALREADY_REGISTERED" in a.text]
            assert first.json()["status"] == "CONFIRMED"
            assert await registrations_of(server_db, event.id) == 1
            report_figure(
                f"IDEM-1: {PARALLEL} parallel same-key registrations: 1 run, "
                f"{len(replayed)} replayed, {len(in_use)} answered 409 IDEMPOTENCY_KEY_IN_USE"
            )
            # Once the first is done, the key replays it.
            later = await client.post(url, headers=keyed)
            assert later.status_code == 201
            assert later.headers["idempotent-replayed"] == "true"
            assert later.content == first.content
