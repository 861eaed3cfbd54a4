"""Writing audit entries; always inside the caller's transaction."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import ARRAY, Text, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.audit.models import AuditAction, AuditLog
from api.pagination import PageParams, Total, paginate

REDACTED = "[redacted]"
# What an entry may hold of a user that identifies them (User's profile fields and email).
PERSONAL_FIELDS = (
    "email",
    "nickname",
    "first_name",
    "last_name",
    "bio",
    "profile_picture_url",
    "linkedin_profile_url",
    "github_profile_url",
)


def _redacted(column: str) -> str:
    """SQL: the jsonb object in `column` with each personal field present set to REDACTED."""
    return (
        f"CASE WHEN {column} ?| :fields THEN (SELECT jsonb_object_agg(key, CASE WHEN key ="
        f" ANY(:fields) THEN to_jsonb(CAST(:redacted AS text)) ELSE value END)"
        f" FROM jsonb_each({column})) ELSE {column} END"
    )


REDACT_USER = text(
    f"UPDATE audit_log SET before = {_redacted('before')}, after = {_redacted('after')}"
    " WHERE target_type = 'user' AND target_id = :user_id"
    " AND (before ?| :fields OR after ?| :fields)"
).bindparams(bindparam("fields", type_=ARRAY(Text)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


async def record(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None,
    action: AuditAction,
    target_type: str,
    target_id: uuid.UUID | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditLog:
    entry = AuditLog(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before={k: _jsonable(v) for k, v in before.items()} if before is not None else None,
        after={k: _jsonable(v) for k, v in after.items()} if after is not None else None,
        reason=reason,
    )
    session.add(entry)
    await session.flush()
    return entry


async def redact_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """When an account is deleted: the entries about it stay (with bare ids), but the personal
    fields in their before/after become REDACTED. In the caller's transaction."""
    await session.execute(
        REDACT_USER,
        {"fields": list(PERSONAL_FIELDS), "redacted": REDACTED, "user_id": user_id},
    )


async def list_entries(
    session: AsyncSession,
    *,
    params: PageParams,
    actor_id: uuid.UUID | None = None,
    target_id: uuid.UUID | None = None,
    action: AuditAction | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[Sequence[AuditLog], Total]:
    statement = select(AuditLog)
    if actor_id is not None:
        statement = statement.where(col(AuditLog.actor_id) == actor_id)
    if target_id is not None:
        statement = statement.where(col(AuditLog.target_id) == target_id)
    if action is not None:
        statement = statement.where(col(AuditLog.action) == action)
    if since is not None:
        statement = statement.where(col(AuditLog.at) >= since)
    if until is not None:
        statement = statement.where(col(AuditLog.at) < until)
    ordered = statement.order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc())
    return await paginate(session, ordered, params)
