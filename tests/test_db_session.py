"""api.db: reads run without a transaction, writes in one; the pool pings only idle
connections; migrations run without the request path's statement timeout."""

import uuid
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from starlette.requests import Request

from api.config import settings
from api.db import LAST_USED, PING_AFTER_IDLE_SECONDS, create_engine, dispose_engine, get_session
from api.users.models import User
from tests.conftest import TEST_DATABASE_URL

NOW = text("SELECT now()")  # the start of the current transaction
session_for = asynccontextmanager(get_session)


async def each_statement_on_its_own(method: str) -> bool:
    request = Request({"type": "http", "method": method, "headers": [], "path": "/"})
    try:
        async with session_for(request) as session:
            first = await session.scalar(NOW)
            await session.execute(text("SELECT pg_sleep(0.01)"))
            return bool(await session.scalar(NOW) != first)
    finally:
        await dispose_engine()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_reads_run_each_statement_on_its_own(method):
    assert await each_statement_on_its_own(method)


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
async def test_writes_run_in_one_transaction(method):
    assert not await each_statement_on_its_own(method)


async def test_read_commits_what_is_left_to_flush() -> None:
    request = Request({"type": "http", "method": "GET", "headers": [], "path": "/"})
    email = f"read-{uuid.uuid4().hex[:10]}@example.com"
    try:
        async with session_for(request) as session:
            session.add(User(email=email, hashed_password="-", nickname=email[:15]))
        async with session_for(request) as session:
            assert await session.scalar(select(User).where(col(User.email) == email))
    finally:
        async with session_for(request) as session:
            await session.execute(delete(User).where(col(User.email) == email))
        await dispose_engine()


# --- the pool's pre-ping ----------------------------------------------------------------------


class PingLog:
    """The `SELECT 1` pings PostgreSQL receives on one pooled connection (asyncpg's query
    logger sees what the checkout hook sends on the driver connection)."""

    def __init__(self) -> None:
        self.pings = 0

    def __call__(self, record: Any) -> None:
        self.pings += record.query == "SELECT 1"


async def pooled_connection(engine: AsyncEngine) -> tuple[dict[Any, Any], PingLog]:
    """The pool's one connection: its pool entry's `info`, and the log of its pings."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert raw.driver_connection is not None
        log = PingLog()
        raw.driver_connection.add_query_logger(log)
        return raw.info, log


async def check_out_and_in(engine: AsyncEngine) -> None:
    async with engine.connect():
        pass


async def test_connection_used_a_moment_ago_is_not_pinged() -> None:
    engine = create_engine(TEST_DATABASE_URL, pool_size=1)
    try:
        _, log = await pooled_connection(engine)
        for _ in range(3):
            await check_out_and_in(engine)
        assert log.pings == 0
    finally:
        await engine.dispose()


async def test_connection_idle_over_a_second_is_pinged() -> None:
    engine = create_engine(TEST_DATABASE_URL, pool_size=1)
    try:
        info, log = await pooled_connection(engine)
        # Checked in longer ago than PING_AFTER_IDLE_SECONDS, without sleeping in the test.
        info[LAST_USED] -= PING_AFTER_IDLE_SECONDS + 0.5
        await check_out_and_in(engine)
        assert log.pings == 1
        await check_out_and_in(engine)
        assert log.pings == 1
    finally:
        await engine.dispose()


async def test_migrations_have_no_statement_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "DB_COMMAND_TIMEOUT_SECONDS", 0.2)
    request_engine = create_engine(TEST_DATABASE_URL)
    migration_engine = create_engine(TEST_DATABASE_URL, timed_statements=False)
    sleep = text("SELECT pg_sleep(0.5)")
    try:
        async with request_engine.connect() as connection:
            with pytest.raises(TimeoutError):
                await connection.execute(sleep)
        async with migration_engine.connect() as connection:
            await connection.execute(sleep)
    finally:
        await request_engine.dispose()
        await migration_engine.dispose()
