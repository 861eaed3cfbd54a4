"""The 20-webhook limit under real concurrency: parallel creations against a real server (two
processes), which commits to the test database; the owner is removed when the test ends."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api.users.models import UserRole
from api.webhooks.models import Webhook
from api.webhooks.service import MAX_WEBHOOKS_PER_OWNER
from tests.factories import committed_accounts, create_user, token_headers
from tests.leaks import LeakScanner
from tests.support import ServerProcess, run_server
from tests.webhooks.helpers import BASE, add_webhook, body

PARALLEL = 10
LEFT = 3


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with run_server(
        {"AUTH_RATE_LIMIT": "off", "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}, workers=2
    ) as process:
        yield process


@pytest.fixture
async def prefix(engine: AsyncEngine) -> AsyncIterator[str]:
    async with committed_accounts(engine, "webhooks") as value:
        yield value


async def test_parallel_creations_stop_at_the_limit(
    server: ServerProcess, engine: AsyncEngine, prefix: str
) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        owner = await create_user(session, role=UserRole.MANAGER, email=f"{prefix}o@example.com")
        headers = await token_headers(session, owner)
        for _ in range(MAX_WEBHOOKS_PER_OWNER - LEFT):
            await add_webhook(session, owner.id)
        await session.commit()

    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=30, event_hooks=LeakScanner().hooks
    ) as client:
        responses = await asyncio.gather(
            *(client.post(BASE, headers=headers, json=body()) for _ in range(PARALLEL))
        )

    assert Counter(r.status_code for r in responses) == {201: LEFT, 409: PARALLEL - LEFT}
    assert {r.json()["detail"]["code"] for r in responses if r.status_code == 409} == {
        "WEBHOOK_LIMIT_REACHED"
    }
    async with AsyncSession(engine) as session:
        held = await session.scalar(
            select(func.count()).select_from(Webhook).where(col(Webhook.owner_id) == owner.id)
        )
    assert held == MAX_WEBHOOKS_PER_OWNER
