"""A frozen clock for the reminder tests, and the link a reminder mail carries."""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

import api.clock
from api.config import settings
from api.events.models import Event
from api.users.models import User
from tests.factories import delete_mail_to, queued_mail

# Years ahead of real time: events other tests leave behind have long started by then.
NOW = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)  # a Tuesday
CANT_COME_LINK = re.compile(r"http://testserver/cant-come\?token=([A-Za-z0-9._-]+)")


@dataclass
class Clock:
    now: datetime

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(NOW)
    monkeypatch.setattr(api.clock, "now", lambda: clock.now)
    return clock


@pytest.fixture
def two_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    """REMINDER_HOURS=24,2."""
    monkeypatch.setattr(settings, "REMINDER_HOURS", "2,24")


async def mailed_tokens(session: AsyncSession, email: str) -> list[str]:
    """The can't-come token of each reminder mail queued to `email`, oldest first; the text and
    HTML parts carry the same link."""
    tokens = []
    for mail in await queued_mail(session):
        if mail.to == email and mail.subject.startswith("Reminder: "):
            [token] = CANT_COME_LINK.findall(mail.text)
            assert f'href="http://testserver/cant-come?token={token}"' in mail.html
            tokens.append(token)
    return tokens


async def delete_committed(engine: AsyncEngine, prefix: str, event_id: uuid.UUID) -> None:
    """Remove what a test committed: the event (its registrations and reminders go with it),
    the users whose emails start with `prefix`, and the mail queued to them."""
    async with AsyncSession(engine) as session:
        await delete_mail_to(session, prefix)
        await session.execute(delete(Event).where(col(Event.id) == event_id))
        await session.execute(delete(User).where(col(User.email).like(f"{prefix}-%")))
        await session.commit()
