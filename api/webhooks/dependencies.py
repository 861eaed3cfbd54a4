"""Loading webhooks for routes: the owner's or (an admin) anyone's; another manager's is 404."""

import uuid
from typing import Annotated

from fastapi import Depends

from api.db import SessionDep
from api.users.auth import ManagerUser
from api.webhooks import service as webhook_service
from api.webhooks.models import Webhook, WebhookDelivery


async def get_visible_webhook(
    webhook_id: uuid.UUID, viewer: ManagerUser, session: SessionDep
) -> Webhook:
    return await webhook_service.get_webhook(session, viewer=viewer, webhook_id=webhook_id)


WebhookDep = Annotated[Webhook, Depends(get_visible_webhook)]


async def get_visible_delivery(
    delivery_id: uuid.UUID, webhook: WebhookDep, session: SessionDep
) -> WebhookDelivery:
    return await webhook_service.get_delivery(session, webhook=webhook, delivery_id=delivery_id)


DeliveryDep = Annotated[WebhookDelivery, Depends(get_visible_delivery)]
