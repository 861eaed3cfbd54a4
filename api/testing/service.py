"""The test clock (as Stripe's test clocks) and named jobs run on demand; ENVIRONMENT=test only.

The clock's offset lives in one row (test_clock) shared by every process on the database: web
workers and `event-manager worker` processes alike. Setting it writes the row and NOTIFYs
CHANNEL in one transaction; the process that did it applies the offset as soon as that commits,
and every other one when the notification reaches the connection it LISTENs on (ClockFollower).
Jobs re-read the row before they run, so they are exact even before a notification arrives.
Outside ENVIRONMENT=test none of this runs: no listener, no statement, now() is the real time.
"""

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from sqlalchemy import event, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.config import Environment, settings
from api.db import asyncpg_dsn, get_worker_database_url
from api.errors import NotFound
from api.testing.models import ClockSetting, ClockState, JobRun

log = structlog.get_logger(__name__)

CHANNEL = "event_manager_test_clock"
LISTENER_APPLICATION_NAME = "event-manager-test-clock"
# A lost listener connection is retried after 1 s, then 2, 4 ... at most 30 s apart.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0

Job = Callable[[AsyncSession], Awaitable[int]]


class JobNotFound(NotFound):
    """No job has this name: expire_waitlist_offers or send_event_reminders."""

    code = "JOB_NOT_FOUND"


@dataclass(frozen=True)
class NamedJob:
    name: str
    run: Job


def is_enabled() -> bool:
    """Whether the test clock and the job routes exist (ENVIRONMENT=test)."""
    return settings.ENVIRONMENT is Environment.TEST


# The newest version of the setting this process applied (0: none, real time).
_applied_version = 0


def apply_setting(version: int, offset: timedelta) -> None:
    """Make this process's clock read real time + `offset`, unless it holds a newer setting."""
    global _applied_version
    if version < _applied_version:
        return
    _applied_version = version
    clock.set_offset(offset)


def forget_setting() -> None:
    """Back to real time with no setting applied (between tests that moved the clock)."""
    global _applied_version
    _applied_version = 0
    clock.set_offset(timedelta(0))


def _payload(version: int, offset: timedelta) -> str:
    return f"{version} {offset // timedelta(microseconds=1)}"


def _parse(payload: str) -> tuple[int, timedelta]:
    version, microseconds = payload.split()
    return int(version), timedelta(microseconds=int(microseconds))


async def store_setting(session: AsyncSession, offset: timedelta) -> int:
    """Write the setting and NOTIFY it, both part of the session's transaction; its version."""
    statement = (
        insert(ClockSetting)
        .values(id=1, time_offset=offset, version=1)
        .on_conflict_do_update(
            index_elements=[col(ClockSetting.id)],
            set_={"time_offset": offset, "version": col(ClockSetting.version) + 1},
        )
        .returning(col(ClockSetting.version))
    )
    version: int = (await session.execute(statement)).scalar_one()
    await session.execute(select(func.pg_notify(CHANNEL, _payload(version, offset))))
    return version


async def _save(session: AsyncSession, offset: timedelta) -> None:
    """Store the setting; apply it in this process as soon as the session commits (a failed
    commit leaves this process as it was, like every other)."""
    version = await store_setting(session, offset)

    def apply_on_commit(_: Any) -> None:
        apply_setting(version, offset)

    event.listen(session.sync_session, "after_commit", apply_on_commit, once=True)


async def set_clock(session: AsyncSession, *, now: datetime) -> ClockState:
    """Move every process's clock to `now`; it runs on from there."""
    offset = clock.offset_to(now)
    await _save(session, offset)
    return ClockState(now=now.astimezone(UTC), offset_seconds=offset.total_seconds())


async def reset_clock(session: AsyncSession) -> None:
    """Every process back to real time."""
    await _save(session, timedelta(0))


async def refresh_clock(session: AsyncSession) -> None:
    """Apply the stored setting now, without waiting for its notification."""
    row = (
        await session.execute(select(col(ClockSetting.version), col(ClockSetting.time_offset)))
    ).first()
    if row is not None:
        apply_setting(row.version, row.time_offset)


async def run_job(session: AsyncSession, job: NamedJob) -> JobRun:
    """Run `job` once, in this session, on the stored clock."""
    await refresh_clock(session)
    ran_at = clock.now()
    count = await job.run(session)
    return JobRun(job=job.name, ran_at=ran_at, count=count)


class ClockFollower:
    """Keeps this process on the shared setting: LISTEN on a connection of its own, with the row
    read right after (at start, and again after a lost connection, which is retried)."""

    def __init__(self, dsn: str | None = None) -> None:
        self._dsn = dsn  # default: the service's database, on its direct URL
        self._task: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()

    async def start(self) -> None:
        """Start following; return once the first attempt to read the setting is over (at most
        DB_CONNECT_TIMEOUT_SECONDS and a statement later), whether it succeeded or not.

        LISTEN needs a server connection of its own: the direct URL, resolved here so that its
        absence behind a transaction pooler stops the process instead of being retried."""
        self._dsn = self._dsn or asyncpg_dsn(get_worker_database_url())
        self._task = asyncio.create_task(self._follow())
        await self._first_attempt.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                await self._listen_once()
                delay = RETRY_FIRST_SECONDS  # it worked for a while: retry soon
                log.warning("test_clock_listener_lost")
            except Exception as e:  # noqa: BLE001 - any failure: retried, the process serves on
                log.warning("test_clock_listener_failed", error=repr(e), retry_in=delay)
            finally:
                self._first_attempt.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _listen_once(self) -> None:
        """Follow the setting until the connection is lost."""
        assert self._dsn is not None  # set by start()
        connection = await asyncpg.connect(
            self._dsn,
            timeout=settings.DB_CONNECT_TIMEOUT_SECONDS,
            command_timeout=settings.DB_COMMAND_TIMEOUT_SECONDS,
            server_settings={"application_name": LISTENER_APPLICATION_NAME},
        )
        try:
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _: lost.set())
            # LISTEN first, then read: a change committed in between is not missed.
            await connection.add_listener(CHANNEL, _on_notification)
            row = await connection.fetchrow(
                "SELECT version, time_offset FROM test_clock WHERE id = 1"
            )
            if row is not None:
                apply_setting(row["version"], row["time_offset"])
            self._first_attempt.set()
            await lost.wait()
        finally:
            # Politely when the database answers, at once when it does not.
            with suppress(Exception):
                await connection.close(timeout=1)
            if not connection.is_closed():
                connection.terminate()


def _on_notification(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
    try:
        version, offset = _parse(payload)
    except ValueError:
        log.warning("test_clock_bad_notification", payload=payload[:100])
        return
    apply_setting(version, offset)


async def start_following() -> ClockFollower | None:
    """A started ClockFollower with ENVIRONMENT=test; None (and nothing started) otherwise."""
    if not is_enabled():
        return None
    follower = ClockFollower()
    await follower.start()
    return follower
