"""Claim, store, free and clean up Idempotency-Keys: each a single statement, race-free in
PostgreSQL whatever the number of processes."""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from api.config import settings
from api.idempotency.models import IdempotencyKey

# How long a claim holds a key while its request runs. A request is bounded well below this
# (statement, pool and shutdown timeouts); a key whose process died is free again after it.
LEASE = timedelta(seconds=60)


def fingerprint_of(method: str, path: str, query: bytes, body: bytes) -> str:
    """SHA-256 over what makes a request: its method, path, query string and body bytes."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode("utf-8", "surrogateescape"), query):
        # Length-prefixed, so that no two different requests give the same byte stream.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class Claim:
    """This request owns the key: `lease` tells its claim apart from a later takeover."""

    id: uuid.UUID
    lease: datetime


@dataclass(frozen=True)
class Existing:
    """The key is held by another request: running, or finished with its answer."""

    fingerprint: str
    status: int | None
    headers: list[list[str]] | None
    body: bytes | None
    locked_until: datetime


async def claim_key(
    connection: AsyncConnection,
    *,
    user_id: uuid.UUID,
    key: str,
    fingerprint: str,
    now: datetime,
) -> Claim | Existing | None:
    """Claim `key` for a new request, or read who holds it (None: it vanished meanwhile, try
    again). A row past its expiry is reused as if absent; one left in flight with a lapsed lease
    is taken over by the same request."""
    lease = now + LEASE
    statement = insert(IdempotencyKey).values(
        id=uuid.uuid4(),
        user_id=user_id,
        key=key,
        fingerprint=fingerprint,
        created_at=now,
        expires_at=now + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
        locked_until=lease,
    )
    statement = statement.on_conflict_do_update(
        constraint="uq_idempotency_key_user_key",
        set_={
            "fingerprint": statement.excluded.fingerprint,
            "response_status": None,
            "response_headers": None,
            "response_body": None,
            "created_at": statement.excluded.created_at,
            "expires_at": statement.excluded.expires_at,
            "locked_until": statement.excluded.locked_until,
        },
        where=(col(IdempotencyKey.expires_at) <= now)
        | (
            col(IdempotencyKey.response_status).is_(None)
            & (col(IdempotencyKey.locked_until) <= now)
            & (col(IdempotencyKey.fingerprint) == statement.excluded.fingerprint)
        ),
    )
    claimed = await connection.scalar(statement.returning(col(IdempotencyKey.id)))
    if claimed is not None:
        return Claim(claimed, lease)
    row = (
        await connection.execute(
            select(
                col(IdempotencyKey.fingerprint),
                col(IdempotencyKey.response_status),
                col(IdempotencyKey.response_headers),
                col(IdempotencyKey.response_body),
                col(IdempotencyKey.locked_until),
            ).where(col(IdempotencyKey.user_id) == user_id, col(IdempotencyKey.key) == key)
        )
    ).first()
    if row is None:
        return None
    return Existing(
        row.fingerprint,
        row.response_status,
        row.response_headers,
        row.response_body,
        row.locked_until,
    )


def _owned(claim: Claim) -> tuple[object, ...]:
    return (
        col(IdempotencyKey.id) == claim.id,
        col(IdempotencyKey.locked_until) == claim.lease,
        col(IdempotencyKey.response_status).is_(None),
    )


async def store_response(
    connection: AsyncConnection,
    claim: Claim,
    *,
    status: int,
    headers: list[list[str]],
    body: bytes,
) -> None:
    """Keep the answer for replays (only while this request still owns the key)."""
    await connection.execute(
        update(IdempotencyKey)
        .where(*_owned(claim))  # type: ignore[arg-type]
        .values(response_status=status, response_headers=headers, response_body=body)
    )


async def free_key(connection: AsyncConnection, claim: Claim) -> None:
    """Give the key back: the request failed or died, so the same key may run anew."""
    await connection.execute(delete(IdempotencyKey).where(*_owned(claim)))  # type: ignore[arg-type]


async def delete_expired_keys(session: AsyncSession, *, now: datetime) -> int:
    """The scheduled cleanup: drop every key past its expiry (index on expires_at)."""
    result = await session.execute(
        delete(IdempotencyKey).where(col(IdempotencyKey.expires_at) <= now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
