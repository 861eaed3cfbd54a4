"""Creating, listing and revoking a user's API tokens; always inside the caller's transaction."""

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.audit import service as audit_service
from api.audit.models import AuditAction
from api.errors import Conflict, NotFound
from api.pagination import PageParams, Total, paginate
from api.tokens.models import (
    SHOWN_PREFIX_LENGTH,
    ApiToken,
    ApiTokenCreate,
    hash_api_token,
    new_token,
)

MAX_TOKENS_PER_USER = 50
TARGET_TYPE = "api_token"
# The owner's row, locked while a token is added: two creations for one user take turns, so
# the limit holds under concurrency. (Named here, not imported: api.users sits above.)
_USER = sa.table("user", sa.column("id"))
NEWEST_FIRST = (col(ApiToken.created_at).desc(), col(ApiToken.id).desc())


class ApiTokenNotFound(NotFound):
    """No API token of the caller has this id."""

    code = "API_TOKEN_NOT_FOUND"


class ApiTokenLimitReached(Conflict):
    """The caller holds the most API tokens allowed (50): delete one first."""

    code = "API_TOKEN_LIMIT_REACHED"
    example_reason = f"A user holds at most {MAX_TOKENS_PER_USER} API tokens: delete one first"


def _described(token: ApiToken) -> dict[str, Any]:
    """What an audit entry keeps of a token: never the token or its hash."""
    return {
        "name": token.name,
        "scopes": list(token.scopes),
        "token_prefix": token.token_prefix,
        "expires_at": token.expires_at,
    }


async def create_token(
    session: AsyncSession, *, user_id: uuid.UUID, token_in: ApiTokenCreate
) -> tuple[ApiToken, str]:
    """A new token of the user, and the token itself (only its hash is stored)."""
    # FOR NO KEY UPDATE: creations take turns; other writes naming the user are not held up.
    await session.execute(
        select(_USER.c.id).where(_USER.c.id == user_id).with_for_update(key_share=True)
    )
    held = await session.scalar(
        select(func.count()).select_from(ApiToken).where(col(ApiToken.user_id) == user_id)
    )
    if (held or 0) >= MAX_TOKENS_PER_USER:
        raise ApiTokenLimitReached(
            reason=f"A user holds at most {MAX_TOKENS_PER_USER} API tokens: delete one first"
        )
    token = new_token()
    api_token = ApiToken(
        user_id=user_id,
        name=token_in.name,
        scopes=list(dict.fromkeys(token_in.scopes)),
        expires_at=token_in.expires_at,
        token_hash=hash_api_token(token),
        token_prefix=token[:SHOWN_PREFIX_LENGTH],
    )
    session.add(api_token)
    await session.flush()
    await audit_service.record(
        session,
        actor_id=user_id,
        action=AuditAction.API_TOKEN_CREATED,
        target_type=TARGET_TYPE,
        target_id=api_token.id,
        after=_described(api_token),
    )
    return api_token, token


async def list_tokens(
    session: AsyncSession, *, user_id: uuid.UUID, params: PageParams
) -> tuple[Sequence[ApiToken], Total]:
    """A page of the user's tokens, newest first; expired ones stay until deleted."""
    statement = select(ApiToken).where(col(ApiToken.user_id) == user_id).order_by(*NEWEST_FIRST)
    return await paginate(session, statement, params)


async def list_all_tokens(session: AsyncSession, *, user_id: uuid.UUID) -> Sequence[ApiToken]:
    """Every token of the user, newest first (at most MAX_TOKENS_PER_USER)."""
    found = await session.scalars(
        select(ApiToken).where(col(ApiToken.user_id) == user_id).order_by(*NEWEST_FIRST)
    )
    return found.all()


async def revoke_token(session: AsyncSession, *, user_id: uuid.UUID, token_id: uuid.UUID) -> None:
    """Delete one of the user's tokens; another user's is not found, like an unknown one."""
    api_token = await session.scalar(
        select(ApiToken).where(col(ApiToken.id) == token_id, col(ApiToken.user_id) == user_id)
    )
    if api_token is None:
        raise ApiTokenNotFound()
    await audit_service.record(
        session,
        actor_id=user_id,
        action=AuditAction.API_TOKEN_REVOKED,
        target_type=TARGET_TYPE,
        target_id=api_token.id,
        before=_described(api_token),
    )
    await session.delete(api_token)
    await session.flush()


async def revoke_all_tokens(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Delete every token of the user (password change or reset, deactivation)."""
    await session.execute(delete(ApiToken).where(col(ApiToken.user_id) == user_id))
