"""Authentication wiring: opaque database tokens, the fastapi-users object and role checks."""

import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends
from fastapi_users import FastAPIUsers
from fastapi_users.authentication import AuthenticationBackend, BearerTransport
from fastapi_users.authentication.strategy.db import DatabaseStrategy
from fastapi_users.openapi import OpenAPIResponseType

from api.config import settings
from api.errors import Forbidden
from api.users.manager import AccessTokenDatabase, get_access_token_db, get_user_manager
from api.users.models import AccessToken, User, UserRole


class RevocableBearerTransport(BearerTransport):
    """Bearer tokens whose logout (204, the token revoked) is documented in the OpenAPI."""

    @staticmethod
    def get_openapi_logout_responses_success() -> OpenAPIResponseType:
        return {204: {"description": "Logged out: the token is revoked"}}


bearer_transport = RevocableBearerTransport(tokenUrl="/api/v1/auth/login")


def get_database_strategy(
    access_token_db: Annotated[AccessTokenDatabase, Depends(get_access_token_db)],
) -> DatabaseStrategy[User, uuid.UUID, AccessToken]:
    # Database tokens, not JWTs: logout, password change and deactivation revoke them at once.
    return DatabaseStrategy(
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
