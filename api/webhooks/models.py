"""Webhooks: HTTP endpoints of managers and admins that hear of domain events, and the log of
what was delivered to them (API-integrations.md, Webhooks).

A webhook's signing secrets are stored as they are (a signature needs the secret itself), and
are shown only in the answers that create them: POST /webhooks and rotate-secret.
"""

import base64
import secrets
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from pydantic import AfterValidator, StringConstraints
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from api import clock
from api.examples import WEBHOOK_ID, examples
from api.outbox.models import DomainEventType
from api.pagination import Page
from api.webhooks import examples as webhook_examples

TIMESTAMP = sa.DateTime(timezone=True)
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_URL_LENGTH = 2048
RESPONSE_BODY_LIMIT = 2048
# What a webhook may subscribe to: every domain event but the test ping.
SUBSCRIBABLE = tuple(t for t in DomainEventType if t is not DomainEventType.WEBHOOK_TEST)
# The types a MANAGER's webhook may hear of (and only for events the manager created).
MANAGER_PREFIXES = ("event.", "registration.")


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (the Standard Webhooks form)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class DisabledReason(StrEnum):
    CONSECUTIVE_FAILURES = "CONSECUTIVE_FAILURES"
    GONE = "GONE"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class AttemptError(StrEnum):
    TIMEOUT = "TIMEOUT"
    CONNECTION_ERROR = "CONNECTION_ERROR"
    TLS_ERROR = "TLS_ERROR"
    URL_NOT_ALLOWED = "URL_NOT_ALLOWED"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials")
    return value


def _event_types(value: list[DomainEventType]) -> list[DomainEventType]:
    if DomainEventType.WEBHOOK_TEST in value:
        raise ValueError("webhook.test is sent only by POST /webhooks/{id}/test")
    if len(set(value)) != len(value):
        raise ValueError("event_types must not repeat")
    return value


WebhookUrl = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH), AfterValidator(_http_url)
]
EventTypes = Annotated[list[DomainEventType], AfterValidator(_event_types)]


class WebhookBase(SQLModel):
    url: WebhookUrl = Field(max_length=MAX_URL_LENGTH)
    description: str | None = Field(default=None, max_length=500)
    event_types: EventTypes = Field(min_length=1, sa_type=ARRAY(sa.String(40)))
    is_active: bool = True


class Webhook(WebhookBase, table=True):
    __table_args__ = (
        # A manager's own list, newest first; and the admin's list.
        sa.Index("ix_webhook_owner_created_at", "owner_id", "created_at"),
        sa.Index("ix_webhook_created_at", "created_at"),
        # Dispatch: the active webhooks of an event type.
        sa.Index(
            "ix_webhook_active_event_types",
            "event_types",
            postgresql_using="gin",
            postgresql_where=sa.text("is_active"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE")
    # Stored as is: signing needs it. Never shown but in the 201 and the rotate answer.
    secret: str = Field(max_length=100)
    # The secret before the last rotation; it co-signs until previous_secret_expires_at.
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    failure_count: int = 0
    disabled_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    disabled_reason: DisabledReason | None = Field(default=None, sa_type=sa.String(30))
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)
    updated_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)


class WebhookCreate(WebhookBase):
    """POST /webhooks."""

    model_config = examples(webhook_examples.WEBHOOK_CREATE)


class WebhookUpdate(SQLModel):
    """PATCH /webhooks/{id}: the fields given change; `is_active: true` re-enables it."""

    model_config = examples(webhook_examples.WEBHOOK_UPDATE)

    url: WebhookUrl | None = None
    description: str | None = Field(default=None, max_length=500)
    event_types: EventTypes | None = Field(default=None, min_length=1)
    is_active: bool | None = None


class WebhookPublic(WebhookBase):
    """A webhook as the API shows it: never its secret."""

    model_config = examples(webhook_examples.WEBHOOK, list_path="/api/v1/webhooks")

    id: uuid.UUID
    owner_id: uuid.UUID
    failure_count: int
    disabled_at: datetime | None
    disabled_reason: DisabledReason | None
    created_at: datetime
    updated_at: datetime


class WebhookPage(Page[WebhookPublic]):
    """A page of webhooks."""


class WebhookWithSecret(WebhookPublic):
    """The answers that show the (new) secret: keep it, it is not shown again."""

    model_config = examples(webhook_examples.WEBHOOK_WITH_SECRET)

    secret: str


class DeliveryAttempt(SQLModel):
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: AttemptError | None
    response_body: str | None = Field(description="The first 2048 bytes of the answer")


class WebhookTestData(SQLModel):
    """The data of a `webhook.test` delivery (POST /webhooks/{id}/test)."""

    model_config = examples({"webhook_id": WEBHOOK_ID})

    webhook_id: uuid.UUID


class WebhookDeliveryBase(SQLModel):
    webhook_id: uuid.UUID = Field(foreign_key="webhook.id", ondelete="CASCADE")
    event_id: int = Field(sa_type=sa.BigInteger)
    event_type: DomainEventType = Field(max_length=40, sa_type=sa.String(40))
    status: DeliveryStatus = Field(default=DeliveryStatus.PENDING, sa_type=sa.String(20))
    # The outbox row as sent: {id, type, occurred_at, data}.
    payload: dict[str, Any] = Field(sa_type=JSONB)
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)
    next_attempt_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)


class WebhookDelivery(WebhookDeliveryBase, table=True):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        # One delivery per webhook and domain event, however many workers dispatch it.
        sa.UniqueConstraint("webhook_id", "event_id", name="uq_webhook_delivery_webhook_event"),
        sa.Index("ix_webhook_delivery_webhook_created_at", "webhook_id", "created_at"),
        sa.Index("ix_webhook_delivery_created_at", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    attempts: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)
    # False for tests and replays: one attempt, never counted against the webhook.
    counted: bool = True


class WebhookDeliveryPublic(WebhookDeliveryBase):
    model_config = examples(
        webhook_examples.DELIVERY, list_path=f"/api/v1/webhooks/{WEBHOOK_ID}/deliveries"
    )

    id: uuid.UUID
    attempts: list[DeliveryAttempt]


class WebhookDeliveryPage(Page[WebhookDeliveryPublic]):
    """A page of a webhook's deliveries."""
