"""The outbox rows a change writes: rising ids, JSON payloads, nothing left by a rollback."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.outbox import service as outbox_service
from api.outbox.models import DomainEventType, OutboxEvent, OutboxEventPublic


async def test_rows_get_rising_ids_in_the_order_they_were_recorded(session: AsyncSession):
    user_id = uuid.uuid4()
    first = await outbox_service.record(
        session, DomainEventType.USER_UPDATED, {"id": str(user_id), "bio": "a"}
    )
    second = await outbox_service.record(
        session, DomainEventType.USER_DELETED, {"id": str(user_id)}
    )
    await session.flush()

    assert first.id is not None
    assert second.id is not None
    assert second.id > first.id
    stored = await session.get(OutboxEvent, second.id)
    assert stored is not None
    assert OutboxEventPublic.model_validate(stored).model_dump(mode="json") == {
        "id": second.id,
        "type": "user.deleted",
        "occurred_at": stored.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": {"id": str(user_id)},
    }


async def test_a_public_model_is_stored_as_its_json(session: AsyncSession):
    data = OutboxEventPublic(id=7, type=DomainEventType.WEBHOOK_TEST, data={"webhook_id": "w"})
    event = await outbox_service.record(session, DomainEventType.WEBHOOK_TEST, data)
    await session.flush()

    assert event.data == {
        "id": 7,
        "type": "webhook.test",
        "occurred_at": data.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": {"webhook_id": "w"},
    }


async def test_a_rollback_leaves_no_row(session: AsyncSession):
    count = select(func.count()).select_from(OutboxEvent)
    before = await session.scalar(count)
    savepoint = await session.begin_nested()
    await outbox_service.record(session, DomainEventType.USER_DELETED, {"id": "x"})
    await session.flush()
    assert await session.scalar(count) == (before or 0) + 1
    await savepoint.rollback()

    assert await session.scalar(count) == before
    assert (
        await session.scalars(select(OutboxEvent).where(col(OutboxEvent.data)["id"].astext == "x"))
    ).all() == []
