"""REL-3 against the real service: the mail server down and back.

The server runs as its own process (two workers, each with its in-process mail worker) against
its own throwaway database, and sends to an SMTP capture on a port of its own. With the capture
stopped (connections refused), requests that send mail still answer at once and their mail
waits in the queue; once the capture is back, every mail arrives exactly once.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from api.mail.service import SEND_EMAIL, SUBJECTS
from tests.factories import DEFAULT_PASSWORD
from tests.leaks import LeakScanner
from tests.support import (
    Mailbox,
    ServerProcess,
    TestDatabaseServer,
    run_server,
    smtp_server,
)

pytestmark = pytest.mark.security("REL-3")

ACCOUNTS = 4


@pytest.fixture(scope="module")
def server(db_server: TestDatabaseServer, smtp_port: int) -> Iterator[ServerProcess]:
    env = {
        "AUTH_RATE_LIMIT": "off",
        "RUN_WORKER_IN_PROCESS": "true",
        "SMTP_PORT": str(smtp_port),
        "SMTP_TIMEOUT_SECONDS": "2",
    }
    with run_server(env, workers=2, own_database=db_server) as process:
        yield process


@pytest.fixture
async def queue(server: ServerProcess) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(server.database_url.replace("+asyncpg", ""))
    yield connection
    await connection.close()


async def queued(connection: asyncpg.Connection, prefix: str) -> list[tuple[str, int]]:
    """(status, attempts) of the mail jobs addressed under `prefix`."""
    rows = await connection.fetch(
        "SELECT status::text, attempts FROM pgqueuer WHERE entrypoint = $1"
        " AND convert_from(payload, 'UTF8')::jsonb ->> 'to' LIKE $2",
        SEND_EMAIL,
        f"{prefix}%",
    )
    return [(row["status"], row["attempts"]) for row in rows]


async def wait_until(predicate, seconds: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_mail_server_down_then_back_loses_nothing(
    server: ServerProcess, smtp_port: int, queue: asyncpg.Connection
) -> None:
    prefix = f"outage-{uuid.uuid4().hex[:8]}-"
    emails = [f"{prefix}{i}@example.com" for i in range(ACCOUNTS)]
    scanner = LeakScanner()
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=10, event_hooks=scanner.hooks
    ) as client:
        # Nothing listens on the SMTP port: every delivery attempt is refused.
        started = time.perf_counter()
        for email in emails:
            registered = await client.post(
                "/api/v1/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
            )
            assert registered.status_code == 201, registered.text
        forgot = await client.post("/api/v1/auth/forgot-password", json={"email": emails[0]})
        assert (forgot.status_code, forgot.json()) == (202, None)
        elapsed = time.perf_counter() - started
    # The answers do not wait for the mail server (5 requests, well under a second each).
    assert elapsed < 5, elapsed

    # The workers try, fail and keep every job for a later attempt.
    deadline = time.monotonic() + 15
    while True:
        jobs = await queued(queue, prefix)
        if len(jobs) == ACCOUNTS + 1 and all(attempts >= 1 for _, attempts in jobs):
            break
        assert time.monotonic() < deadline, jobs
        await asyncio.sleep(0.2)
    assert {status for status, _ in jobs} <= {"queued", "picked"}

    mailbox = Mailbox()
    with smtp_server(mailbox, smtp_port):
        await wait_until(lambda: len(mailbox.messages) >= ACCOUNTS + 1, seconds=45)
        # Retries must not deliver anything twice: give them time to misbehave.
        await asyncio.sleep(2)
        delivered = sorted((m["To"], m["Subject"]) for m in mailbox.messages)
    assert delivered == sorted(
        [(email, SUBJECTS["verify_email"]) for email in emails]
        + [(emails[0], SUBJECTS["reset_password"])]
    )
    assert len({m["Message-ID"] for m in mailbox.messages}) == ACCOUNTS + 1
    # Delivered jobs leave the queue (pgqueuer buffers completions briefly).
    deadline = time.monotonic() + 10
    while await queued(queue, prefix):
        assert time.monotonic() < deadline, await queued(queue, prefix)
        await asyncio.sleep(0.2)
    assert scanner.scanned == ACCOUNTS + 1
