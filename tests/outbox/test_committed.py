"""Outbox rows on committed data, through the app as served: a fault at commit leaves neither
the change nor its row, an idempotent replay writes no second row, parallel registrations each
write theirs, and the admin bootstrap announces the account it makes or promotes."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api.audit.models import AuditLog
from api.config import settings
from api.events.models import Event, EventStatus
from api.outbox.models import OutboxEvent
from api.registrations.models import Registration
from api.users.bootstrap import create_admin, ensure_first_admin
from api.users.models import User, UserRead, UserRole
from tests.factories import DEFAULT_PASSWORD, event_body
from tests.idempotency.conftest import World

# A fault after the outbox row is written: the row is inserted, then the commit refuses it.
REFUSE_AT_COMMIT = (
    "CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN RAISE EXCEPTION 'outbox row refused at commit (injected fault)'; END $$",
    "CREATE CONSTRAINT TRIGGER refuse_outbox AFTER INSERT ON outbox_event"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_outbox()",
)
ALLOW = ("DROP TRIGGER refuse_outbox ON outbox_event", "DROP FUNCTION refuse_outbox()")


async def run(engine: AsyncEngine, statements: tuple[str, ...]) -> None:
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


class Rows:
    """The outbox rows committed since the test began (deleted afterwards)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.start = 0

    async def _max(self) -> int:
        async with AsyncSession(self.engine) as session:
            return int(await session.scalar(select(func.max(OutboxEvent.id))) or 0)

    async def about(self, resource_id: Any) -> list[tuple[str, dict[str, Any]]]:
        """(type, data) of the rows whose data has `id` = resource_id, in id order."""
        async with AsyncSession(self.engine) as session:
            rows = await session.scalars(
                select(OutboxEvent)
                .where(
                    col(OutboxEvent.id) > self.start,
                    col(OutboxEvent.data)["id"].astext == str(resource_id),
                )
                .order_by(col(OutboxEvent.id))
            )
            return [(str(row.type), row.data) for row in rows]

    async def all(self) -> list[OutboxEvent]:
        async with AsyncSession(self.engine) as session:
            rows = await session.scalars(
                select(OutboxEvent)
                .where(col(OutboxEvent.id) > self.start)
                .order_by(col(OutboxEvent.id))
            )
            return list(rows.all())

    async def cleanup(self) -> None:
        async with AsyncSession(self.engine) as session:
            await session.execute(delete(OutboxEvent).where(col(OutboxEvent.id) > self.start))
            await session.commit()


@pytest.fixture
async def rows(engine: AsyncEngine) -> AsyncIterator[Rows]:
    written = Rows(engine)
    written.start = await written._max()
    yield written
    await written.cleanup()


async def test_a_fault_at_commit_leaves_neither_the_change_nor_its_row(
    http: httpx.AsyncClient, world: World, engine: AsyncEngine, rows: Rows
) -> None:
    event = await world.event(status=EventStatus.PENDING)
    _, admin = await world.user(UserRole.ADMIN)
    await run(engine, REFUSE_AT_COMMIT)
    try:
        failed = await http.post(f"/api/v1/events/{event.id}/approve", headers=admin)
    finally:
        await run(engine, ALLOW)

    assert failed.status_code == 500
    assert failed.json()["detail"] == "INTERNAL_ERROR"
    async with AsyncSession(engine) as session:
        stored = await session.get(Event, event.id)
        assert stored is not None
        assert stored.status is EventStatus.PENDING
        entries = await session.scalar(
            select(func.count()).select_from(AuditLog).where(col(AuditLog.target_id) == event.id)
        )
        assert entries == 0
    assert await rows.all() == []

    # Without the fault the same request commits the change and its row.
    approved = await http.post(f"/api/v1/events/{event.id}/approve", headers=admin)
    assert approved.status_code == 200, approved.text
    view = (await http.get(f"/api/v1/events/{event.id}", headers=admin)).json()
    assert await rows.about(event.id) == [("event.published", view)]


async def test_a_replay_writes_no_second_row(
    http: httpx.AsyncClient, world: World, rows: Rows
) -> None:
    _, manager = await world.user(UserRole.MANAGER)
    keyed = {**manager, "Idempotency-Key": "outbox-create"}
    body = event_body()

    first = await http.post("/api/v1/events", json=body, headers=keyed)
    replay = await http.post("/api/v1/events", json=body, headers=keyed)

    assert first.status_code == replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert await rows.about(first.json()["id"]) == [("event.created", first.json())]

    event = await world.event()
    _, user = await world.user()
    keyed = {**user, "Idempotency-Key": "outbox-register"}
    path = f"/api/v1/events/{event.id}/registrations"
    registered = await http.post(path, headers=keyed)
    replayed = await http.post(path, headers=keyed)

    assert registered.status_code == replayed.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true"
    assert [t for t, _ in await rows.about(registered.json()["id"])] == ["registration.confirmed"]


async def test_parallel_registrations_each_write_their_row(
    http: httpx.AsyncClient, world: World, rows: Rows
) -> None:
    event = await world.event(capacity=3)
    accounts = [await world.user() for _ in range(8)]
    path = f"/api/v1/events/{event.id}/registrations"

    answers = await asyncio.gather(*(http.post(path, headers=h) for _, h in accounts))

    assert [answer.status_code for answer in answers] == [201] * 8
    _, staff = await world.user(UserRole.ADMIN)
    listed = (await http.get(path, params={"size": 100}, headers=staff)).json()["items"]
    written = [(str(row.type), row.data) for row in await rows.all()]
    assert sorted(written, key=lambda row: row[1]["id"]) == sorted(
        [
            (
                "registration.confirmed"
                if item["status"] == "CONFIRMED"
                else "registration.waitlisted",
                item,
            )
            for item in listed
        ],
        key=lambda row: row[1]["id"],
    )
    assert sorted(item["waitlist_position"] or 0 for item in listed) == [0, 0, 0, 1, 2, 3, 4, 5]
    async with AsyncSession(world.engine) as session:
        assert (
            await session.scalar(
                select(func.count())
                .select_from(Registration)
                .where(col(Registration.event_id) == event.id)
            )
            == 8
        )


async def _user_read(engine: AsyncEngine, email: str) -> dict[str, Any]:
    async with AsyncSession(engine) as session:
        user = await session.scalar(select(User).where(col(User.email) == email))
        assert user is not None
        return UserRead.model_validate(user).model_dump(mode="json")


async def test_create_admin_announces_the_account(
    world: World, engine: AsyncEngine, rows: Rows
) -> None:
    email = f"{world.prefix}admin@example.com"

    user, created = await create_admin(email, DEFAULT_PASSWORD)

    assert created is True
    assert await rows.about(user.id) == [("user.created", await _user_read(engine, email))]

    # An existing account made admin: its role changed.
    member, _ = await world.user()
    promoted, created = await create_admin(member.email, DEFAULT_PASSWORD)
    assert created is False
    assert await rows.about(member.id) == [("user.updated", await _user_read(engine, member.email))]
    # Already an admin: nothing changes, nothing is announced.
    await create_admin(member.email, DEFAULT_PASSWORD)
    assert len(await rows.about(promoted.id)) == 1


async def test_first_admin_bootstrap_announces_the_account(
    world: World, engine: AsyncEngine, rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = f"{world.prefix}first@example.com"
    monkeypatch.setattr(settings, "FIRST_ADMIN_EMAIL", email)
    monkeypatch.setattr(settings, "FIRST_ADMIN_PASSWORD", DEFAULT_PASSWORD)

    await ensure_first_admin()
    await ensure_first_admin()  # the account exists: nothing more

    view = await _user_read(engine, email)
    assert await rows.about(uuid.UUID(view["id"])) == [("user.created", view)]
