"""Fixtures for the Idempotency-Key tests.

The middleware claims keys in transactions of its own on the app's engine, before any route
session exists, so these tests work on committed data like a real server does: the app runs
with its real sessions, every account is made under one email prefix, and everything they made
(events, keys, registrations, notices, mail jobs, audit entries) is deleted afterwards.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api import ratelimit
from api.audit.models import AuditLog
from api.db import dispose_engine
from api.events.models import Event
from api.idempotency.models import IdempotencyKey
from api.main import create_app
from api.notifications.models import Notification
from api.registrations.models import Registration
from api.users.models import User, UserRole
from tests.factories import (
    api_token_headers,
    create_event,
    create_user,
    delete_mail_to,
    token_headers,
)
from tests.leaks import LeakScanner

Counted = Registration | Event | IdempotencyKey | Notification


@dataclass
class World:
    """Committed accounts and events of one test."""

    engine: AsyncEngine
    prefix: str
    users: list[User] = field(default_factory=list)

    async def user(self, role: UserRole = UserRole.AUTHENTICATED) -> tuple[User, dict[str, str]]:
        """A committed account and a live login token for it."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            account = await create_user(
                session, role=role, email=f"{self.prefix}{uuid.uuid4().hex[:8]}@example.com"
            )
            headers = await token_headers(session, account)
            await session.commit()
        self.users.append(account)
        return account, headers

    async def token(self, account: User) -> dict[str, str]:
        """Another live login token of `account`."""
        async with AsyncSession(self.engine) as session:
            headers = await token_headers(session, account)
            await session.commit()
        return headers

    async def api_token(self, account: User) -> dict[str, str]:
        """A live API token of `account`, holding every scope."""
        async with AsyncSession(self.engine) as session:
            headers = await api_token_headers(session, account)
            await session.commit()
        return headers

    async def event(self, **fields: Any) -> Event:
        owner, _ = await self.user(UserRole.MANAGER)
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            created = await create_event(session, owner=owner, **fields)
            await session.commit()
        return created

    async def count(
        self, model: type[Registration | Event | IdempotencyKey | Notification], **where: object
    ) -> int:
        async with AsyncSession(self.engine) as session:
            statement = select(func.count()).select_from(model)
            for name, value in where.items():
                statement = statement.where(getattr(model, name) == value)
            return int(await session.scalar(statement) or 0)

    async def keys(self, user: User) -> list[IdempotencyKey]:
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            rows = await session.scalars(
                select(IdempotencyKey).where(col(IdempotencyKey.user_id) == user.id)
            )
            return list(rows.all())

    async def add_key(self, row: IdempotencyKey) -> None:
        async with AsyncSession(self.engine) as session:
            session.add(row)
            await session.commit()

    async def cleanup(self) -> None:
        async with AsyncSession(self.engine) as session:
            users = list(
                await session.scalars(
                    select(col(User.id)).where(func.lower(User.email).like(f"{self.prefix}%"))
                )
            )
            await session.execute(delete(Event).where(col(Event.created_by).in_(users)))
            await session.execute(delete(AuditLog).where(col(AuditLog.actor_id).in_(users)))
            await session.execute(delete(User).where(col(User.id).in_(users)))
            await delete_mail_to(session, self.prefix)
            await session.commit()


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    committed = World(engine, f"idem-{uuid.uuid4().hex[:10]}-")
    yield committed
    await committed.cleanup()


@pytest.fixture(scope="module", autouse=True)
async def _own_engine() -> AsyncIterator[None]:
    """The app's global engine serves these tests; close its pool once they are done."""
    yield
    await dispose_engine()


@pytest.fixture
def real_app() -> Iterator[FastAPI]:
    """The app as served: its own sessions and its own engine (no per-test transaction)."""
    ratelimit.reset()
    yield create_app(run_worker=False)
    ratelimit.reset()


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        event_hooks=LeakScanner().hooks,
    )


@pytest.fixture
async def http(real_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(real_app) as client:
        yield client


async def wait_until(predicate: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Poll an async predicate until it holds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def event_row_locked(engine: AsyncEngine, event_id: uuid.UUID) -> AsyncIterator[None]:
    """Hold the event's row lock, which every registration takes, for the block's duration."""
    async with engine.connect() as connection, connection.begin():
        await connection.execute(
            text("SELECT id FROM event WHERE id = :id FOR UPDATE"), {"id": event_id}
        )
        yield
