"""Through a real PgBouncer in transaction pooling mode (tests/pgbouncer.py).

A real `event-manager serve` with two workers has DATABASE_URL through PgBouncer
(DB_PGBOUNCER=true) and WORKER_DATABASE_URL straight to PostgreSQL: it signs up, verifies (the
worker, listening on the direct URL, delivers the mail), logs in, reads, and gives K users
racing for N seats exactly N. At the engine level, the negative control: without DB_PGBOUNCER
concurrent transactions through the pooler fail on prepared statements; with it they succeed,
in autocommit too, and leave no statement behind on the server connections. SQLAlchemy's
documented recipe, a unique name per statement, fails outside a transaction and leaves
statements behind: why api.db sends unnamed ones.
"""

import asyncio
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from api.db import create_engine
from api.mail.service import SUBJECTS
from api.registrations.models import RegistrationStatus
from api.testing.service import LISTENER_APPLICATION_NAME
from api.users.models import UserRole
from api.worker import WORKER_APPLICATION_NAME
from tests.events.test_concurrency import (
    all_at_once,
    assert_counters_match_rows,
    stored_registrations,
)
from tests.factories import DEFAULT_PASSWORD, create_event, create_user, token_headers
from tests.leaks import LeakScanner
from tests.pgbouncer import POOL_SIZE, PgBouncer, run_pgbouncer
from tests.support import Mailbox, TestDatabaseServer, free_port, report_figure
from tests.test_shutdown import output, start, wait_for_health
from tests.users.test_auth import link_token

CONFIRMED = RegistrationStatus.CONFIRMED
WAITLISTED = RegistrationStatus.WAITLISTED
# Client connections of one engine, each running TRANSACTIONS transactions: twice PgBouncer's
# server connections, so that clients share them.
CLIENTS = 2 * POOL_SIZE
TRANSACTIONS = 5
SEATS = 10
RACERS = 40
# The race queues 40 requests on PgBouncer's 10 server connections and on the event's row lock:
# on a busy machine a request may wait longer than the default 3 s for either, which would
# answer 503. The server waits longer instead; the race itself is unchanged.
WAIT_SECONDS = 30
# Two web processes import the app and migrate: on a machine loaded by other test runs that has
# taken over a minute.
START_SECONDS = 180
MAIL_SECONDS = 30
PREPARED_STATEMENT_ERRORS = {
    asyncpg.exceptions.DuplicatePreparedStatementError,
    asyncpg.exceptions.InvalidSQLStatementNameError,
}


@pytest.fixture(scope="module")
def pgbouncer(db_server: TestDatabaseServer) -> Iterator[PgBouncer]:
    with run_pgbouncer(db_server) as bouncer:
        yield bouncer


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


# --- the engine through the pooler ------------------------------------------------------------


@pytest.fixture
async def pooled_database(
    db_server: TestDatabaseServer, pgbouncer: PgBouncer
) -> AsyncIterator[str]:
    """The URL through PgBouncer of a new, empty throwaway database: a pool of its own there."""
    name = await asyncio.to_thread(db_server.create_database, "event_manager_pgbouncer")
    yield pgbouncer.url_for(name)
    await asyncio.to_thread(db_server.drop_database, name)


def root_cause(error: BaseException) -> type[BaseException]:
    """The driver's exception under SQLAlchemy's wrappers."""
    while error.__cause__ is not None:
        error = error.__cause__
    return type(error)


async def run_clients(engine: AsyncEngine, *, autocommit: bool) -> list[BaseException | None]:
    """CLIENTS connections at once, each running TRANSACTIONS short transactions (or, with
    `autocommit`, as many pairs of statements outside any transaction) and checking every
    answer; what each client raised, if anything."""

    async def client(number: int) -> None:
        async with engine.connect() as connection:
            if autocommit:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            for step in range(TRANSACTIONS):
                total = await connection.scalar(
                    text("SELECT CAST(:a AS integer) + CAST(:b AS integer)"),
                    {"a": number, "b": step},
                )
                assert total == number + step
                found = await connection.scalar(
                    text("SELECT count(*) FROM pg_class WHERE relname = :name"),
                    {"name": "pg_class"},
                )
                assert found == 1
                if not autocommit:
                    await connection.commit()

    outcomes = await asyncio.gather(
        *(client(number) for number in range(CLIENTS)), return_exceptions=True
    )
    return list(outcomes)


def describe(failed: list[type[BaseException]]) -> str:
    kinds = ", ".join(f"{count} {kind.__name__}" for kind, count in Counter(failed).items())
    return f"{len(failed)} of {CLIENTS} clients failed ({kinds or 'none'})"


async def failures(engine: AsyncEngine, *, autocommit: bool) -> list[type[BaseException]]:
    outcomes = await run_clients(engine, autocommit=autocommit)
    return [root_cause(outcome) for outcome in outcomes if outcome is not None]


async def statements_left(url: str) -> list[tuple[int, int]]:
    """(backend pid, prepared statements) of every server connection in the pool: POOL_SIZE
    transactions held open at once each have one of their own."""
    all_in = asyncio.Barrier(POOL_SIZE)

    async def look() -> tuple[int, int]:
        connection = await asyncpg.connect(url.replace("+asyncpg", ""), statement_cache_size=0)
        try:
            async with connection.transaction():
                row = await connection.fetchrow(
                    "SELECT pg_backend_pid() AS pid, count(*) AS left FROM pg_prepared_statements"
                )
                assert row is not None
                await all_in.wait()
            return int(row["pid"]), int(row["left"])
        finally:
            await connection.close()

    return list(await asyncio.gather(*(look() for _ in range(POOL_SIZE))))


def engine_for(url: str, **kwargs: Any) -> AsyncEngine:
    return create_engine(url, pool_size=CLIENTS, **kwargs)


async def fresh_server_connections(pgbouncer: PgBouncer, url: str) -> None:
    """Close the pool's server connections, and the statements left on them."""
    database = make_url(url).database
    await asyncio.to_thread(pgbouncer.console, f"RECONNECT {database}")

    async def closed() -> bool:
        servers = await asyncio.to_thread(pgbouncer.show, "SERVERS")
        return all(server["database"] != database for server in servers)

    await eventually(closed, WAIT_SECONDS)


async def test_without_the_setting_concurrent_transactions_fail_on_prepared_statements(
    pooled_database: str, pgbouncer: PgBouncer
) -> None:
    engine = engine_for(pooled_database, pgbouncer=False)
    try:
        # The dialect's first connection runs statements of its own, which would shift that
        # connection's statement numbers: done and gone before the clients start, so that each
        # statement name means the same query on every connection.
        async with engine.connect():
            pass
        await engine.dispose()
        await fresh_server_connections(pgbouncer, pooled_database)
        failed = await failures(engine, autocommit=False)
    finally:
        await engine.dispose()
    report_figure(f"PgBouncer, without DB_PGBOUNCER: {describe(failed)}")
    # Each client's cached statements, named __asyncpg_stmt_1__, 2 ... on every connection, are
    # missing on the server connection its next transaction gets, or already there from another
    # client (the same query: a named statement that ran another one would be worse still).
    assert failed, "through a transaction pooler, named prepared statements must fail"
    assert set(failed) <= PREPARED_STATEMENT_ERRORS, Counter(failed)


@pytest.mark.parametrize("autocommit", [False, True], ids=["transactions", "autocommit"])
async def test_with_the_setting_concurrent_statements_succeed_and_leave_nothing_behind(
    pooled_database: str, autocommit: bool
) -> None:
    engine = engine_for(pooled_database, pgbouncer=True)
    try:
        assert await failures(engine, autocommit=autocommit) == []
    finally:
        await engine.dispose()
    left = await statements_left(pooled_database)
    assert len({pid for pid, _ in left}) == POOL_SIZE
    assert [count for _, count in left] == [0] * POOL_SIZE


async def test_uniquely_named_statements_fail_in_autocommit_and_stay_behind(
    pooled_database: str,
) -> None:
    """SQLAlchemy's documented recipe for PgBouncer: outside a transaction a statement is
    prepared on one server connection and executed on another; inside one, the last statement
    of each transaction is closed only by the client's next, on whichever server that runs."""

    def documented_engine() -> AsyncEngine:
        return create_async_engine(
            pooled_database,
            pool_size=CLIENTS,
            max_overflow=0,
            connect_args={
                "statement_cache_size": 0,
                "prepared_statement_cache_size": 0,
                "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
            },
        )

    engine = documented_engine()
    try:
        failed = await failures(engine, autocommit=True)
    finally:
        await engine.dispose()
    report_figure(f"PgBouncer, uniquely named statements in autocommit: {describe(failed)}")
    assert failed, "a statement prepared on one server connection cannot run on another"
    assert set(failed) == {asyncpg.exceptions.InvalidSQLStatementNameError}

    engine = documented_engine()
    try:
        assert await failures(engine, autocommit=False) == []
    finally:
        await engine.dispose()
    left = await statements_left(pooled_database)
    report_figure(
        f"PgBouncer, uniquely named statements: {CLIENTS} x {TRANSACTIONS} transactions left"
        f" {sorted(count for _, count in left)} statements on the {POOL_SIZE} server connections"
    )
    assert sum(count for _, count in left) > 0, left


# --- a real server through the pooler ---------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    base_url: str
    database: str
    direct_url: str
    mailbox: Mailbox


@pytest.fixture(scope="module")
async def deployment(
    db_server: TestDatabaseServer, pgbouncer: PgBouncer, smtp_port: int, process_mailbox: Mailbox
) -> AsyncIterator[Deployment]:
    """`event-manager serve` with two workers on a freshly migrated database of its own:
    requests through PgBouncer, the job worker and the test clock straight to PostgreSQL."""
    database = await asyncio.to_thread(
        db_server.create_migrated_database, "event_manager_pgbouncer"
    )
    port = free_port()
    env = {
        "DATABASE_URL": pgbouncer.url_for(database),
        "DB_PGBOUNCER": "true",
        "WORKER_DATABASE_URL": db_server.url_for(database),
        "WEB_CONCURRENCY": "2",
        "RUN_WORKER_IN_PROCESS": "true",
        "AUTH_RATE_LIMIT": "off",
        "SMTP_PORT": str(smtp_port),
        "DB_POOL_TIMEOUT_SECONDS": str(WAIT_SECONDS),
        "DB_COMMAND_TIMEOUT_SECONDS": str(WAIT_SECONDS),
    }
    try:
        process = start(["serve", "--port", str(port)], env)
        base_url = f"http://127.0.0.1:{port}"
        try:
            await wait_for_health(base_url, process, START_SECONDS)
            yield Deployment(base_url, database, db_server.url_for(database), process_mailbox)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            print(output(process)[-5000:])  # noqa: T201 - shown with a failure only
    finally:
        await asyncio.to_thread(db_server.drop_database, database)


def http(deployment: Deployment, connections: int = 10) -> httpx.AsyncClient:
    """A client of the server whose answers are scanned for leaks (AC-2)."""
    return httpx.AsyncClient(
        base_url=deployment.base_url,
        timeout=2 * WAIT_SECONDS + 30,
        # No keep-alive: each request a new connection, which the kernel hands to either worker.
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=0),
        event_hooks=LeakScanner().hooks,
    )


@pytest.fixture
async def direct_engine(deployment: Deployment) -> AsyncIterator[AsyncEngine]:
    """The deployment's database straight from PostgreSQL, for what the test commits and
    checks."""
    engine = create_engine(deployment.direct_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.mark.security("SCALE-1")
class TestServeThroughPgBouncer:
    async def test_sign_up_verify_login_and_read(self, deployment: Deployment) -> None:
        email = f"pgbouncer-{uuid.uuid4().hex[:10]}@example.com"
        async with http(deployment) as client:
            registered = await client.post(
                "/api/v1/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
            )
            assert registered.status_code == 201, registered.text

            async def mailed() -> bool:
                return bool(deployment.mailbox.to(email))

            await eventually(mailed, MAIL_SECONDS)
            # The request queued the mail through PgBouncer; the worker, listening for the queue
            # on WORKER_DATABASE_URL, delivered it.
            [message] = deployment.mailbox.to(email)
            assert message["Subject"] == SUBJECTS["verify_email"]
            token = link_token(Mailbox.text(message), "verify-email")

            verified = await client.post("/api/v1/auth/verify", json={"token": token})
            assert verified.status_code == 200, verified.text
            account = verified.json()
            assert (account["id"], account["email"], account["is_verified"], account["role"]) == (
                registered.json()["id"],
                email,
                True,
                UserRole.AUTHENTICATED,
            )
            login = await client.post(
                "/api/v1/auth/login", data={"username": email, "password": DEFAULT_PASSWORD}
            )
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            me = await client.get("/api/v1/users/me", headers=headers)
        assert me.status_code == 200, me.text
        shown = me.json()
        assert shown["last_login_at"] is not None
        login_fields = {"last_login_at", "updated_at"}
        assert {k: v for k, v in shown.items() if k not in login_fields} == {
            k: v for k, v in account.items() if k not in login_fields
        }

    async def test_listeners_connect_directly_and_requests_through_the_pooler(
        self, deployment: Deployment, pgbouncer: PgBouncer, direct_engine: AsyncEngine
    ) -> None:
        async with http(deployment) as client:
            for _ in range(8):
                assert (await client.get("/ready")).status_code == 200

        async def listeners() -> dict[str, int]:
            async with direct_engine.connect() as connection:
                rows = await connection.execute(
                    text(
                        "SELECT application_name, count(*) FROM pg_stat_activity"
                        " WHERE datname = :database AND application_name IN (:worker, :clock)"
                        " GROUP BY application_name"
                    ),
                    {
                        "database": deployment.database,
                        "worker": WORKER_APPLICATION_NAME,
                        "clock": LISTENER_APPLICATION_NAME,
                    },
                )
                return dict(rows.tuples().all())

        expected = {WORKER_APPLICATION_NAME: 2, LISTENER_APPLICATION_NAME: 2}

        async def both_processes_listen() -> bool:
            return await listeners() == expected

        # One job worker and one test clock per web process, each on its own connection.
        await eventually(both_processes_listen, WAIT_SECONDS)
        # None of them through PgBouncer: its only clients of this database are request pools.
        clients = await asyncio.to_thread(pgbouncer.show, "CLIENTS")
        names = [c["application_name"] for c in clients if c["database"] == deployment.database]
        assert names
        assert set(names) == {"event-manager"}

    async def test_k_registrations_for_n_seats(
        self, deployment: Deployment, direct_engine: AsyncEngine
    ) -> None:
        async with AsyncSession(direct_engine, expire_on_commit=False) as session:
            owner = await create_user(session, role=UserRole.MANAGER)
            event = await create_event(session, owner=owner, capacity=SEATS)
            racers = [await create_user(session) for _ in range(RACERS)]
            headers = [await token_headers(session, racer) for racer in racers]
            await session.commit()
        waiting = RACERS - SEATS
        url = f"/api/v1/events/{event.id}/registrations"
        async with http(deployment, RACERS) as client:
            responses = await all_at_once([client.post(url, headers=h) for h in headers])
            assert [r.status_code for r in responses] == [201] * RACERS, [
                r.text for r in responses if r.status_code != 201
            ]
            shown = await client.get(f"/api/v1/events/{event.id}")

        answers = [response.json() for response in responses]
        assert {a["user_id"] for a in answers} == {str(racer.id) for racer in racers}
        assert Counter(a["status"] for a in answers) == {CONFIRMED: SEATS, WAITLISTED: waiting}
        assert {a["waitlist_position"] for a in answers if a["status"] == CONFIRMED} == {None}
        positions = {a["id"]: a["waitlist_position"] for a in answers if a["status"] == WAITLISTED}
        assert sorted(positions.values()) == list(range(1, waiting + 1))

        # In the database, read straight from PostgreSQL.
        rows = await stored_registrations(direct_engine, event.id)
        assert {str(row.id) for row in rows} == {a["id"] for a in answers}
        assert [row.status for row in rows] == [CONFIRMED] * SEATS + [WAITLISTED] * waiting
        assert [positions[str(row.id)] for row in rows[SEATS:]] == list(range(1, waiting + 1))
        stored = await assert_counters_match_rows(direct_engine, event.id)
        assert (stored.registered_count, stored.waitlist_count) == (SEATS, waiting)
        assert shown.status_code == 200
        body = shown.json()
        assert (body["registered_count"], body["waitlist_count"], body["spots_left"]) == (
            SEATS,
            waiting,
            0,
        )

    async def test_a_server_that_neither_listens_nor_migrates_needs_no_direct_url(
        self, deployment: Deployment, pgbouncer: PgBouncer
    ) -> None:
        """The refusal is for what would LISTEN or migrate: a web process without the worker,
        the migrations and the test clock serves through the pooler alone."""
        port = free_port()
        env = {
            "DATABASE_URL": pgbouncer.url_for(deployment.database),
            "DB_PGBOUNCER": "true",
            "WORKER_DATABASE_URL": "",
            "ENVIRONMENT": "production",
        }
        options = ["--port", str(port), "--workers", "1", "--no-worker", "--no-migrate"]
        process = start(["serve", *options], env)
        try:
            # /ready: the database answers through PgBouncer.
            await wait_for_health(f"http://127.0.0.1:{port}", process, START_SECONDS)
        finally:
            process.terminate()
            await asyncio.to_thread(process.wait, 30)
