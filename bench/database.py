"""The throwaway database: where it lives, seeding it, and the rows the scenarios need."""

import asyncio
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from api.tokens.models import SHOWN_PREFIX_LENGTH, hash_api_token, new_token
from api.users.models import hash_token
from bench.common import BENCH_USERS, BURST_SEATS, NOTICES, Data, console
from tests.support import ROOT, TestDatabaseServer


def database_server() -> TestDatabaseServer:
    configured = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not configured:
        local = "postgresql://postgres@127.0.0.1:5432/postgres"
        try:
            asyncio.run(_ping(local))
            configured = local
        except (OSError, asyncpg.PostgresError, TimeoutError):
            console.print("no PostgreSQL at 127.0.0.1:5432: using an embedded server")
    if configured:
        os.environ["TEST_DATABASE_URL"] = configured
    return TestDatabaseServer()


async def _ping(dsn: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=2)
    await connection.close()


@contextmanager
def database(
    server: TestDatabaseServer, scale: float, *, notices: int = NOTICES
) -> Iterator[tuple[str, str, Data]]:
    """A migrated, seeded, prepared database (SQLAlchemy URL, asyncpg DSN), dropped after use."""
    name = server.create_database(prefix="event_manager_bench")
    url, dsn = server.url_for(name), server.url_for(name, driver="postgresql")
    try:
        seed(url, scale)
        yield url, dsn, asyncio.run(prepare(dsn, notices=notices))
    finally:
        server.drop_database(name)


def seed(url: str, scale: float) -> None:
    """Migrations (of the code at hand), then `event-manager seed-demo` at the chosen size."""
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    cli = [sys.executable, "-m", "api.cli"]
    subprocess.run([*cli, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    size = [
        "--users", str(int(10_000 * scale)),
        "--managers", str(max(5, int(50 * scale))),
        "--events", str(int(10_000 * scale)),
        "--registrations", str(int(100_000 * scale)),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(
        [*cli, "seed-demo", *size], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )
    console.print(f"seed-demo {' '.join(size)}: {time.perf_counter() - start:.0f} s")


async def prepare(dsn: str, *, notices: int) -> Data:
    """Tokens for BENCH_USERS users and the admin, `notices` notices for each of their inboxes,
    and events of the bench's own for the write scenarios (so that seeded registrations never
    collide)."""
    connection = await asyncpg.connect(dsn)
    try:
        users = await connection.fetch(
            "SELECT id, email FROM \"user\" WHERE role = 'AUTHENTICATED' AND is_verified"
            " ORDER BY email LIMIT $1",
            BENCH_USERS,
        )
        admin = await connection.fetchval("SELECT id FROM \"user\" WHERE role = 'ADMIN' LIMIT 1")
        tokens = [secrets.token_urlsafe() for _ in range(len(users) + 1)]
        await connection.executemany(
            "INSERT INTO accesstoken (token, user_id, created_at) VALUES ($1, $2, now())",
            [
                (hash_token(t), i)
                for t, i in zip(tokens, [u["id"] for u in users] + [admin], strict=True)
            ],
        )
        # The same users' API tokens (users:read), just used: each writes last_used_at again
        # once a minute at most, as for a client calling many times a minute.
        api_tokens = [new_token() for _ in users]
        await connection.executemany(
            "INSERT INTO api_token (id, user_id, name, scopes, expires_at, token_hash,"
            " token_prefix, created_at, last_used_at)"
            " VALUES ($1, $2, 'bench', ARRAY['users:read'], now() + interval '30 days', $3,"
            " $4, now(), now())",
            [
                (uuid.uuid4(), u["id"], hash_api_token(t), t[:SHOWN_PREFIX_LENGTH])
                for t, u in zip(api_tokens, users, strict=True)
            ],
        )
        # A third of them read.
        await connection.execute(
            "INSERT INTO notification (id, user_id, kind, title, body, data, read_at, created_at)"
            " SELECT gen_random_uuid(), u, 'EVENT_REMINDER', 'Reminder: event ' || n,"
            " 'Your event starts tomorrow.', jsonb_build_object('n', n),"
            " CASE WHEN n % 3 = 0 THEN now() END, now() - n * interval '1 hour'"
            " FROM unnest($1::uuid[]) AS u, generate_series(1, $2) AS n",
            [u["id"] for u in users],
            notices,
        )
        toggle_events = [
            await new_event(connection, admin, capacity=BURST_SEATS) for _ in range(20)
        ]
        event_ids = await connection.fetch(
            "SELECT id FROM event WHERE status = 'PUBLISHED' AND starts_at > now()"
            " ORDER BY id LIMIT 500"
        )
        # As autovacuum leaves a table after a bulk load: statistics, and a visibility map for
        # index-only scans (the listing's count over ix_event_status_starts_at needs one).
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return Data(
        tokens=tokens[:-1],
        api_tokens=api_tokens,
        emails=[u["email"] for u in users],
        staff_token=tokens[-1],
        event_ids=[str(r["id"]) for r in event_ids],
        toggle_events=toggle_events,
    )


async def new_event(connection: Any, creator: uuid.UUID, *, capacity: int) -> str:
    event_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO event (id, title, description, event_type, starts_at, ends_at, timezone,"
        " location, capacity, tags, status, created_by, reviewed_by, registered_count,"
        " waitlist_count,"
        " created_at, updated_at, published_at) VALUES ($1, 'Bench launch', 'Opens now',"
        " 'WORKSHOP', now() + interval '30 days', now() + interval '30 days 2 hours', 'UTC',"
        " 'Room 1', $2, ARRAY['bench'], 'PUBLISHED', $3, $3, 0, 0, now(), now(), now())",
        event_id,
        capacity,
        creator,
    )
    return str(event_id)


async def reset_toggles(dsn: str, events: list[str]) -> None:
    """Release every registration on the write scenarios' events, between runs."""
    connection = await asyncpg.connect(dsn)
    try:
        ids = [uuid.UUID(e) for e in events]
        await connection.execute(
            # A check-in code is held by CONFIRMED registrations only (a CHECK says so).
            "UPDATE registration SET status = 'CANCELLED', cancelled_at = now(),"
            " checkin_code = NULL WHERE event_id = ANY($1)"
            " AND status IN ('CONFIRMED', 'OFFERED', 'WAITLISTED')",
            ids,
        )
        await connection.execute(
            "UPDATE event SET registered_count = 0, waitlist_count = 0, offered_count = 0"
            " WHERE id = ANY($1)",
            ids,
        )
    finally:
        await connection.close()


async def free_connections(dsn: str) -> tuple[int, int]:
    """PostgreSQL's max_connections, and how many of them are free right now."""
    connection = await asyncpg.connect(dsn)
    try:
        most = int(await connection.fetchval("SHOW max_connections"))
        used = int(
            await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            )
        )
    finally:
        await connection.close()
    return most, most - used
