"""The notification model family: in-app notices and per-kind delivery preferences."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from api import clock
from api.examples import examples
from api.notifications import examples as notification_examples

TIMESTAMP = sa.DateTime(timezone=True)


class NotificationKind(StrEnum):
    EVENT_SUBMITTED = "EVENT_SUBMITTED"
    EVENT_APPROVED = "EVENT_APPROVED"
    EVENT_REJECTED = "EVENT_REJECTED"
    EVENT_UPDATED = "EVENT_UPDATED"
    EVENT_CANCELLED = "EVENT_CANCELLED"
    EVENT_REMINDER = "EVENT_REMINDER"
    REGISTRATION_CONFIRMED = "REGISTRATION_CONFIRMED"
    WAITLIST_PROMOTED = "WAITLIST_PROMOTED"
    WAITLIST_OFFER = "WAITLIST_OFFER"
    WAITLIST_OFFER_EXPIRED = "WAITLIST_OFFER_EXPIRED"
    CONNECTION_REQUESTED = "CONNECTION_REQUESTED"
    CONNECTION_ACCEPTED = "CONNECTION_ACCEPTED"
    PRO_STATUS_CHANGED = "PRO_STATUS_CHANGED"
    ROLE_CHANGED = "ROLE_CHANGED"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    WEBHOOK_DISABLED = "WEBHOOK_DISABLED"


class NotificationBase(SQLModel):
    kind: NotificationKind = Field(sa_type=sa.Enum(NotificationKind, name="notification_kind"))
    title: str = Field(max_length=300)
    body: str = Field(max_length=4000)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)


class Notification(NotificationBase, table=True):
    __table_args__ = (
        # The inbox, newest first; and its unread part.
        sa.Index("ix_notification_user_created_at", "user_id", "created_at"),
        sa.Index(
            "ix_notification_user_unread",
            "user_id",
            postgresql_where=sa.text("read_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE")
    read_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)


class NotificationPublic(NotificationBase):
    model_config = examples(notification_examples.NOTIFICATION, list_path="/api/v1/notifications")

    id: uuid.UUID
    read_at: datetime | None
    created_at: datetime


class ChannelSettings(SQLModel):
    email: bool = True
    in_app: bool = True


class ChannelUpdate(SQLModel):
    email: bool | None = None
    in_app: bool | None = None


class NotificationPreference(ChannelSettings, table=True):
    """A user's choice for one kind; no row means both channels on."""

    __tablename__ = "notification_preference"

    user_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE", primary_key=True)
    kind: NotificationKind = Field(
        sa_type=sa.Enum(NotificationKind, name="notification_kind"), primary_key=True
    )
