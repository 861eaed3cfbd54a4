"""SIGTERM ends the processes politely: `event-manager serve` answers the requests it holds
before it exits, and `event-manager worker` finishes the job it is running."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
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


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


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
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": proxy.url, "WEB_CONCURRENCY": "2"}
    process = start(["serve", "--port", str(port), "--no-migrate", "--no-worker"], env)
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
        if process.poll() is None:
            process.kill()
            process.wait()


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
        if process.poll() is None:
            process.kill()
            process.wait()
        controller.stop()
