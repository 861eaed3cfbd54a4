"""Writing domain events to the outbox, in the caller's transaction."""

from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from api.outbox.models import DomainEventType, OutboxEvent


async def record(
    session: AsyncSession, event_type: DomainEventType, data: BaseModel | dict[str, Any]
) -> OutboxEvent:
    """Add one outbox row for `event_type` with `data` (a public model, dumped as JSON).

    Not flushed here: the row is inserted with the caller's other writes, in the order they
    were added, and commits or rolls back with them.
    """
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    event = OutboxEvent(type=event_type, data=payload)
    session.add(event)
    return event
