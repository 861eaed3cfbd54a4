"""The Idempotency-Key table: one row per (user, key), holding the first answer once it is known."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

TIMESTAMP = sa.DateTime(timezone=True)


class IdempotencyKey(SQLModel, table=True):
    """A key claimed by a request. `response_status` is null while that request runs; a
    `locked_until` in the past then means its process died and the key may be taken over."""

    __tablename__ = "idempotency_key"
    __table_args__ = (sa.UniqueConstraint("user_id", "key", name="uq_idempotency_key_user_key"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE")
    key: str = Field(max_length=255)
    # SHA-256 (hex) of the method, path, query string and body bytes.
    fingerprint: str = Field(max_length=64)
    response_status: int | None = None
    # [[name, value], ...] as latin-1 text, the headers a replay repeats.
    response_headers: list[list[str]] | None = Field(default=None, sa_type=JSONB)
    response_body: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    created_at: datetime = Field(sa_type=TIMESTAMP)
    # The cleanup job deletes rows past this.
    expires_at: datetime = Field(sa_type=TIMESTAMP, index=True)
    locked_until: datetime = Field(sa_type=TIMESTAMP)
