"""SCALE-1, the rolling restart behind a real HAProxy: no request is lost.

Two replicas of `event-manager serve` (two workers each, one freshly migrated database) sit
behind HAProxy, which sends requests only to those whose /ready answers 200. While clients keep
sending reads and writes through it, each replica in turn gets SIGTERM, exits, starts again on
its port and waits until HAProxy has it UP again. The drain does the work: a replica's /ready
answers 503 at once while it keeps serving, so HAProxy takes it out of rotation before it stops
accepting. Every request gets an answer, none a 5xx.
"""

import asyncio
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import create_engine
from tests.factories import create_user, token_headers
from tests.support import TestDatabaseServer, debian_program, free_port, report_figure
from tests.test_shutdown import output, start, stop, wait_for_health

pytestmark = pytest.mark.security("SCALE-1")

LOOPS = 8
# Between two requests of a client: a steady load that leaves room for a replica's start.
PAUSE_SECONDS = 0.05
# HAProxy checks every 200 ms and takes a replica out after 2 failed checks: well within it,
# even on a busy machine.
DRAIN_SECONDS = 3
SHUTDOWN_TIMEOUT_SECONDS = 10
# A replica's start (imports, two workers) on a busy machine.
START_WITHIN = 180
# HAProxy's 2 checks after it answers.
UP_WITHIN = 10

HAPROXY_CFG = """\
global
    stats socket {stats} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    # As in deploy/haproxy.cfg: a request that could not reach a replica goes to the other.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend api
    bind 127.0.0.1:{port}
    option forwardfor
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    http-request disable-l7-retry unless METH_GET
    default-server inter 200ms fall 2 rise 2
{servers}
"""


@dataclass
class Replica:
    name: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> subprocess.Popen[bytes]:
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2"]
        self.process = start([*args, "--no-worker", "--no-migrate"], self.env)
        return self.process


@dataclass
class Tally:
    sent: int = 0
    answered: Counter[int] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)


class HAProxy:
    """A real haproxy in the foreground, with its stats socket."""

    def __init__(self, directory: Path, servers: list[Replica]) -> None:
        self.port = free_port()
        self.stats = directory / "haproxy.sock"
        config = directory / "haproxy.cfg"
        config.write_text(
            HAPROXY_CFG.format(
                stats=self.stats,
                port=self.port,
                servers="\n".join(f"    server {r.name} 127.0.0.1:{r.port} check" for r in servers),
            )
        )
        self.log = directory / "haproxy.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [debian_program("haproxy"), "-db", "-f", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stat(self) -> dict[str, dict[str, str]]:
        """`show stat` of the backend: svname (a server, or BACKEND) -> its columns."""
        reader, writer = await asyncio.open_unix_connection(self.stats)
        writer.write(b"show stat\n")
        await writer.drain()
        text = (await reader.read()).decode()
        writer.close()
        await writer.wait_closed()
        header, *lines = [line for line in text.splitlines() if line]
        names = header.removeprefix("# ").split(",")
        rows = [dict(zip(names, line.split(","), strict=False)) for line in lines]
        return {row["svname"]: row for row in rows if row["pxname"] == "replicas"}

    async def wait_for(self, server: str, status: str, seconds: float) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            try:
                if (await self.stat())[server]["status"] == status:
                    return
            except OSError:
                pass  # the socket is not there yet
            assert self.process.poll() is None, self.log.read_text()
            if asyncio.get_running_loop().time() > deadline:
                states = {name: row["status"] for name, row in (await self.stat()).items()}
                raise AssertionError(f"{server} not {status} within {seconds} s: {states}")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def database_url(db_server: TestDatabaseServer) -> Iterator[str]:
    name = db_server.create_migrated_database(prefix="event_manager_rolling")
    yield db_server.url_for(name)
    db_server.drop_database(name)


async def caller_headers(database_url: str) -> dict[str, str]:
    engine = create_engine(database_url, pool_size=2)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            headers = await token_headers(session, await create_user(session))
            await session.commit()
    finally:
        await engine.dispose()
    return headers


async def keep_sending(
    client: httpx.AsyncClient, headers: dict[str, str], tally: Tally, done: asyncio.Event
) -> None:
    """A read, then a write that is safe to repeat, and again, until `done`."""
    requests = (("GET", "/api/v1/events"), ("POST", "/api/v1/notifications/read-all"))
    while not done.is_set():
        for method, path in requests:
            tally.sent += 1
            try:
                response = await client.request(method, path, headers=headers)
            except httpx.HTTPError as e:
                tally.failed.append(f"{method} {path}: {e!r}")
                continue
            tally.answered[response.status_code] += 1
            if response.status_code >= 500:
                tally.server_errors.append(
                    f"{method} {path}: {response.status_code} {response.text}"
                )
            await asyncio.sleep(PAUSE_SECONDS)


async def restart_one_by_one(
    replicas: list[Replica], haproxy: HAProxy, tally: Tally
) -> list[float]:
    """SIGTERM, exit, start again on the same port, UP in HAProxy again: one replica after the
    other, under load. Returns how long after its SIGTERM HAProxy took each out of rotation."""
    out_after: list[float] = []
    for replica in replicas:
        process = replica.process
        assert process is not None
        before = tally.sent
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        # Out of rotation while it still serves: the drain did it, not its absence.
        await haproxy.wait_for(replica.name, "DOWN", DRAIN_SECONDS)
        assert process.poll() is None
        out_after.append(time.monotonic() - signalled)
        code = await asyncio.to_thread(process.wait, DRAIN_SECONDS + SHUTDOWN_TIMEOUT_SECONDS + 10)
        assert code == 0, output(process)
        await wait_for_health(replica.base_url, replica.start(), START_WITHIN)
        await haproxy.wait_for(replica.name, "UP", UP_WITHIN)
        assert tally.sent > before  # the load went on meanwhile
    return out_after


async def test_rolling_restart_behind_haproxy_loses_no_request(database_url: str) -> None:
    env = {
        "DATABASE_URL": database_url,
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT_SECONDS),
        "RUN_WORKER_IN_PROCESS": "false",
        "DB_POOL_SIZE": "5",
    }
    replicas = [Replica(f"replica{i}", free_port(), env) for i in (1, 2)]
    headers = await caller_headers(database_url)
    with tempfile.TemporaryDirectory(prefix="event-manager-haproxy-") as directory:
        haproxy: HAProxy | None = None
        try:
            for replica in replicas:
                replica.start()
            for replica in replicas:
                assert replica.process is not None
                await wait_for_health(replica.base_url, replica.process, START_WITHIN)
            haproxy = HAProxy(Path(directory), replicas)
            for replica in replicas:
                await haproxy.wait_for(replica.name, "UP", UP_WITHIN)

            tally = Tally()
            done = asyncio.Event()
            limits = httpx.Limits(max_connections=LOOPS, max_keepalive_connections=LOOPS)
            async with httpx.AsyncClient(
                base_url=haproxy.base_url, timeout=30, limits=limits
            ) as client:
                loops = [
                    asyncio.create_task(keep_sending(client, headers, tally, done))
                    for _ in range(LOOPS)
                ]
                try:
                    out_after = await restart_one_by_one(replicas, haproxy, tally)
                finally:
                    done.set()
                    await asyncio.gather(*loops)
            backend = (await haproxy.stat())["BACKEND"]
        finally:
            if haproxy is not None:
                haproxy.stop()
            for replica in replicas:
                if replica.process is not None:
                    stop(replica.process)
    answered = sum(tally.answered.values())
    report_figure(
        f"SCALE-1 rolling restart of 2 replicas behind HAProxy, {LOOPS} clients: "
        f"{tally.sent} requests sent, {answered} answered, {len(tally.failed)} failed "
        f"(statuses {dict(sorted(tally.answered.items()))}; HAProxy retries "
        f"{backend['wretr']}, redispatches {backend['wredis']}; out of rotation "
        f"{', '.join(f'{seconds:.1f}' for seconds in out_after)} s after SIGTERM, "
        f"drain {DRAIN_SECONDS} s)"
    )
    assert tally.failed == []
    assert tally.server_errors == []
    assert answered == tally.sent
    assert set(tally.answered) == {200, 204}
