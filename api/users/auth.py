"""Authentication wiring: opaque database tokens, the fastapi-users object and role checks."""

import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends
from fastapi_users import BaseUserManager, FastAPIUsers
from fastapi_users.authentication import AuthenticationBackend, BearerTransport
from fastapi_users.authentication.strategy.db import DatabaseStrategy
from fastapi_users.openapi import OpenAPIResponseType
from sqlalchemy import bindparam, select
from sqlmodel import col

from api import clock
from api.config import settings
from api.errors import Forbidden
from api.users.manager import AccessTokenDatabase, get_access_token_db, get_user_manager
from api.users.models import AccessToken, User, UserRole, hash_token


class RevocableBearerTransport(BearerTransport):
    """Bearer tokens whose logout (204, the token revoked) is documented in the OpenAPI."""

    @staticmethod
    def get_openapi_logout_responses_success() -> OpenAPIResponseType:
        return {204: {"description": "Logged out: the token is revoked"}}


bearer_transport = RevocableBearerTransport(tokenUrl="/api/v1/auth/login")


# Built once: the lookup runs on every authenticated request.
USER_BY_TOKEN = (
    select(User)
    .join(AccessToken, col(AccessToken.user_id) == col(User.id))
    .where(
        col(AccessToken.token) == bindparam("token"),
        col(AccessToken.created_at) >= bindparam("oldest"),
    )
)
NO_EXPIRY = datetime(1970, 1, 1, tzinfo=UTC)


class UserTokenStrategy(DatabaseStrategy[User, uuid.UUID, AccessToken]):
    """Database tokens, not JWTs: logout, password change and deactivation revoke them at once.

    The token and its user are read in one query (fastapi-users makes two), on every request,
    so a role change applies to the very next request.
    """

    database: AccessTokenDatabase

    async def read_token(
        self,
        token: str | None,
        user_manager: BaseUserManager[User, uuid.UUID],  # noqa: ARG002 (fastapi-users' signature)
    ) -> User | None:
        if token is None:
            return None
        oldest = (
            clock.now() - timedelta(seconds=self.lifetime_seconds)
            if self.lifetime_seconds
            else NO_EXPIRY
        )
        found = await self.database.session.scalars(
            USER_BY_TOKEN, {"token": hash_token(token), "oldest": oldest}
        )
        return found.first()


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

current_active_user = fastapi_users.current_user(active=True)
optional_user = fastapi_users.current_user(active=True, optional=True)
current_verified_user = fastapi_users.current_user(active=True, verified=True)

CurrentUser = Annotated[User, Depends(current_active_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
VerifiedUser = Annotated[User, Depends(current_verified_user)]


def require_roles(*roles: UserRole) -> Callable[[User], Coroutine[Any, Any, User]]:
    """A dependency that lets through only users holding one of `roles` (read on every request)."""

    async def check_role(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden()
        return user

    return check_role


ManagerUser = Annotated[User, Depends(require_roles(UserRole.MANAGER, UserRole.ADMIN))]
AdminUser = Annotated[User, Depends(require_roles(UserRole.ADMIN))]
