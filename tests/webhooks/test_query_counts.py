"""No N+1: the webhook lists run the same statements for a page of 1 and of 20."""

from sqlalchemy.ext.asyncio import AsyncSession

from api.outbox.models import DomainEventType
from api.users.models import User
from api.webhooks.models import WebhookDelivery
from tests.test_query_counts import ROWS, AuthAs, counted, statements
from tests.webhooks.helpers import BASE, add_webhook

__all__ = ["statements"]  # the fixture


async def test_webhooks_list(
    client, session: AsyncSession, admin: User, auth_as: AuthAs, statements
):
    for _ in range(ROWS):
        await add_webhook(session, admin.id)

    counts = await counted(client, statements, BASE, await auth_as(admin))

    assert counts[1] == counts[20]


async def test_deliveries_list(
    client, session: AsyncSession, manager: User, auth_as: AuthAs, statements
):
    webhook = await add_webhook(session, manager.id)
    session.add_all(
        WebhookDelivery(
            webhook_id=webhook.id,
            event_id=n,
            event_type=DomainEventType.EVENT_PUBLISHED,
            payload={"id": n},
            attempts=[],
        )
        for n in range(ROWS)
    )
    await session.flush()

    counts = await counted(
        client, statements, f"{BASE}/{webhook.id}/deliveries", await auth_as(manager)
    )

    assert counts[1] == counts[20]
