"""Fixtures for the registrations tests: a published event and a pending one, owned by `manager`,
and a service clock the test moves."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import api.clock
from api.events.models import Event, EventStatus
from api.users.models import User
from tests.factories import create_event
from tests.registrations.helpers import Clock, whole_second


@pytest.fixture
async def event(session: AsyncSession, manager: User) -> Event:
    return await create_event(session, owner=manager)


@pytest.fixture
async def pending_event(session: AsyncSession, manager: User) -> Event:
    return await create_event(session, owner=manager, status=EventStatus.PENDING)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The service clock, frozen at the current second; the test moves it."""
    frozen = Clock(whole_second())
    monkeypatch.setattr(api.clock, "now", frozen)
    return frozen
