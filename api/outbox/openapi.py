"""The domain events in the OpenAPI document: one entry per type under `webhooks`.

Each entry is the request a webhook receives for that type: `POST` of the payload
`{id, type, occurred_at, data}`, `data` being the public model the change is announced with
(api.notifications.service.announce), and the Standard Webhooks headers it is signed with. Only
the app imports this module: it reads the domains' public models, which the rest of the outbox
package must not know of. `webhook.test`, the ping of POST /webhooks/{id}/test, is listed too.
"""

import inspect
from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, create_model

from api.events.models import EventDeleted, EventPublic
from api.examples import Examples, declared_examples
from api.openapi import complete_document
from api.outbox.models import DomainEventType
from api.registrations.models import Attendee
from api.users.models import UserDeleted, UserRead
from api.webhooks.examples import DELIVERY_PAYLOAD
from api.webhooks.models import WebhookTestData

# The data of each domain-event type: the resource as its GET shows it after the change.
DATA_MODELS: dict[DomainEventType, type[BaseModel]] = {
    DomainEventType.EVENT_CREATED: EventPublic,
    DomainEventType.EVENT_SUBMITTED: EventPublic,
    DomainEventType.EVENT_PUBLISHED: EventPublic,
    DomainEventType.EVENT_REJECTED: EventPublic,
    DomainEventType.EVENT_UPDATED: EventPublic,
    DomainEventType.EVENT_CANCELLED: EventPublic,
    DomainEventType.EVENT_DELETED: EventDeleted,
    DomainEventType.REGISTRATION_CONFIRMED: Attendee,
    DomainEventType.REGISTRATION_WAITLISTED: Attendee,
    DomainEventType.REGISTRATION_PROMOTED: Attendee,
    DomainEventType.REGISTRATION_CANCELLED: Attendee,
    DomainEventType.REGISTRATION_CHECKED_IN: Attendee,
    DomainEventType.USER_CREATED: UserRead,
    DomainEventType.USER_UPDATED: UserRead,
    DomainEventType.USER_DELETED: UserDeleted,
    DomainEventType.WEBHOOK_TEST: WebhookTestData,
}

DESCRIPTIONS = {
    DomainEventType.EVENT_CREATED: "An event was created (POST /events); it awaits approval.",
    DomainEventType.EVENT_SUBMITTED: "A rejected event was submitted again for review.",
    DomainEventType.EVENT_PUBLISHED: "An event was approved and published.",
    DomainEventType.EVENT_REJECTED: "An event was rejected, with the reviewer's feedback.",
    DomainEventType.EVENT_UPDATED: "A PATCH changed at least one field of an event.",
    DomainEventType.EVENT_CANCELLED: "An event was cancelled; its registrations are too.",
    DomainEventType.EVENT_DELETED: "A pending or rejected event was deleted.",
    DomainEventType.REGISTRATION_CONFIRMED: "A registration was made with a seat.",
    DomainEventType.REGISTRATION_WAITLISTED: "A registration was made on the waitlist.",
    DomainEventType.REGISTRATION_PROMOTED: "A waitlisted registration got a freed seat.",
    DomainEventType.REGISTRATION_CANCELLED: (
        "A registration was cancelled: unregistered, its account deleted or its event cancelled."
    ),
    DomainEventType.REGISTRATION_CHECKED_IN: "A confirmed attendee was checked in.",
    DomainEventType.USER_CREATED: (
        "An account was created (sign-up, POST /users, create-admin, FIRST_ADMIN_EMAIL)."
    ),
    DomainEventType.USER_UPDATED: (
        "An account's profile, email, role, is_verified, is_active or is_professional changed."
    ),
    DomainEventType.USER_DELETED: "An account was deleted.",
    DomainEventType.WEBHOOK_TEST: (
        "The ping of POST /webhooks/{id}/test, sent to that webhook only, once."
    ),
}

DELIVERY = (
    "Sent as `POST` to each active webhook subscribed to the type, compact JSON, with the "
    "headers `webhook-id`, `webhook-timestamp` and `webhook-signature` (Standard Webhooks). "
    "Delivered at least once: deduplicate on `webhook-id`. Within one resource a later change "
    "has a larger `id`."
)

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

ACKNOWLEDGED = (
    "Any 2xx within WEBHOOK_TIMEOUT_SECONDS acknowledges the delivery; anything else (a "
    "redirect too) is retried after the WEBHOOK_RETRY_SCHEDULE delays"
)


def payload_model(event_type: DomainEventType) -> type[BaseModel]:
    """The body a webhook receives for `event_type`."""
    name = "".join(part.capitalize() for part in event_type.replace(".", "_").split("_"))
    data = declared_examples(DATA_MODELS[event_type])
    assert data is not None, f"{DATA_MODELS[event_type].__name__} declares no example"
    # The envelope of the example delivery, around the data model's first example.
    example = {**DELIVERY_PAYLOAD, "type": event_type.value, "data": data.values[0]}
    model: type[BaseModel] = create_model(
        f"{name}Payload",
        __doc__=f"The `{event_type}` domain event.",
        # Documented as sent (a webhook's request body is our output): UserRead, not its input.
        __config__=ConfigDict(
            json_schema_mode_override="serialization", json_schema_extra=Examples((example,))
        ),
        id=(int, Field(description="From one rising sequence; a later change has a larger id")),
        type=(Literal[event_type.value], ...),  # type: ignore[arg-type]
        occurred_at=(datetime, ...),
        data=(DATA_MODELS[event_type], ...),
    )
    return model


def _receiver(body: type[BaseModel]) -> Any:
    async def receive(payload: Any) -> None:  # noqa: ARG001 - documentation only
        return None

    receive.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("payload", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=body)]
    )
    return receive


def document_domain_events(app: FastAPI) -> None:
    """Add every domain-event type to `app.webhooks` (the document's top-level `webhooks`)."""
    for event_type, description in DESCRIPTIONS.items():
        app.webhooks.add_api_route(
            event_type.value,
            _receiver(payload_model(event_type)),
            methods=["POST"],
            summary=event_type.value,
            description=f"{description}\n\n{DELIVERY}",
            operation_id=f"webhook_{event_type.value.replace('.', '_')}",
            tags=["webhooks"],
            openapi_extra={"parameters": HEADERS},
        )

    def acknowledged(schema: dict[str, Any]) -> None:
        # What the receiver answers, not what FastAPI would (no 422 of ours, no JSON body).
        for item in schema.get("webhooks", {}).values():
            item["post"]["responses"] = {"2XX": {"description": ACKNOWLEDGED}}

    complete_document(app, acknowledged)
