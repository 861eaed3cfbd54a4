"""Authentication wiring: opaque database tokens, the fastapi-users object and role checks."""

import uuid
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends
from fastapi_users import BaseUserManager, FastAPIUsers
from fastapi_users.authentication import AuthenticationBackend, BearerTransport
from fastapi_users.authentication.strategy.db import DatabaseStrategy
from fastapi_users.openapi import OpenAPIResponseType
from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.db import SessionDep
from api.errors import Forbidden, Unauthorized
from api.users.manager import AccessTokenDatabase, get_access_token_db, get_user_manager
from api.users.models import (
    USER_READ_COLUMNS,
    AccessToken,
    User,
    UserRead,
    UserRole,
    Viewer,
    hash_token,
    user_read,
)


class RevocableBearerTransport(BearerTransport):
    """Bearer tokens whose logout (204, the token revoked) is documented in the OpenAPI."""

    @staticmethod
    def get_openapi_logout_responses_success() -> OpenAPIResponseType:
        return {204: {"description": "Logged out: the token is revoked"}}


bearer_transport = RevocableBearerTransport(tokenUrl="/api/v1/auth/login")


def _by_live_token(*columns: Any) -> Select[Any]:
    """`columns` of the active user holding the token (:token, hashed) issued since :oldest.

    An inactive account's token finds nothing, exactly like an expired, revoked or unknown one.
    Built once: the lookup runs on every authenticated request.
    """
    return (
        select(*columns)
        .join(AccessToken, col(AccessToken.user_id) == col(User.id))
        .where(
            col(AccessToken.token) == bindparam("token"),
            col(AccessToken.created_at) >= bindparam("oldest"),
            col(User.is_active),
        )
    )


USER_BY_TOKEN = _by_live_token(User)
# Reads that only check who is asking (optional_viewer).
VIEWER_BY_TOKEN = _by_live_token(col(User.id), col(User.role))
# GET /users/me: the columns of UserRead.
ACCOUNT_BY_TOKEN = _by_live_token(*USER_READ_COLUMNS)


def _token_parameters(token: str) -> dict[str, Any]:
    oldest = clock.now() - timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
    return {"token": hash_token(token), "oldest": oldest}


USER_ID_BY_TOKEN = _by_live_token(col(User.id))


async def user_id_for_token(
    executor: AsyncSession | AsyncConnection, token: str | None
) -> uuid.UUID | None:
    """The id of the active user holding a live bearer token, for code that runs before any
    route (the Idempotency-Key middleware); None for no token or a dead one."""
    if not token:
        return None
    user_id: uuid.UUID | None = await executor.scalar(USER_ID_BY_TOKEN, _token_parameters(token))
    return user_id


async def find_user_by_token(session: AsyncSession, token: str | None) -> User | None:
    """The active user holding a live bearer token: token and user read in one statement."""
    if not token:
        return None
    found = await session.scalars(USER_BY_TOKEN, _token_parameters(token))
    return found.first()


class UserTokenStrategy(DatabaseStrategy[User, uuid.UUID, AccessToken]):
    """Database tokens, not JWTs: logout, password change and deactivation revoke them at once.

    fastapi-users' own routes (logout) read tokens through this strategy; every other route
    uses the dependencies below, which run the same lookup.
    """

    database: AccessTokenDatabase

    async def read_token(
        self,
        token: str | None,
        user_manager: BaseUserManager[User, uuid.UUID],  # noqa: ARG002 (fastapi-users' signature)
    ) -> User | None:
        return await find_user_by_token(self.database.session, token)


async def get_database_strategy(  # async: no thread-pool hop per request
    access_token_db: Annotated[AccessTokenDatabase, Depends(get_access_token_db)],
) -> UserTokenStrategy:
    return UserTokenStrategy(
        access_token_db, lifetime_seconds=settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
    )


auth_backend = AuthenticationBackend(
    name="database", transport=bearer_transport, get_strategy=get_database_strategy
)

fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])

# The bearer scheme of the transport itself: the same security scheme in the OpenAPI document
# (tokenUrl /api/v1/auth/login, so /docs "Authorize" works). It reads only the Authorization
# header: a token in the query string or a cookie is not looked at.
BearerToken = Annotated[str | None, Depends(bearer_transport.scheme)]


# The current-user dependencies: one statement on the request's own session, instead of
# fastapi-users' authenticator (user manager, user database, token database and strategy built
# for every request before the same lookup).
async def current_active_user(token: BearerToken, session: SessionDep) -> User:
    """The caller; 401 (WWW-Authenticate: Bearer) without a live token of an active account."""
    user = await find_user_by_token(session, token)
    if user is None:
        raise Unauthorized()
    return user


async def optional_user(token: BearerToken, session: SessionDep) -> User | None:
    """The caller, or None for anonymous callers and dead tokens alike."""
    return await find_user_by_token(session, token)


async def optional_viewer(token: BearerToken, session: SessionDep) -> Viewer | None:
    """optional_user for reads that need only the caller's id and role: a Core row of those."""
    if not token:
        return None
    connection = await session.connection()
    row = (await connection.execute(VIEWER_BY_TOKEN, _token_parameters(token))).first()
    return None if row is None else Viewer(row.id, row.role)


CurrentUser = Annotated[User, Depends(current_active_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
OptionalViewer = Annotated[Viewer | None, Depends(optional_viewer)]


async def current_verified_user(user: CurrentUser) -> User:
    """The caller, if their email is verified; 403 otherwise."""
    if not user.is_verified:
        raise Forbidden()
    return user


VerifiedUser = Annotated[User, Depends(current_verified_user)]


async def current_account(token: BearerToken, session: SessionDep) -> UserRead:
    """GET /users/me: the caller's own account, read straight into its public shape.

    The same lookup and the same 401 as current_active_user, as Core rows of exactly the
    columns shown: nothing will change the user, so an ORM instance would be tracked for nothing.
    """
    if not token:
        raise Unauthorized()
    connection = await session.connection()
    row = (await connection.execute(ACCOUNT_BY_TOKEN, _token_parameters(token))).first()
    if row is None:
        raise Unauthorized()
    return user_read(row)


CurrentAccount = Annotated[UserRead, Depends(current_account)]


def require_roles(*roles: UserRole) -> Callable[[User], Coroutine[Any, Any, User]]:
    """A dependency that lets through only users holding one of `roles` (read on every request)."""

    async def check_role(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden()
        return user

    return check_role


ManagerUser = Annotated[User, Depends(require_roles(UserRole.MANAGER, UserRole.ADMIN))]
AdminUser = Annotated[User, Depends(require_roles(UserRole.ADMIN))]
