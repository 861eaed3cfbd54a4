"""Writing audit entries; always inside the caller's transaction."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.audit.models import AuditAction, AuditLog
from api.pagination import PageParams, Total, paginate


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
