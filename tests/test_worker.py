"""The durable mail queue end to end: committed jobs, a real pgqueuer worker, real SMTP.

REL-3: with the mail server refusing, requests still succeed and mail waits; once it accepts,
every mail arrives exactly once.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api import worker as worker_module
from api.config import settings
from api.mail.service import SEND_EMAIL, enqueue_email
from api.main import create_app
from api.users.models import User
from tests.support import Mailbox


async def _wait_for(predicate, seconds: float = 20.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def committed(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose writes are committed; the test's mail jobs are removed afterwards."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        yield session
    async with engine.begin() as connection:
        await connection.execute(
            text("DELETE FROM pgqueuer WHERE entrypoint = :e"), {"e": SEND_EMAIL}
        )


@pytest.fixture
async def running_worker() -> AsyncIterator[None]:
    connection = await asyncpg.connect(worker_module.asyncpg_dsn())
    queue = worker_module.build_queue(connection)
    task = asyncio.create_task(queue.run(dequeue_timeout=timedelta(milliseconds=200)))
    yield
    queue.shutdown.set()
    await asyncio.wait_for(task, timeout=20)
    await connection.close()


async def _enqueue(session: AsyncSession, recipients: list[str]) -> None:
    for to in recipients:
        await enqueue_email(
            session, "verify_email", to=to, name="Ada", token="t0k", expires_minutes=1440
        )
    await session.commit()


async def _queued_count(session: AsyncSession, recipients: list[str]) -> int:
    payload_match = " OR ".join(
        f"convert_from(payload, 'UTF8') LIKE :r{i}" for i in range(len(recipients))
    )
    params = {f"r{i}": f"%{r}%" for i, r in enumerate(recipients)}
    return int(
        await session.scalar(text(f"SELECT count(*) FROM pgqueuer WHERE {payload_match}"), params)
        or 0
    )


@pytest.mark.usefixtures("running_worker")
async def test_worker_delivers_committed_mail(committed: AsyncSession, mailbox: Mailbox) -> None:
    recipients = [f"worker-{uuid.uuid4().hex[:8]}@example.com" for _ in range(3)]
    await _enqueue(committed, recipients)

    await _wait_for(lambda: all(mailbox.to(r) for r in recipients))

    assert sorted(m["To"] for m in mailbox.messages if m["To"] in recipients) == sorted(recipients)
    message = mailbox.to(recipients[0])[0]
    assert message["Subject"] == "Verify your email for event-manager"
    assert message["From"] == settings.MAIL_FROM
    assert "http://testserver/verify-email?token=t0k" in Mailbox.text(message)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert 'href="http://testserver/verify-email?token=t0k"' in html.get_content()
    # Finished jobs leave the queue (pgqueuer buffers completions briefly).
    for _ in range(100):
        if await _queued_count(committed, recipients) == 0:
            break
        await committed.commit()
        await asyncio.sleep(0.1)
    assert await _queued_count(committed, recipients) == 0


async def test_rolled_back_request_queues_no_mail(engine: AsyncEngine) -> None:
    to = f"rollback-{uuid.uuid4().hex[:8]}@example.com"
    async with AsyncSession(engine) as session:
        await enqueue_email(
            session, "verify_email", to=to, name="Ada", token="x", expires_minutes=60
        )
        await session.rollback()
        assert await _queued_count(session, [to]) == 0


@pytest.mark.security("REL-3")
@pytest.mark.usefixtures("running_worker")
async def test_mail_outage_delays_and_loses_nothing(
    committed: AsyncSession, mailbox: Mailbox
) -> None:
    mailbox.refuse = True
    recipients = [f"outage-{uuid.uuid4().hex[:8]}@example.com" for _ in range(3)]
    await _enqueue(committed, recipients)

    # The first attempts fail and are rescheduled with backoff, not dropped.
    await asyncio.sleep(2.5)
    assert [m for m in mailbox.messages if m["To"] in recipients] == []
    attempts = await committed.scalars(
        text("SELECT attempts FROM pgqueuer WHERE entrypoint = :e"), {"e": SEND_EMAIL}
    )
    assert await _queued_count(committed, recipients) == 3
    assert min(attempts.all()) >= 1
    await committed.commit()

    mailbox.refuse = False
    await _wait_for(lambda: all(mailbox.to(r) for r in recipients), seconds=30)
    delivered = [m for m in mailbox.messages if m["To"] in recipients]
    assert sorted(m["To"] for m in delivered) == sorted(recipients)
    assert len({m["Message-ID"] for m in delivered}) == 3


async def test_token_cleanup_job_deletes_expired_tokens(committed: AsyncSession) -> None:
    from api import clock
    from api.users.models import AccessToken
    from tests.factories import create_user

    user = await create_user(committed)
    fresh, stale = f"fresh-{uuid.uuid4().hex}", f"stale-{uuid.uuid4().hex}"
    committed.add(AccessToken(token=fresh, user_id=user.id))
    committed.add(
        AccessToken(
            token=stale,
            user_id=user.id,
            created_at=clock.now() - timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES + 1),
        )
    )
    await committed.commit()
    try:
        await worker_module.cleanup_access_tokens(None)  # type: ignore[arg-type]
        remaining = await committed.scalars(
            text("SELECT token FROM accesstoken WHERE user_id = :u"), {"u": user.id}
        )
        assert remaining.all() == [fresh]
    finally:
        await committed.delete(await committed.get(User, user.id))
        await committed.commit()


async def test_lifespan_runs_worker_and_creates_first_admin(
    engine: AsyncEngine, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = f"first-admin-{uuid.uuid4().hex[:8]}@example.com"
    monkeypatch.setattr(settings, "FIRST_ADMIN_EMAIL", email)
    monkeypatch.setattr(settings, "FIRST_ADMIN_PASSWORD", "a perfectly fine passphrase")
    app = create_app(run_worker=True)
    try:
        async with app.router.lifespan_context(app):
            async with AsyncSession(engine) as session:
                admin = (
                    await session.execute(
                        text('SELECT role, is_verified, is_superuser FROM "user" WHERE email = :e'),
                        {"e": email},
                    )
                ).one()
                assert tuple(admin) == ("ADMIN", True, True)
                to = f"lifespan-{uuid.uuid4().hex[:8]}@example.com"
                await enqueue_email(
                    session, "verify_email", to=to, name="Ada", token="x", expires_minutes=60
                )
                await session.commit()
            await _wait_for(lambda: bool(mailbox.to(to)))
    finally:
        async with engine.begin() as connection:
            await connection.execute(text('DELETE FROM "user" WHERE email = :e'), {"e": email})


@pytest.mark.security("REL-3")
async def test_mail_failing_every_attempt_is_held_not_dropped(
    committed: AsyncSession, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "MAIL_MAX_ATTEMPTS", 2)
    mailbox.refuse = True
    to = f"held-{uuid.uuid4().hex[:8]}@example.com"
    await _enqueue(committed, [to])
    connection = await asyncpg.connect(worker_module.asyncpg_dsn())
    queue = worker_module.build_queue(connection)
    task = asyncio.create_task(queue.run(dequeue_timeout=timedelta(milliseconds=200)))
    try:
        status = None
        for _ in range(100):
            status = await committed.scalar(
                text(
                    "SELECT status::text FROM pgqueuer WHERE convert_from(payload, 'UTF8') LIKE :r"
                ),
                {"r": f"%{to}%"},
            )
            await committed.commit()
            if status == "failed":
                break
            await asyncio.sleep(0.1)
        assert status == "failed"
        assert mailbox.to(to) == []
    finally:
        queue.shutdown.set()
        await asyncio.wait_for(task, timeout=20)
        await connection.close()
