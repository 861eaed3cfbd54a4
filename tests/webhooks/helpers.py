"""Webhooks written straight to the database, for the tests of this package."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.outbox.models import DomainEventType
from api.webhooks.models import Webhook, new_secret

BASE = "/api/v1/webhooks"


async def add_webhook(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    url: str = "http://127.0.0.1:9/hook",
    event_types: list[DomainEventType] | None = None,
    **fields: Any,
) -> Webhook:
    webhook = Webhook(
        owner_id=owner_id,
        url=url,
        event_types=event_types or [DomainEventType.EVENT_PUBLISHED],
        secret=new_secret(),
        **fields,
    )
    session.add(webhook)
    await session.flush()
    return webhook


def body(**overrides: Any) -> dict[str, Any]:
    return {
        "url": "http://127.0.0.1:9/hook",
        "description": "Our CRM",
        "event_types": ["event.published", "registration.confirmed"],
        **overrides,
    }
