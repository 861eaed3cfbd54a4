"""The durable job queue (pgqueuer): mail and webhook delivery, reminders, the expiry of lapsed
waitlist offers, and periodic cleanup.

`event-manager worker` runs it alone; `event-manager serve` runs it inside each web process
unless RUN_WORKER_IN_PROCESS is false.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import structlog
from pgqueuer import AsyncpgDriver, DatabaseRetryEntrypointExecutor, Job, PgQueuer
from pgqueuer.executors import EntrypointExecutorParameters
from pgqueuer.models import Schedule
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.db import asyncpg_dsn as asyncpg_dsn  # re-exported: tests connect with it
from api.db import get_sessionmaker, get_worker_database_url
from api.idempotency import service as idempotency_service
from api.mail import sender
from api.mail.service import SEND_EMAIL, OutgoingMail, queries_for
from api.registrations import waitlist
from api.reminders import service as reminder_service
from api.testing import service as testing_service
from api.users.models import AccessToken
from api.webhooks import delivery as webhook_delivery

log = structlog.get_logger(__name__)

CLEANUP_TOKENS = "cleanup_access_tokens"
CLEANUP_IDEMPOTENCY_KEYS = "cleanup_idempotency_keys"
SEND_REMINDERS = "send_event_reminders"
EXPIRE_OFFERS = "expire_waitlist_offers"


def retrying_executor(params: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
    """Failed jobs come back after 1 s, 2 s, 4 s ... (at most 5 min apart), MAIL_MAX_ATTEMPTS
    times; then they are held with status 'failed' (on_failure="hold") for `pgq requeue`."""
    return DatabaseRetryEntrypointExecutor(
        parameters=params,
        max_attempts=settings.MAIL_MAX_ATTEMPTS,
        initial_delay=timedelta(seconds=1),
        max_delay=timedelta(minutes=5),
    )


async def deliver_mail(job: Job) -> None:
    assert job.payload is not None
    await sender.send(OutgoingMail.model_validate_json(job.payload))


async def cleanup_access_tokens(_: Job) -> None:
    cutoff = clock.now() - timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
    async with get_sessionmaker()() as session, session.begin():
        await session.execute(delete(AccessToken).where(col(AccessToken.created_at) < cutoff))


async def cleanup_idempotency_keys(_: Job) -> None:
    async with get_sessionmaker()() as session, session.begin():
        await idempotency_service.delete_expired_keys(session, now=clock.now())


def in_transaction(
    work: Callable[[AsyncSession], Awaitable[object]],
) -> Callable[[Job], Awaitable[None]]:
    """A job's body: `work` in a transaction of its own (the periodic jobs take no payload)."""

    async def run(_: Job) -> None:
        async with get_sessionmaker()() as session, session.begin():
            await work(session)

    return run


send_event_reminders = in_transaction(reminder_service.send_due_reminders)
expire_waitlist_offers = in_transaction(waitlist.expire_waitlist_offers)


async def dispatch_webhooks(job: Job) -> None:
    assert job.payload is not None
    await webhook_delivery.dispatch(int(job.payload.decode()))


async def attempt_webhook(job: Job) -> None:
    assert job.payload is not None
    await webhook_delivery.attempt(uuid.UUID(job.payload.decode()))


cleanup_webhook_deliveries = in_transaction(webhook_delivery.delete_old_deliveries)


# The jobs an admin may run once with POST /api/v1/testing/jobs/{name} (ENVIRONMENT=test): each
# works in the session it is given and answers how many items it handled.
RUNNABLE_JOBS: dict[str, testing_service.Job] = {
    SEND_REMINDERS: reminder_service.send_due_reminders,
    EXPIRE_OFFERS: waitlist.expire_waitlist_offers,
}


# (schedule name, cron expression, the job it enqueues)
SCHEDULES = (
    ("enqueue_token_cleanup", "17 * * * *", CLEANUP_TOKENS),
    ("enqueue_idempotency_key_cleanup", "23 * * * *", CLEANUP_IDEMPOTENCY_KEYS),
    ("enqueue_event_reminders", "*/5 * * * *", SEND_REMINDERS),
    ("enqueue_waitlist_offer_expiry", "* * * * *", EXPIRE_OFFERS),
    ("enqueue_webhook_delivery_cleanup", "41 * * * *", webhook_delivery.CLEANUP_DELIVERIES),
)


def _enqueuer(entrypoint: str) -> Callable[[Schedule], Awaitable[None]]:
    """A schedule's body. Schedules run inline and without retry: they only enqueue a job that
    the retrying executor then runs."""

    async def enqueue(_: Schedule) -> None:
        async with get_sessionmaker()() as session, session.begin():
            queries = await queries_for(session)
            await queries.enqueue(entrypoint, None)

    return enqueue


def _on_shared_clock(job: Callable[[Job], Awaitable[None]]) -> Callable[[Job], Awaitable[None]]:
    """With the test clock (ENVIRONMENT=test), a scheduled job reads its setting first: it runs
    on the clock just set even before the change's notification reaches this process."""

    async def run(queued: Job) -> None:
        async with get_sessionmaker()() as session:
            await testing_service.refresh_clock(session)
        await job(queued)

    return run


def build_queue(connection: asyncpg.Connection) -> PgQueuer:
    pgq = PgQueuer(AsyncpgDriver(connection))
    jobs = {
        SEND_EMAIL: deliver_mail,
        CLEANUP_TOKENS: cleanup_access_tokens,
        CLEANUP_IDEMPOTENCY_KEYS: cleanup_idempotency_keys,
        SEND_REMINDERS: send_event_reminders,
        EXPIRE_OFFERS: expire_waitlist_offers,
        webhook_delivery.CLEANUP_DELIVERIES: cleanup_webhook_deliveries,
    }
    scheduled = {entrypoint for _, _, entrypoint in SCHEDULES}
    for entrypoint, job in jobs.items():
        follows_clock = entrypoint in scheduled and testing_service.is_enabled()
        runner = _on_shared_clock(job) if follows_clock else job
        pgq.entrypoint(entrypoint, on_failure="hold", executor_factory=retrying_executor)(runner)
    # Outbox rows become deliveries one at a time across all workers, in the order they were
    # queued, so each webhook's first attempts are queued in outbox order.
    pgq.entrypoint(
        webhook_delivery.WEBHOOK_DISPATCH,
        on_failure="hold",
        executor_factory=retrying_executor,
        concurrency_limit=1,
    )(dispatch_webhooks)
    # Attempts of different deliveries run side by side, bounded across all workers.
    pgq.entrypoint(
        webhook_delivery.WEBHOOK_ATTEMPT,
        on_failure="hold",
        executor_factory=retrying_executor,
        concurrency_limit=webhook_delivery.ATTEMPT_CONCURRENCY,
    )(attempt_webhook)
    for name, expression, entrypoint in SCHEDULES:
        pgq.schedule(name, expression)(_enqueuer(entrypoint))
    return pgq


# The queue's own connection, named apart from the request pool's in pg_stat_activity.
WORKER_APPLICATION_NAME = "event-manager-worker"


def worker_dsn() -> str:
    """Where the queue connects: the direct URL, since pgqueuer LISTENs on its connection (a
    transaction pooler would hand that server connection to other clients between statements)."""
    return asyncpg_dsn(get_worker_database_url())


async def connect(dsn: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(
        dsn or worker_dsn(),
        timeout=settings.DB_CONNECT_TIMEOUT_SECONDS,
        server_settings={"application_name": WORKER_APPLICATION_NAME},
    )


class InProcessWorker:
    """The queue as a task of the web process's lifespan."""

    def __init__(self) -> None:
        self._connection: asyncpg.Connection | None = None
        self._queue: PgQueuer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._connection = await connect()
        self._queue = build_queue(self._connection)
        self._task = asyncio.create_task(self._queue.run(dequeue_timeout=timedelta(seconds=5)))

    async def stop(self) -> None:
        if self._queue is not None and self._task is not None:
            self._queue.shutdown.set()
            try:
                await asyncio.wait_for(self._task, timeout=15)
            except (TimeoutError, Exception):  # noqa: BLE001 - shutting down; the job is re-picked
                log.warning("worker_stop_incomplete", exc_info=True)
        if self._connection is not None:
            await self._connection.close()


async def run_forever() -> None:
    """`event-manager worker`: process jobs until SIGINT/SIGTERM."""
    import pgqueuer

    # Resolved once, here: without a direct URL behind a pooler this fails at once, where the
    # restarting run below would retry forever.
    dsn = worker_dsn()
    follower = await testing_service.start_following()

    # pgqueuer 1.6 wants a factory returning an async context manager (a plain coroutine is
    # refused with TypeError at every restart): the connection is closed when the run ends.
    @asynccontextmanager
    async def factory() -> AsyncIterator[PgQueuer]:
        connection = await connect(dsn)
        try:
            yield build_queue(connection)
        finally:
            await connection.close()

    try:
        await pgqueuer.run(factory, dequeue_timeout=timedelta(seconds=5), restart_on_failure=True)
    finally:
        if follower is not None:
            await follower.stop()
