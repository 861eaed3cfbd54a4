"""The append-only audit trail of staff actions."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from api import clock
from api.audit import examples as audit_examples
from api.examples import examples
from api.pagination import Page


class AuditAction(StrEnum):
    ROLE_CHANGED = "ROLE_CHANGED"
    PROFESSIONAL_STATUS_CHANGED = "PROFESSIONAL_STATUS_CHANGED"
    USER_UNLOCKED = "USER_UNLOCKED"
    USER_DELETED = "USER_DELETED"
    USER_UPDATED_BY_STAFF = "USER_UPDATED_BY_STAFF"
    EVENT_APPROVED = "EVENT_APPROVED"
    EVENT_REJECTED = "EVENT_REJECTED"
    EVENT_CANCELLED = "EVENT_CANCELLED"
    SERIES_APPROVED = "SERIES_APPROVED"
    SERIES_REJECTED = "SERIES_REJECTED"
    SERIES_CANCELLED = "SERIES_CANCELLED"
    API_TOKEN_CREATED = "API_TOKEN_CREATED"
    API_TOKEN_REVOKED = "API_TOKEN_REVOKED"
    WEBHOOK_CREATED = "WEBHOOK_CREATED"
    WEBHOOK_UPDATED = "WEBHOOK_UPDATED"
    WEBHOOK_DELETED = "WEBHOOK_DELETED"
    WEBHOOK_SECRET_ROTATED = "WEBHOOK_SECRET_ROTATED"
    WEBHOOK_DISABLED = "WEBHOOK_DISABLED"


class AuditLogBase(SQLModel):
    actor_id: uuid.UUID | None = Field(default=None, index=True)
    action: AuditAction = Field(
        sa_type=sa.Enum(AuditAction, name="audit_action"),
        index=True,
    )
    target_type: str = Field(max_length=30)
    target_id: uuid.UUID | None = Field(default=None, index=True)
    before: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    reason: str | None = Field(default=None, max_length=2000)


class AuditLog(AuditLogBase, table=True):
    """No foreign keys on purpose: entries outlive the users and events they name."""

    __tablename__ = "audit_log"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    at: datetime = Field(
        default_factory=clock.current_time, sa_type=sa.DateTime(timezone=True), index=True
    )


class AuditLogPublic(AuditLogBase):
    model_config = examples(audit_examples.ROLE_CHANGED, list_path="/api/v1/audit-log")

    id: uuid.UUID
    at: datetime


class AuditLogPage(Page[AuditLogPublic]):
    """A page of audit entries."""
