"""Fixtures for the networking tests: a published event of `manager`, with seats to spare."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.events.models import Event
from api.users.models import User
from tests.factories import create_event


@pytest.fixture
async def event(session: AsyncSession, manager: User) -> Event:
    return await create_event(session, owner=manager, title="Networking night", capacity=20)
