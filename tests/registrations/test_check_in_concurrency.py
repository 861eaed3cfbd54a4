"""Check-in by code under real concurrency, against a real server process.

Two staff members scanning one ticket at once: exactly one checks the attendee in, the other
gets 409 ALREADY_CHECKED_IN saying when (the row lock decides, not the application). A code
resolved just as its registration is cancelled: the check-in waits for the cancellation and
answers 409 NOT_CONFIRMED. Everything a test needs is committed first, under its own email
prefix and event ids, and deleted when it ends.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import pytest
from sqlalchemy import delete, func, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api.events.models import Event
from api.users.models import User, UserRole
from tests.events.test_concurrency import (
    DB_TIMEOUT_SECONDS,
    Account,
    Scenario,
    all_at_once,
    client_for,
    stored_registrations,
)
from tests.factories import delete_mail_to
from tests.support import ServerProcess, run_server

PAIRS = 5
LOCK_WAIT_SECONDS = 10


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {
        "AUTH_RATE_LIMIT": "off",
        "DB_COMMAND_TIMEOUT_SECONDS": str(DB_TIMEOUT_SECONDS),
    }
    with run_server(env, workers=2) as process:
        yield process


@pytest.fixture
async def scenario(engine: AsyncEngine) -> AsyncIterator[Scenario]:
    prefix = f"ciconc-{uuid.uuid4().hex[:10]}-"
    created = Scenario(engine, prefix)
    yield created
    async with AsyncSession(engine) as session:
        await delete_mail_to(session, prefix)
        await session.execute(delete(Event).where(col(Event.id).in_(created.event_ids)))
        await session.execute(delete(User).where(func.lower(User.email).like(f"{prefix}%")))
        await session.commit()


@pytest.fixture
async def owner(scenario: Scenario) -> Account:
    [manager] = await scenario.accounts(1, role=UserRole.MANAGER)
    return manager


def check_in_url(event: Event) -> str:
    return f"/api/v1/events/{event.id}/check-in"


async def test_two_at_once_one_wins(server, scenario, owner):
    event, _ = await scenario.event(owner, capacity=PAIRS, confirmed=PAIRS)
    [other_staff] = await scenario.accounts(1, role=UserRole.ADMIN)
    rows = await stored_registrations(scenario.engine, event.id)
    codes = {row.user_id: row.checkin_code for row in rows}
    assert len(set(codes.values())) == PAIRS

    async with client_for(server, 2 * PAIRS) as client:
        responses = await all_at_once(
            [
                client.post(check_in_url(event), json={"code": code}, headers=staff.headers)
                for code in codes.values()
                for staff in (owner, other_staff)
            ]
        )

    pairs = [responses[i : i + 2] for i in range(0, len(responses), 2)]
    assert (
        sorted(sorted(response.status_code for response in pair) for pair in pairs)
        == [[200, 409]] * PAIRS
    )
    stored = {row.user_id: row for row in await stored_registrations(scenario.engine, event.id)}
    for pair in pairs:
        [won] = [response for response in pair if response.status_code == 200]
        [lost] = [response for response in pair if response.status_code == 409]
        checked_in_at = datetime.fromisoformat(won.json()["checked_in_at"])
        assert lost.json() == {
            "detail": {
                "code": "ALREADY_CHECKED_IN",
                "reason": "Already checked in",
                "checked_in_at": lost.json()["detail"]["checked_in_at"],
            }
        }
        assert datetime.fromisoformat(lost.json()["detail"]["checked_in_at"]) == checked_in_at
        registrant = uuid.UUID(won.json()["user_id"])
        assert stored[registrant].checked_in_at == checked_in_at
        assert "checkin_code" not in won.json()


async def test_cancelled_while_checking_in_409(server, scenario, owner):
    event, [registrant] = await scenario.event(owner, capacity=1, confirmed=1)
    [row] = await stored_registrations(scenario.engine, event.id)
    assert row.checkin_code is not None

    async with scenario.engine.connect() as cancelling, client_for(server, 1) as client:
        # The registration is being cancelled, not committed yet: its row is locked, and the
        # committed row still holds the code.
        await cancelling.execute(
            text(
                "UPDATE registration SET status = 'CANCELLED', checkin_code = NULL,"
                " cancelled_at = now() WHERE id = :id"
            ),
            {"id": row.id},
        )
        await cancelling.execute(
            text("UPDATE event SET registered_count = 0 WHERE id = :id"), {"id": event.id}
        )
        request = asyncio.create_task(
            client.post(check_in_url(event), json={"code": row.checkin_code}, headers=owner.headers)
        )
        await waiting_for_a_row_lock(scenario.engine, request)
        await cancelling.commit()
        response = await request

    assert response.status_code == 409
    assert response.json() == {
        "detail": {"code": "NOT_CONFIRMED", "reason": "The registration is CANCELLED"}
    }
    [after] = await stored_registrations(scenario.engine, event.id)
    assert (after.checkin_code, after.checked_in_at) == (None, None)
    assert registrant.user.id == after.user_id


async def waiting_for_a_row_lock(engine: AsyncEngine, request: asyncio.Task[object]) -> None:
    """Return once a server's statement waits on a lock (the check-in's FOR UPDATE)."""
    async with engine.connect() as watcher:
        for _ in range(LOCK_WAIT_SECONDS * 20):
            assert not request.done(), request.result()
            waiting = await watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'"
                    " AND query LIKE '%registration%'"
                )
            )
            if waiting == 1:
                return
            await watcher.rollback()
            await asyncio.sleep(0.05)
    raise AssertionError("the check-in never waited for the registration's lock")
