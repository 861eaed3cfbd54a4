"""Authentication wiring: opaque database tokens, the fastapi-users object and role checks."""

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, cast

import structlog
from fastapi import BackgroundTasks, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi_users import BaseUserManager, FastAPIUsers
from fastapi_users.authentication import AuthenticationBackend, BearerTransport
from fastapi_users.authentication.strategy.db import DatabaseStrategy
from fastapi_users.openapi import OpenAPIResponseType
from sqlalchemy import Row, Select, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col
from starlette.requests import HTTPConnection

from api import clock
from api.config import settings
from api.db import SessionDep, open_session
from api.errors import AppError, Forbidden, InsufficientScope, Unauthorized
from api.tokens.dependencies import check_scope
from api.tokens.models import ApiToken, hash_api_token, is_api_token
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


log = structlog.get_logger(__name__)

bearer_transport = RevocableBearerTransport(tokenUrl="/api/v1/auth/login")


def _by_live_token(*columns: Any) -> Select[Any]:
    """`columns` of the active user holding the login token (:token, hashed) issued since :oldest.

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


def _by_live_api_token(*columns: Any) -> Select[Any]:
    """The twin of _by_live_token for an API token (:token, hashed) that has not expired by
    :now: the same `columns`, plus the token's id, scopes and last use. Still one statement."""
    return (
        select(
            *columns,
            col(ApiToken.id).label("api_token_id"),
            col(ApiToken.scopes).label("api_token_scopes"),
            col(ApiToken.last_used_at).label("api_token_last_used_at"),
        )
        .join(ApiToken, col(ApiToken.user_id) == col(User.id))
        .where(
            col(ApiToken.token_hash) == bindparam("token"),
            col(ApiToken.expires_at) > bindparam("now"),
            col(User.is_active),
        )
    )


@dataclass(frozen=True)
class TokenLookup:
    """One read of the caller, as a statement for login tokens and its API-token twin."""

    login: Select[Any]
    api: Select[Any]
    orm: bool = False  # rows of ORM entities (run on the session, not its connection)


def _lookup(*columns: Any, orm: bool = False) -> TokenLookup:
    return TokenLookup(_by_live_token(*columns), _by_live_api_token(*columns), orm)


USER_BY_TOKEN = _lookup(User, orm=True)
# Reads that only check who is asking (optional_viewer).
VIEWER_BY_TOKEN = _lookup(col(User.id), col(User.role))
# GET /users/me: the columns of UserRead.
ACCOUNT_BY_TOKEN = _lookup(*USER_READ_COLUMNS)
# Who holds a token, for callers outside a route (user_id_for_token).
OWNER_BY_TOKEN = _lookup(col(User.id))
API_TOKEN_COLUMNS = ("api_token_id", "api_token_scopes", "api_token_last_used_at")
# last_used_at is written when the value read is older than this, so at most once a minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _token_parameters(token: str) -> dict[str, Any]:
    if is_api_token(token):
        return {"token": hash_api_token(token), "now": clock.now()}
    oldest = clock.now() - timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
    return {"token": hash_token(token), "oldest": oldest}


async def _execute(
    db: AsyncSession | AsyncConnection, lookup: TokenLookup, token: str
) -> Row[Any] | None:
    statement = lookup.api if is_api_token(token) else lookup.login
    if isinstance(db, AsyncSession) and not lookup.orm:
        db = await db.connection()  # Core rows: no identity map, no change tracking
    return (await db.execute(statement, _token_parameters(token))).first()


async def _find_caller(
    session: AsyncSession,
    token: str | None,
    lookup: TokenLookup,
    connection: HTTPConnection,
    background: BackgroundTasks | None,
) -> Row[Any] | None:
    """The row of the live token's holder, or None (no token, or a dead login token).

    An API token is 401 when dead (on every route that takes a token, public reads included),
    403 INSUFFICIENT_SCOPE when the route is outside its scopes: both before anything else.
    """
    if not token:
        return None
    row = await _execute(session, lookup, token)
    if not is_api_token(token):
        return row
    if row is None:
        raise Unauthorized()
    check_scope(connection, row.api_token_scopes)
    last_used = row.api_token_last_used_at
    now = clock.now()
    if background is not None and (last_used is None or last_used < now - LAST_USED_RESOLUTION):
        background.add_task(_record_use, connection, row.api_token_id)
    return row


async def _record_use(connection: HTTPConnection, token_id: uuid.UUID) -> None:
    """Set last_used_at after the response, in a short session of its own; a failure is
    logged and changes nothing (the answer is already sent)."""
    now = clock.now()
    try:
        async with open_session(connection) as session:
            await session.execute(
                update(ApiToken)
                .where(
                    col(ApiToken.id) == token_id,
                    or_(
                        col(ApiToken.last_used_at).is_(None),
                        col(ApiToken.last_used_at) < now - LAST_USED_RESOLUTION,
                    ),
                )
                .values(last_used_at=now)
            )
            await session.commit()
    except Exception:  # noqa: BLE001 - bookkeeping only: never the request's concern
        log.warning("api_token_last_used_not_written", token_id=str(token_id), exc_info=True)


async def find_user_by_token(session: AsyncSession, token: str | None) -> User | None:
    """The active user holding a live login token: token and user read in one statement."""
    if not token or is_api_token(token):
        return None
    row = await _execute(session, USER_BY_TOKEN, token)
    return None if row is None else cast(User, row[0])


async def user_id_for_token(
    db: AsyncSession | AsyncConnection, token: str | None
) -> uuid.UUID | None:
    """The id of the live owner of a bearer token of either kind (no scope checked), else None."""
    if not token:
        return None
    row = await _execute(db, OWNER_BY_TOKEN, token)
    return None if row is None else cast(uuid.UUID, row.id)


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
        if token and is_api_token(token):
            # Its routes (logout) are for login tokens only: a live API token is refused.
            if await user_id_for_token(self.database.session, token) is not None:
                raise InsufficientScope(None)
            return None
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
# for every request before the same lookup). An API token is checked against the route's scope
# here, right after the 401 decision: before 404s, roles, ownership and body errors.
async def current_active_user(
    token: BearerToken, session: SessionDep, request: Request, background: BackgroundTasks
) -> User:
    """The caller; 401 (WWW-Authenticate: Bearer) without a live token of an active account."""
    row = await _find_caller(session, token, USER_BY_TOKEN, request, background)
    if row is None:
        raise Unauthorized()
    return cast(User, row[0])


async def optional_user(
    token: BearerToken, session: SessionDep, request: Request, background: BackgroundTasks
) -> User | None:
    """The caller, or None for anonymous callers and dead login tokens alike."""
    row = await _find_caller(session, token, USER_BY_TOKEN, request, background)
    return None if row is None else cast(User, row[0])


async def optional_viewer(
    token: BearerToken, session: SessionDep, request: Request, background: BackgroundTasks
) -> Viewer | None:
    """optional_user for reads that need only the caller's id and role: a Core row of those."""
    row = await _find_caller(session, token, VIEWER_BY_TOKEN, request, background)
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


async def current_account(
    token: BearerToken, session: SessionDep, request: Request, background: BackgroundTasks
) -> UserRead:
    """GET /users/me: the caller's own account, read straight into its public shape.

    The same lookup and the same 401 as current_active_user, as Core rows of exactly the
    columns shown: nothing will change the user, so an ORM instance would be tracked for nothing.
    """
    row = await _find_caller(session, token, ACCOUNT_BY_TOKEN, request, background)
    if row is None:
        raise Unauthorized()
    return user_read(row, leave_out=API_TOKEN_COLUMNS)


CurrentAccount = Annotated[UserRead, Depends(current_account)]


async def refusal_before_body(request: Request) -> AppError | None:
    """For a body FastAPI could not parse (it answers before any dependency runs): the 401 or
    403 INSUFFICIENT_SCOPE an API token would have met first on a route that takes a token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not is_api_token(token) or not takes_token(request):
        return None
    async with open_session(request) as session:
        row = await _execute(session, OWNER_BY_TOKEN, token)
    if row is None:
        return Unauthorized()
    try:
        check_scope(request, row.api_token_scopes)
    except InsufficientScope as refused:
        return refused
    return None


def takes_token(request: Request) -> bool:
    """Whether the matched route reads a bearer token (a dependency of it uses the scheme)."""
    route = request.scope.get("route")
    return isinstance(route, APIRoute) and _reads_bearer(route.dependant)


def _reads_bearer(dependant: Dependant) -> bool:
    return any(
        sub.call is bearer_transport.scheme or _reads_bearer(sub) for sub in dependant.dependencies
    )


def require_roles(*roles: UserRole) -> Callable[[User], Coroutine[Any, Any, User]]:
    """A dependency that lets through only users holding one of `roles` (read on every request)."""

    async def check_role(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden()
        return user

    return check_role


ManagerUser = Annotated[User, Depends(require_roles(UserRole.MANAGER, UserRole.ADMIN))]
AdminUser = Annotated[User, Depends(require_roles(UserRole.ADMIN))]
