"""Fixtures for delivery tests: committed data (a worker in its own transactions must see it), a
real receiving server on 127.0.0.1, and pgqueuer workers running the real job functions."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api import worker as worker_module
from api.outbox import service as outbox_service
from api.outbox.models import DomainEventType
from api.users.models import User, UserRole
from api.webhooks.models import Webhook
from tests.factories import create_user
from tests.webhooks.helpers import add_webhook
from tests.webhooks.receiver import Receiver, receiving


@dataclass
class Committed:
    """A session whose writes commit; what it made is removed after the test."""

    session: AsyncSession
    users: list[uuid.UUID] = field(default_factory=list)
    events: list[int] = field(default_factory=list)

    async def owner(self, role: UserRole = UserRole.ADMIN) -> User:
        user = await create_user(self.session, role=role)
        self.users.append(user.id)
        await self.session.commit()
        return user

    async def webhook(self, owner: User, url: str, **fields: Any) -> Webhook:
        fields.setdefault("event_types", [DomainEventType.USER_CREATED])
        webhook = await add_webhook(self.session, owner.id, url=url, **fields)
        await self.session.commit()
        return webhook

    async def publish(
        self, event_type: DomainEventType = DomainEventType.USER_CREATED, **data: Any
    ) -> int:
        """Write one outbox row and commit it, as a domain change would."""
        event = await outbox_service.record(
            self.session, event_type, data or {"id": str(uuid.uuid4())}
        )
        await self.session.commit()
        assert event.id is not None
        self.events.append(event.id)
        return event.id


@pytest.fixture
async def committed(engine: AsyncEngine) -> AsyncIterator[Committed]:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        made = Committed(session)
        yield made
        await session.rollback()
    async with engine.begin() as connection:
        await connection.execute(
            text("DELETE FROM audit_log WHERE target_type = 'webhook' OR actor_id = ANY(:ids)"),
            {"ids": made.users},
        )
        await connection.execute(
            text('DELETE FROM "user" WHERE id = ANY(:ids)'), {"ids": made.users}
        )
        await connection.execute(
            text("DELETE FROM outbox_event WHERE id = ANY(:ids)"), {"ids": made.events}
        )
        await connection.execute(
            text(
                "DELETE FROM pgqueuer WHERE entrypoint LIKE 'webhook_%'"
                " OR (entrypoint = 'send_email'"
                " AND convert_from(payload, 'UTF8') LIKE '%webhook was disabled%')"
            )
        )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as server:
        yield server


WorkerStarter = Callable[[], Awaitable[None]]


@pytest.fixture
async def start_worker() -> AsyncIterator[WorkerStarter]:
    """Start a queue runner (call it twice for two workers on one database)."""
    running: list[tuple[asyncpg.Connection, Any, asyncio.Task[None]]] = []

    async def start() -> None:
        connection = await asyncpg.connect(worker_module.asyncpg_dsn())
        queue = worker_module.build_queue(connection)
        task = asyncio.create_task(queue.run(dequeue_timeout=timedelta(milliseconds=200)))
        running.append((connection, queue, task))

    yield start
    for _, queue, _ in running:
        queue.shutdown.set()
    for connection, _, task in running:
        await asyncio.wait_for(task, timeout=30)
        await connection.close()


@pytest.fixture
async def worker(start_worker: WorkerStarter) -> None:
    await start_worker()
