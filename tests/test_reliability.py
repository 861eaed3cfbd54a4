"""REL-1: a database that stops answering or goes away gives 503 + Retry-After within 5 s, and the
service recovers on its own once the database is back.

A real server process reaches the test database through FaultProxy, a TCP proxy run by the test
that can forward, black-hole (accept and never answer; open connections stall, as behind a
dropped route) or refuse (listener closed and open connections cut, as when PostgreSQL stops).
The same process goes through every phase: recovery is proved without a restart. A last case
stops and restarts a real PostgreSQL cluster of its own under a running server.
"""

import asyncio
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlmodel import col

from api.users.models import AccessToken, User, UserRole
from tests.conftest import TEST_DATABASE_URL, alembic_config
from tests.factories import DEFAULT_PASSWORD, create_user, token_headers
from tests.support import ServerProcess, free_port, run_server

pytestmark = pytest.mark.security("REL-1")

OUTAGE_BOUND_SECONDS = 5.0
RECOVERY_DEADLINE_SECONDS = 30.0


class FaultProxy:
    """A TCP proxy to the test database, switchable between forward, black_hole and refuse.

    It runs on its own thread and event loop, so it keeps serving while the test blocks.
    """

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        socket_dir = url.query.get("host")
        self._unix_path = (
            f"{socket_dir}/.s.PGSQL.{url.port or 5432}" if isinstance(socket_dir, str) else None
        )
        self._upstream = (url.host or "127.0.0.1", url.port or 5432)
        self.port = free_port()
        self.url = url.set(host="127.0.0.1", port=self.port, query={}).render_as_string(
            hide_password=False
        )
        self.mode = "forward"
        self.accepted = 0
        self.held = 0  # chunks that waited in a black hole: a query was in flight
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._forwarding: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def start(self) -> None:
        self._thread.start()
        self._call(self._start())

    def stop(self) -> None:
        self._call(self._refuse())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def forward(self) -> None:
        self._call(self._forward())

    def black_hole(self) -> None:
        self._call(self._black_hole())

    def refuse(self) -> None:
        self._call(self._refuse())

    async def _start(self) -> None:
        self._forwarding = asyncio.Event()
        self._forwarding.set()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _forward(self) -> None:
        assert self._forwarding is not None
        self.mode = "forward"
        await self._listen()
        self._forwarding.set()

    async def _black_hole(self) -> None:
        # Connections are accepted and nothing goes through in either direction until forward().
        assert self._forwarding is not None
        self.mode = "black_hole"
        await self._listen()
        self._forwarding.clear()

    async def _refuse(self) -> None:
        self.mode = "refuse"
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._forwarding is not None
        self.accepted += 1
        self._writers.add(writer)
        try:
            await self._forwarding.wait()
            if self._unix_path is not None:
                up_reader, up_writer = await asyncio.open_unix_connection(self._unix_path)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for end in (writer, up_writer):
            end.transport.abort()
            self._writers.discard(end)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._forwarding is not None
        try:
            while data := await reader.read(65536):
                # Held back, in order, while black-holed: a stalled route, not lost packets.
                if not self._forwarding.is_set():
                    self.held += 1
                await self._forwarding.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


@pytest.fixture(scope="module")
def proxy() -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(TEST_DATABASE_URL)
    fault_proxy.start()
    yield fault_proxy
    fault_proxy.stop()


@pytest.fixture(scope="module")
def server(proxy: FaultProxy) -> Iterator[ServerProcess]:
    # The shipped timeouts (DB_CONNECT/POOL/COMMAND_TIMEOUT_SECONDS) are left at their defaults.
    env = {"DATABASE_URL": proxy.url, "AUTH_RATE_LIMIT": "off", "DB_POOL_SIZE": "20"}
    with run_server(env, workers=1) as process:
        yield process


@pytest.fixture
async def account(engine: AsyncEngine) -> AsyncIterator[tuple[User, dict[str, str]]]:
    """A committed verified user with a committed bearer token; deleted afterwards."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        user = await create_user(
            session, role=UserRole.AUTHENTICATED, email=f"rel1-{uuid.uuid4().hex[:10]}@example.com"
        )
        headers = await token_headers(session, user)
        await session.commit()
    yield user, headers
    async with AsyncSession(engine) as session:
        await session.execute(delete(AccessToken).where(col(AccessToken.user_id) == user.id))
        await session.execute(delete(User).where(col(User.id) == user.id))
        await session.commit()


@pytest.fixture
async def http(server: ServerProcess, proxy: FaultProxy) -> AsyncIterator[httpx.AsyncClient]:
    proxy.forward()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await wait_until_ready(client)
        yield client
    proxy.forward()


async def wait_until_ready(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
    while (await client.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover"
        await asyncio.sleep(0.2)


async def timed(request: Coroutine[Any, Any, httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


def login_form(user: User, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    return {"username": user.email, "password": password}


def assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert body == {"detail": "SERVICE_UNAVAILABLE", "request_id": body["request_id"]}
    assert re.fullmatch("[0-9a-f]{32}", body["request_id"])
    # Answered inside the middleware stack: the response carries its request id like any other.
    assert response.headers["X-Request-ID"] == body["request_id"]
    assert elapsed < OUTAGE_BOUND_SECONDS


async def assert_serving(client: httpx.AsyncClient, user: User, headers: dict[str, str]) -> None:
    me = await client.get("/api/v1/users/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(user.id)
    login = await client.post("/api/v1/auth/login", data=login_form(user))
    assert login.status_code == 200, login.text
    assert login.json()["token_type"] == "bearer"


@pytest.fixture(params=["black_hole", "refuse"])
def outage(request: pytest.FixtureRequest, proxy: FaultProxy) -> Callable[[], None]:
    """Starts one database fault: a black hole (accepts, never answers) or a stopped server."""
    start: Callable[[], None] = getattr(proxy, request.param)
    return start


class TestDatabaseOutage:
    async def test_ready_503_within_5s(
        self, http: httpx.AsyncClient, outage: Callable[[], None]
    ) -> None:
        assert (await http.get("/ready")).status_code == 200
        outage()
        response, elapsed = await timed(http.get("/ready"))
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json() == {"status": "unavailable"}
        assert elapsed < OUTAGE_BOUND_SECONDS

    async def test_health_stays_200(
        self, http: httpx.AsyncClient, outage: Callable[[], None]
    ) -> None:
        outage()
        response, elapsed = await timed(http.get("/health"))
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert elapsed < 1.0

    async def test_authenticated_route_503_within_5s(
        self, http: httpx.AsyncClient, outage: Callable[[], None], account
    ) -> None:
        user, headers = account
        await assert_serving(http, user, headers)  # the pool now holds live connections
        outage()
        assert_unavailable(*await timed(http.get("/api/v1/users/me", headers=headers)))

    async def test_any_token_503_within_5s(
        self, http: httpx.AsyncClient, outage: Callable[[], None]
    ) -> None:
        outage()
        headers = {"Authorization": "Bearer any-string-at-all"}
        assert_unavailable(*await timed(http.get("/api/v1/users/me", headers=headers)))

    async def test_login_503_within_5s(
        self, http: httpx.AsyncClient, outage: Callable[[], None], account
    ) -> None:
        user, _ = account
        outage()
        assert_unavailable(*await timed(http.post("/api/v1/auth/login", data=login_form(user))))

    async def test_parallel_requests_all_503_within_5s(
        self, http: httpx.AsyncClient, outage: Callable[[], None], account
    ) -> None:
        # As many requests as the pool has connections (DB_POOL_SIZE = 20); more wait
        # DB_POOL_TIMEOUT_SECONDS for a free slot first.
        user, headers = account
        await assert_serving(http, user, headers)
        outage()
        started = time.monotonic()
        responses = await asyncio.gather(
            *(http.get("/api/v1/users/me", headers=headers) for _ in range(10)),
            *(http.post("/api/v1/auth/login", data=login_form(user)) for _ in range(10)),
        )
        elapsed = time.monotonic() - started
        for response in responses:
            assert_unavailable(response, elapsed)

    async def test_recovers_without_restart(
        self,
        http: httpx.AsyncClient,
        outage: Callable[[], None],
        proxy: FaultProxy,
        server: ServerProcess,
        account,
    ) -> None:
        user, headers = account
        pid = server.process.pid
        await assert_serving(http, user, headers)
        outage()
        assert_unavailable(*await timed(http.get("/api/v1/users/me", headers=headers)))
        assert (await http.get("/ready")).status_code == 503
        proxy.forward()
        await wait_until_ready(http)
        await assert_serving(http, user, headers)
        assert server.process.poll() is None
        assert server.process.pid == pid


class StoppablePostgres:
    """A throwaway PostgreSQL cluster of its own (pgserver), migrated, that the test can stop
    and start again: a real stopped server, not a closed proxy."""

    def __init__(self) -> None:
        import pgserver

        self._tmp = tempfile.TemporaryDirectory(prefix="event-manager-outage-pg-")
        os.chmod(self._tmp.name, 0o755)  # postgres runs as its own user when we are root
        self.server = pgserver.get_server(self._tmp.name, cleanup_mode="stop")  # type: ignore[attr-defined]
        self.url = make_url(self.server.get_uri()).set(drivername="postgresql+asyncpg")

    def stop(self) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        server = self.server
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def cleanup(self) -> None:
        self.server.cleanup()
        self._tmp.cleanup()


@pytest.fixture(scope="module")
def stoppable() -> Iterator[tuple[StoppablePostgres, str]]:
    postgres = StoppablePostgres()
    url = postgres.url.render_as_string(hide_password=False)
    try:
        command.upgrade(alembic_config(url), "head")
        yield postgres, url
    finally:
        postgres.cleanup()


class TestStoppedPostgres:
    async def test_503_then_recovery_when_postgres_stops_and_starts(
        self, stoppable: tuple[StoppablePostgres, str]
    ) -> None:
        postgres, url = stoppable
        engine = create_async_engine(url)
        async with AsyncSession(engine, expire_on_commit=False) as session:
            user = await create_user(session, email=f"stop-{uuid.uuid4().hex[:10]}@example.com")
            headers = await token_headers(session, user)
            await session.commit()
        await engine.dispose()
        with run_server({"DATABASE_URL": url, "AUTH_RATE_LIMIT": "off"}, workers=1) as server:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                await assert_serving(client, user, headers)
                postgres.stop()
                assert_unavailable(*await timed(client.get("/api/v1/users/me", headers=headers)))
                assert_unavailable(
                    *await timed(client.post("/api/v1/auth/login", data=login_form(user)))
                )
                ready, elapsed = await timed(client.get("/ready"))
                assert (ready.status_code, ready.json()) == (503, {"status": "unavailable"})
                assert ready.headers["Retry-After"] == "5"
                assert elapsed < OUTAGE_BOUND_SECONDS
                assert (await client.get("/health")).json() == {"status": "ok"}
                postgres.start()
                await wait_until_ready(client)
                await assert_serving(client, user, headers)
                assert server.process.poll() is None
