"""The `webhooks` section of the OpenAPI document: what a receiver gets for each domain-event
type (API-integrations.md, Domain events), with the Standard Webhooks headers."""

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, create_model

from api.events.models import Attendee, EventPublic
from api.outbox.models import DomainEventType
from api.users.models import UserRead

HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "The delivery's id, kept by its retries and replays: dedupe on it",
        "schema": {"type": "string", "format": "uuid"},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "The attempt's time, Unix seconds",
        "schema": {"type": "string"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` "
        "keyed by the secret's decoded bytes; two, space-separated, new first, for 24 h after "
        "a rotation. standardwebhooks' `Webhook(secret).verify` checks it.",
        "schema": {"type": "string"},
    },
]


class DeletedEvent(BaseModel):
    id: uuid.UUID
    created_by: uuid.UUID | None


class DeletedUser(BaseModel):
    id: uuid.UUID


class WebhookTest(BaseModel):
    webhook_id: uuid.UUID


def data_model(event_type: DomainEventType) -> type[BaseModel]:
    if event_type is DomainEventType.EVENT_DELETED:
        return DeletedEvent
    if event_type is DomainEventType.USER_DELETED:
        return DeletedUser
    if event_type is DomainEventType.WEBHOOK_TEST:
        return WebhookTest
    if event_type.startswith("event."):
        return EventPublic
    if event_type.startswith("registration."):
        return Attendee
    return UserRead


def _name(event_type: DomainEventType) -> str:
    return "".join(part.title() for part in event_type.replace("_", ".").split(".")) + "Event"


def payload_model(event_type: DomainEventType) -> type[BaseModel]:
    """`{id, type, occurred_at, data}` for one type."""
    model: type[BaseModel] = create_model(
        _name(event_type),
        id=(int, ...),
        type=(Literal[event_type.value], ...),  # type: ignore[arg-type]
        occurred_at=(datetime, ...),
        data=(data_model(event_type), ...),
    )
    return model


def _receiver(model: type[BaseModel]) -> Any:
    async def receive(body: Any) -> None:
        """What the webhook's URL receives; answer any 2xx within WEBHOOK_TIMEOUT_SECONDS."""

    receive.__annotations__["body"] = model
    return receive


def document_webhooks(app: FastAPI) -> None:
    for event_type in DomainEventType:
        app.webhooks.add_api_route(
            event_type.value,
            _receiver(payload_model(event_type)),
            methods=["POST"],
            status_code=200,
            summary=event_type.value,
            operation_id=f"webhook_{event_type.value.replace('.', '_')}",
            responses={200: {"description": "Any 2xx: delivered; anything else is retried"}},
            openapi_extra={"parameters": HEADERS},
        )
