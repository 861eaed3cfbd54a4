"""The 50-token limit under real concurrency: parallel creations against a real server.

The server commits to the test database: the test's account lives under its own email prefix
and is deleted (its tokens and audit entries with it) when the test ends.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api.tokens.models import ApiToken, Scope
from api.tokens.service import MAX_TOKENS_PER_USER
from api.users.models import UserRole
from tests.factories import api_token_headers, committed_accounts, create_user, token_headers
from tests.leaks import LeakScanner
from tests.support import ServerProcess, run_server

PARALLEL = 12
LEFT = 3


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with run_server({"AUTH_RATE_LIMIT": "off"}, workers=2) as process:
        yield process


@pytest.fixture
async def prefix(engine: AsyncEngine) -> AsyncIterator[str]:
    async with committed_accounts(engine, "tokens") as value:
        yield value


async def test_parallel_creations_stop_at_the_limit(server: ServerProcess, engine, prefix):
    async with AsyncSession(engine, expire_on_commit=False) as session:
        user = await create_user(
            session, role=UserRole.AUTHENTICATED, email=f"{prefix}owner@example.com"
        )
        headers = await token_headers(session, user)
        for _ in range(MAX_TOKENS_PER_USER - LEFT):
            await api_token_headers(session, user, [Scope.USERS_READ])
        await session.commit()

    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=30, event_hooks=LeakScanner().hooks
    ) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/users/me/api-tokens",
                    headers=headers,
                    json={"name": f"parallel {n}", "scopes": ["users:read"]},
                )
                for n in range(PARALLEL)
            )
        )

    assert Counter(r.status_code for r in responses) == {201: LEFT, 409: PARALLEL - LEFT}
    assert {r.json()["detail"]["code"] for r in responses if r.status_code == 409} == {
        "API_TOKEN_LIMIT_REACHED"
    }
    async with AsyncSession(engine) as session:
        held = await session.scalar(
            select(func.count()).select_from(ApiToken).where(col(ApiToken.user_id) == user.id)
        )
    assert held == MAX_TOKENS_PER_USER
