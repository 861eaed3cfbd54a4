"""How a process keeps to the shared test clock: the follower (LISTEN, the read at start, the
catch-up after a lost connection), the order of changes, and the scheduled jobs' re-read.

The follower runs here on a migrated database of its own, so that the settings it commits reach
no other test.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pgqueuer.models import Job
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api import clock, worker
from api.db import asyncpg_dsn, create_engine
from api.testing import service as testing_service
from api.testing.models import ClockSetting
from tests.support import TestDatabaseServer

REAL = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
AHEAD = datetime(2032, 5, 4, 9, 0, tzinfo=UTC)
FOLLOW_SECONDS = 10.0


@pytest.fixture(autouse=True)
def real(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "real_now", lambda: REAL)


@pytest.fixture(scope="module")
def own_database(db_server: TestDatabaseServer) -> Iterator[str]:
    name = db_server.create_migrated_database("event_manager_clock")
    yield db_server.url_for(name)
    db_server.drop_database(name)


@pytest.fixture
async def own_engine(own_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(own_database, pool_size=2)
    yield engine
    async with engine.begin() as connection:
        await connection.execute(delete(ClockSetting))
    await engine.dispose()


@pytest.fixture
async def follower(own_database: str, own_engine: AsyncEngine) -> AsyncIterator[None]:
    """A follower started after a setting of AHEAD was committed."""
    await commit_elsewhere(own_engine, AHEAD)
    following = testing_service.ClockFollower(asyncpg_dsn(own_database))
    await following.start()
    yield
    await following.stop()


async def commit_elsewhere(engine: AsyncEngine, now: datetime | None) -> None:
    """A setting committed as another process's PUT (a moment) or DELETE (None) commits it: this
    process hears of it only through the follower."""
    offset = timedelta(0) if now is None else now - REAL
    async with AsyncSession(engine) as session:
        await testing_service.store_setting(session, offset)
        await session.commit()


async def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + FOLLOW_SECONDS
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


class TestClockFollower:
    @pytest.mark.usefixtures("follower")
    async def test_reads_the_setting_at_start(self):
        assert clock.now() == AHEAD

    @pytest.mark.usefixtures("follower")
    async def test_follows_each_change_committed_elsewhere(self, own_engine):
        later = AHEAD + timedelta(days=1)
        await commit_elsewhere(own_engine, later)
        await eventually(lambda: clock.now() == later)

        await commit_elsewhere(own_engine, None)
        await eventually(lambda: clock.now() == REAL and clock.offset() == timedelta(0))

    @pytest.mark.usefixtures("follower")
    async def test_catches_up_after_a_lost_connection(self, own_engine):
        async with own_engine.connect() as connection:
            ended = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": testing_service.LISTENER_APPLICATION_NAME},
            )
        assert ended == 1
        # Committed while nobody listens (the follower waits a second before it reconnects).
        later = AHEAD + timedelta(days=2)
        await commit_elsewhere(own_engine, later)

        await eventually(lambda: clock.now() == later)

    async def test_start_returns_when_the_database_refuses(self):
        following = testing_service.ClockFollower("postgresql://postgres@127.0.0.1:1/none")

        await asyncio.wait_for(following.start(), timeout=FOLLOW_SECONDS)
        await following.stop()

        assert clock.now() == REAL


class TestApplySetting:
    def test_an_older_version_is_ignored(self):
        testing_service.apply_setting(3, timedelta(hours=1))
        testing_service.apply_setting(2, timedelta(hours=2))

        assert clock.now() == REAL + timedelta(hours=1)

    def test_the_same_version_again_applies(self):
        testing_service.apply_setting(3, timedelta(hours=1))
        testing_service.apply_setting(3, timedelta(hours=1))

        assert clock.now() == REAL + timedelta(hours=1)

    def test_a_bad_notification_changes_nothing(self):
        testing_service.apply_setting(1, timedelta(hours=1))

        testing_service._on_notification(None, 0, testing_service.CHANNEL, "not a setting")

        assert clock.now() == REAL + timedelta(hours=1)

    def test_a_notification_applies(self):
        testing_service._on_notification(None, 0, testing_service.CHANNEL, "4 -90000000")

        assert clock.now() == REAL - timedelta(seconds=90)


class TestScheduledJobs:
    async def test_read_the_setting_before_they_run(self, engine):
        """The worker's scheduled jobs run on the stored setting, even one this process has not
        been told about yet (committed to the suite's database, removed afterwards)."""
        seen: list[datetime] = []

        async def job(_: Job) -> None:
            seen.append(clock.now())

        run: Callable[[Job], Awaitable[None]] = worker._on_shared_clock(job)
        try:
            await commit_elsewhere(engine, AHEAD)
            await run(None)  # type: ignore[arg-type]  # the job ignores it
        finally:
            async with engine.begin() as connection:
                await connection.execute(delete(ClockSetting))

        assert seen == [AHEAD]
