"""Fixtures for the registrations tests: a published event and a pending one, owned by `manager`."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.events.models import Event, EventStatus
from api.users.models import User
from tests.factories import create_event


@pytest.fixture
async def event(session: AsyncSession, manager: User) -> Event:
    return await create_event(session, owner=manager)


@pytest.fixture
async def pending_event(session: AsyncSession, manager: User) -> Event:
    return await create_event(session, owner=manager, status=EventStatus.PENDING)
