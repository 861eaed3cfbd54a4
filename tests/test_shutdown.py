"""SIGTERM ends the processes politely: `event-manager serve` drains (/ready 503 while it still
serves), then answers the requests it holds before it exits; SIGINT skips the drain; and
`event-manager worker` finishes the job it is running."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.mail.service import SEND_EMAIL, enqueue_email
from tests.conftest import TEST_DATABASE_URL
from tests.support import ROOT, Mailbox, free_port
from tests.test_reliability import FaultProxy

EXIT_SECONDS = 20


def start(args: list[str], env: dict[str, str], **popen: Any) -> subprocess.Popen[bytes]:
    """`event-manager <args>` with `env` over this process's environment; its output piped for
    output() unless `popen` says otherwise (stdout=<a file>, start_new_session=True ...)."""
    # Its own process group by default: a test can signal it as a whole, and cleanup reaches
    # every worker process it spawned.
    options: dict[str, Any] = {
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT,
        "start_new_session": True,
        **popen,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", *args], cwd=ROOT, env={**os.environ, **env}, **options
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kill what is left of a process started by start() (the server and its workers)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def output(process: subprocess.Popen[bytes]) -> str:
    assert process.stdout is not None
    return process.stdout.read().decode(errors="replace")


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(TEST_DATABASE_URL)
    fault_proxy.start()
    yield fault_proxy
    fault_proxy.stop()


async def wait_for_health(
    base_url: str, process: subprocess.Popen[bytes], seconds: float = 60
) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=1) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get("/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert process.poll() is None, output(process)
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not start")


async def test_serve_answers_in_flight_requests_after_sigterm(proxy: FaultProxy) -> None:
    # No drain: this test is about the requests in flight when the server stops accepting.
    env = {"DATABASE_URL": proxy.url, "WEB_CONCURRENCY": "2", "SHUTDOWN_DRAIN_SECONDS": "0"}
    process, base_url = start_web(env)
    try:
        await wait_for_health(base_url, process)
        accepted = proxy.accepted
        proxy.black_hole()
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            # The workers hold requests that wait on the (stalled) database: on a pooled
            # connection (its bytes held), or on a new one (accepted, then held at the door). A
            # worker has a pooled connection only if it answered a /ready before, and the kernel
            # may hand all four requests to the other one.
            pending = [asyncio.create_task(client.get("/ready")) for _ in range(4)]
            for _ in range(3000):
                if proxy.held or proxy.accepted > accepted:
                    break
                await asyncio.sleep(0.01)
            assert proxy.held or proxy.accepted > accepted, "no request reached the database"
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            proxy.forward()  # the database answers again: the held requests complete
            responses = await asyncio.gather(*pending)
        assert [r.status_code for r in responses] == [200] * 4
        assert [r.json() for r in responses] == [{"status": "ok"}] * 4
        assert process.wait(timeout=EXIT_SECONDS) == 0
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("/health")
    finally:
        proxy.forward()
        stop(process)


# The drain tests: long enough to watch, short enough to wait for.
DRAIN_SECONDS = 5
SHUTDOWN_TIMEOUT_SECONDS = 5
# uvicorn's supervisor looks at the signals it got every 0.5 s before it passes them on; the
# rest is room for a busy machine.
DRAINING_WITHIN = 2.5


@dataclass(frozen=True)
class Answer:
    at: float  # when the request was sent, in seconds after the signal
    path: str
    status: int | str  # the status code, or the name of the error


async def exit_after(process: subprocess.Popen[bytes], since: float) -> tuple[int, float]:
    """The exit code of `process`, and when it exited, in seconds after `since`."""
    code = await asyncio.to_thread(process.wait, EXIT_SECONDS)
    return code, time.monotonic() - since


async def watch(
    base_url: str, exited: asyncio.Task[tuple[int, float]], since: float
) -> list[Answer]:
    """/ready, /health and a read, each on a new connection, again and again until `exited`."""
    answers: list[Answer] = []
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=5, limits=no_reuse) as client:
        while not exited.done():
            for path in ("/ready", "/health", "/api/v1/events"):
                at = time.monotonic() - since
                try:
                    response = await client.get(path)
                except httpx.HTTPError as e:
                    answers.append(Answer(at, path, type(e).__name__))
                    continue
                if path == "/ready" and response.status_code == 503:
                    assert response.json() == {"status": "draining"}
                answers.append(Answer(at, path, response.status_code))
            await asyncio.sleep(0.05)
    return answers


def start_web(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """A web-only `serve` (no migration, no worker) on a free port, and its base URL."""
    port = free_port()
    process = start(["serve", "--port", str(port), "--no-migrate", "--no-worker"], env)
    return process, f"http://127.0.0.1:{port}"


def drain_env(workers: int, drain_seconds: int) -> dict[str, str]:
    return {
        "WEB_CONCURRENCY": str(workers),
        "SHUTDOWN_DRAIN_SECONDS": str(drain_seconds),
        "SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT_SECONDS),
    }


@pytest.mark.parametrize(
    ("workers", "to_group", "exit_code"),
    [
        # One process: uvicorn raises the SIGTERM again once done, as it always has.
        pytest.param(1, False, -signal.SIGTERM, id="one-process"),
        # The supervisor passes SIGTERM on to its workers (docker stop, Kubernetes).
        pytest.param(2, False, 0, id="two-workers"),
        # systemd's default: every process of the group gets SIGTERM, the workers twice.
        pytest.param(2, True, 0, id="two-workers-group-signalled"),
    ],
)
async def test_serve_drains_after_sigterm_then_stops(
    workers: int, to_group: bool, exit_code: int
) -> None:
    process, base_url = start_web(drain_env(workers, DRAIN_SECONDS))
    try:
        await wait_for_health(base_url, process)
        since = time.monotonic()
        if to_group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        exited = asyncio.create_task(exit_after(process, since))
        answers = await watch(base_url, exited, since)
        code, exited_after = await exited
    finally:
        stop(process)
    ready = [answer for answer in answers if answer.path == "/ready"]
    draining_at = next(answer.at for answer in ready if answer.status == 503)
    assert draining_at < DRAINING_WITHIN
    assert {answer.status for answer in ready if answer.at < draining_at} <= {200}
    # Until shortly before the drain ends, every new connection is accepted and answered.
    during = [answer for answer in answers if draining_at <= answer.at < DRAIN_SECONDS - 0.5]
    assert {(answer.path, answer.status) for answer in during} == {
        ("/ready", 503),
        ("/health", 200),
        ("/api/v1/events", 200),
    }
    assert max(answer.at for answer in during) > DRAIN_SECONDS - 1
    assert code == exit_code, output(process)
    assert DRAIN_SECONDS <= exited_after < DRAIN_SECONDS + SHUTDOWN_TIMEOUT_SECONDS


@pytest.mark.parametrize(
    ("workers", "to_group"),
    [
        pytest.param(1, False, id="one-process"),
        # The supervisor turns it into a SIGTERM for its workers, which do not drain then.
        pytest.param(2, False, id="two-workers"),
        # Ctrl-C in a terminal: every process of the foreground group gets it.
        pytest.param(2, True, id="two-workers-group-signalled"),
    ],
)
async def test_serve_stops_at_once_on_sigint(workers: int, to_group: bool) -> None:
    """No drain (it would last a minute here): the graceful shutdown at once."""
    process, base_url = start_web(drain_env(workers, 60))
    try:
        await wait_for_health(base_url, process)
        since = time.monotonic()
        if to_group:
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        code, exited_after = await exit_after(process, since)
    finally:
        stop(process)
    assert code == 0, output(process)
    assert exited_after < SHUTDOWN_TIMEOUT_SECONDS


@pytest.mark.parametrize(
    ("workers", "exit_code"),
    [pytest.param(1, -signal.SIGTERM, id="one-process"), pytest.param(2, 0, id="two-workers")],
)
async def test_sigint_during_the_drain_ends_it(workers: int, exit_code: int) -> None:
    process, base_url = start_web(drain_env(workers, 60))
    try:
        await wait_for_health(base_url, process)
        process.send_signal(signal.SIGTERM)
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
            deadline = time.monotonic() + DRAINING_WITHIN
            while (await client.get("/ready")).status_code != 503:
                assert time.monotonic() < deadline, "/ready did not turn 503"
                await asyncio.sleep(0.05)
        since = time.monotonic()
        process.send_signal(signal.SIGINT)
        code, exited_after = await exit_after(process, since)
    finally:
        stop(process)
    assert code == exit_code, output(process)
    assert exited_after < SHUTDOWN_TIMEOUT_SECONDS


class SlowMailbox(Mailbox):
    """Accepts each mail only after `delay` seconds, and says when one is being received."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.receiving = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.receiving.set()
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def committed_mail(engine: AsyncEngine) -> AsyncIterator[str]:
    """One committed mail job to a fresh address; its queue rows are removed afterwards."""
    address = f"shutdown-{uuid.uuid4().hex[:10]}@example.com"
    async with AsyncSession(engine) as session:
        await enqueue_email(
            session, "verify_email", to=address, name="Ada", token="t0k", expires_minutes=5
        )
        await session.commit()
    yield address
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "DELETE FROM pgqueuer WHERE entrypoint = :e"
                " AND convert_from(payload, 'UTF8') LIKE :a"
            ),
            {"e": SEND_EMAIL, "a": f"%{address}%"},
        )


async def test_worker_finishes_the_running_job_after_sigterm(
    committed_mail: str, engine: AsyncEngine
) -> None:
    mailbox = SlowMailbox(delay=2.0)
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    process = start(["worker"], {"SMTP_PORT": str(port)})
    try:
        deadline = time.monotonic() + 60
        while not mailbox.receiving.is_set():
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the worker did not start sending:\n{output(process)}")
            assert process.poll() is None, output(process)
            await asyncio.sleep(0.05)
        sent_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, EXIT_SECONDS)
        assert code == 0, output(process)
        # The mail went out during the shutdown, not before it.
        assert time.monotonic() - sent_at >= 1.5
        assert [m["To"] for m in mailbox.to(committed_mail)] == [committed_mail]
        async with engine.connect() as connection:
            left = await connection.scalar(
                text(
                    "SELECT count(*) FROM pgqueuer WHERE entrypoint = :e"
                    " AND convert_from(payload, 'UTF8') LIKE :a"
                ),
                {"e": SEND_EMAIL, "a": f"%{committed_mail}%"},
            )
        assert left == 0  # done, not put back for a second delivery
    finally:
        stop(process)
        controller.stop()
