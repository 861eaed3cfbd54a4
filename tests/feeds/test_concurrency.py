"""The first GET /users/me/calendar-feed, sent many times at once against a real server: one
feed is made and every answer shows it.

The server commits to the test database: the test's account lives under its own email prefix
and is deleted (its feed with it) when the test ends.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api.feeds.models import CalendarFeed
from api.users.models import UserRole
from tests.factories import committed_accounts, create_user, token_headers
from tests.leaks import LeakScanner
from tests.support import ServerProcess, run_server

PARALLEL = 12


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with run_server({"AUTH_RATE_LIMIT": "off"}, workers=2) as process:
        yield process


@pytest.fixture
async def prefix(engine: AsyncEngine) -> AsyncIterator[str]:
    async with committed_accounts(engine, "feeds") as value:
        yield value


async def test_parallel_first_calls_make_one_feed(server: ServerProcess, engine, prefix):
    async with AsyncSession(engine, expire_on_commit=False) as session:
        user = await create_user(
            session, role=UserRole.AUTHENTICATED, email=f"{prefix}owner@example.com"
        )
        headers = await token_headers(session, user)
        await session.commit()

    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=30, event_hooks=LeakScanner().hooks
    ) as client:
        responses = await asyncio.gather(
            *(
                client.get("/api/v1/users/me/calendar-feed", headers=headers)
                for _ in range(PARALLEL)
            )
        )

    assert [r.status_code for r in responses] == [200] * PARALLEL
    assert len({r.text for r in responses}) == 1
    async with AsyncSession(engine) as session:
        feeds = await session.scalar(
            select(func.count())
            .select_from(CalendarFeed)
            .where(col(CalendarFeed.user_id) == user.id)
        )
    assert feeds == 1
