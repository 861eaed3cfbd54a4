"""The domain-event outbox: one row per change that integrations hear of (API-integrations.md,
Domain events), written in the change's own transaction.

`id` comes from one rising sequence (an identity column): a rollback writes nothing, and of two
changes to one resource (serialised by its row lock) the later one has the larger id. Webhook
deliveries are made from these rows; the row itself is the payload `{id, type, occurred_at, data}`.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from api import clock

TIMESTAMP = sa.DateTime(timezone=True)


class DomainEventType(StrEnum):
    EVENT_CREATED = "event.created"
    EVENT_SUBMITTED = "event.submitted"
    EVENT_PUBLISHED = "event.published"
    EVENT_REJECTED = "event.rejected"
    EVENT_UPDATED = "event.updated"
    EVENT_CANCELLED = "event.cancelled"
    EVENT_DELETED = "event.deleted"
    REGISTRATION_CONFIRMED = "registration.confirmed"
    REGISTRATION_WAITLISTED = "registration.waitlisted"
    REGISTRATION_PROMOTED = "registration.promoted"
    REGISTRATION_CANCELLED = "registration.cancelled"
    REGISTRATION_CHECKED_IN = "registration.checked_in"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    # Only ever sent to the one webhook asked to test itself (POST /webhooks/{id}/test).
    WEBHOOK_TEST = "webhook.test"


class OutboxEventBase(SQLModel):
    type: DomainEventType = Field(max_length=40, sa_type=sa.String(40))
    occurred_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)
    data: dict[str, Any] = Field(sa_type=JSONB)


class OutboxEvent(OutboxEventBase, table=True):
    __tablename__ = "outbox_event"

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger, sa.Identity(always=True), primary_key=True),
    )


class OutboxEventPublic(OutboxEventBase):
    """A domain event as webhooks deliver it."""

    id: int
