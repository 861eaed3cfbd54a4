"""api.db.get_session: reads run without a transaction, writes in one."""

from collections.abc import AsyncGenerator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from api.db import dispose_engine, get_session

NOW = text("SELECT now()")  # the start of the current transaction


def request(method: str) -> Request:
    return Request({"type": "http", "method": method, "headers": [], "path": "/"})


async def own_transaction_each(sessions: AsyncGenerator[AsyncSession]) -> bool:
    session = await anext(sessions)
    try:
        first = await session.scalar(NOW)
        await session.execute(text("SELECT pg_sleep(0.01)"))
        return bool(await session.scalar(NOW) != first)
    finally:
        await sessions.aclose()
        await dispose_engine()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_reads_run_each_statement_on_its_own(method):
    assert await own_transaction_each(get_session(request(method)))


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
async def test_writes_run_in_one_transaction(method):
    assert not await own_transaction_each(get_session(request(method)))
