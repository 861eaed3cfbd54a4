"""api.db.get_session: reads run without a transaction, writes in one."""

from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from starlette.requests import Request

from api.db import dispose_engine, get_session

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
