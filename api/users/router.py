"""The /users and /profiles routes that fastapi-users does not provide."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi_users import exceptions

from api.db import SessionDep
from api.errors import Forbidden, Unauthorized
from api.openapi import error_responses
from api.pagination import PageParamsDep
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users import service as user_service
from api.users.auth import AdminUser, CurrentAccount, CurrentUser, ManagerUser, VerifiedUser
from api.users.dependencies import UserDep, UserManagerDep
from api.users.errors import (
    CurrentPasswordInvalid,
    RegisterInvalidPassword,
    RegisterUserAlreadyExists,
    UpdateUserEmailAlreadyExists,
    UpdateUserInvalidPassword,
)
from api.users.models import (
    ProfessionalStatusChange,
    RoleChange,
    UserAdminCreate,
    UserPage,
    UserPublic,
    UserRead,
    UserRole,
    UserSort,
    UserStaffUpdate,
    UserUpdate,
    user_read,
)

router = APIRouter(prefix="/users", tags=["users"])
profiles_router = APIRouter(prefix="/profiles", tags=["users"])

# Who may not call a route at all: no token, or a role that may not (an unverified user too).
ACCESS_ERRORS = (Unauthorized, Forbidden)


@router.get(
    "/me",
    summary="Get your account",
    response_model=UserRead,
    responses=error_responses(Unauthorized),
    openapi_extra=token_scope(Scope.USERS_READ),
)
async def get_my_account(account: CurrentAccount) -> UserRead:
    """The caller's own account."""
    return account


@router.patch(
    "/me",
    summary="Update your account",
    response_model=UserRead,
    responses=error_responses(
        Unauthorized,
        UpdateUserEmailAlreadyExists,
        UpdateUserInvalidPassword,
        CurrentPasswordInvalid,
        user_service.NicknameTaken,
    ),
)
async def update_my_account(
    user_in: UserUpdate, user: CurrentUser, user_manager: UserManagerDep, request: Request
) -> UserRead:
    """Edit own profile; a new password needs `current_password`; a new email is re-verified."""
    try:
        updated = await user_manager.update(user_in, user, safe=True, request=request)
    except exceptions.UserAlreadyExists as e:
        raise UpdateUserEmailAlreadyExists() from e
    except exceptions.InvalidPasswordException as e:
        raise UpdateUserInvalidPassword(reason=str(e.reason)) from e
    return UserRead.model_validate(updated)


@router.delete(
    "/me",
    summary="Delete your account",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized, user_service.LastAdmin),
)
async def delete_my_account(
    user: CurrentUser, user_manager: UserManagerDep, request: Request
) -> Response:
    """Delete the caller's account and personal data; every token stops working."""
    await user_manager.delete(user, request=request)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "",
    summary="List users",
    response_model=UserPage,
    responses=error_responses(*ACCESS_ERRORS),
    openapi_extra=token_scope(Scope.USERS_READ),
)
async def list_users(
    session: SessionDep,
    _: ManagerUser,
    params: PageParamsDep,
    request: Request,
    q: Annotated[
        str | None, Query(max_length=200, description="email, nickname or name contains")
    ] = None,
    role: UserRole | None = None,
    is_professional: bool | None = None,
    is_locked: bool | None = None,
    is_verified: bool | None = None,
    sort: UserSort = UserSort.CREATED_AT,
) -> UserPage:
    """Users, filtered and sorted (managers and admins)."""
    users, total = await user_service.list_users(
        session,
        params=params,
        q=q,
        role=role,
        is_professional=is_professional,
        is_locked=is_locked,
        is_verified=is_verified,
        sort=sort,
    )
    return UserPage.build(
        [user_read(row) for row in users], total=total, params=params, request=request
    )


@router.post(
    "",
    summary="Create a user",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(*ACCESS_ERRORS, RegisterUserAlreadyExists, RegisterInvalidPassword),
)
async def create_user(
    user_in: UserAdminCreate, _: AdminUser, user_manager: UserManagerDep, request: Request
) -> UserRead:
    """Create a verified account with a role (admins)."""
    try:
        user = await user_manager.create(user_in, safe=False, request=request)
    except exceptions.UserAlreadyExists as e:
        raise RegisterUserAlreadyExists() from e
    except exceptions.InvalidPasswordException as e:
        raise RegisterInvalidPassword(reason=str(e.reason)) from e
    return UserRead.model_validate(user)


@router.get(
    "/{user_id}",
    summary="Get a user",
    response_model=UserRead,
    responses=error_responses(*ACCESS_ERRORS, user_service.UserNotFound),
    openapi_extra=token_scope(Scope.USERS_READ),
)
async def get_user(_: ManagerUser, user: UserDep) -> UserRead:
    """One user (managers and admins)."""
    return UserRead.model_validate(user)


@router.patch(
    "/{user_id}",
    summary="Update a user",
    response_model=UserRead,
    responses=error_responses(
        *ACCESS_ERRORS,
        user_service.UserNotFound,
        user_service.NicknameTaken,
        user_service.LastAdmin,
    ),
)
async def update_user(
    user_in: UserStaffUpdate, actor: ManagerUser, user: UserDep, session: SessionDep
) -> UserRead:
    """Edit a user's profile fields or deactivate/reactivate the account (managers and admins)."""
    values = {
        key: value
        for key, value in user_in.model_dump(exclude_unset=True).items()
        if value is not None or key not in ("nickname", "is_active")
    }
    updated = await user_service.update_user_by_staff(
        session, actor=actor, user=user, values=values
    )
    return UserRead.model_validate(updated)


@router.delete(
    "/{user_id}",
    summary="Delete a user",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*ACCESS_ERRORS, user_service.UserNotFound, user_service.LastAdmin),
)
async def delete_user(
    actor: AdminUser,
    user: UserDep,
    session: SessionDep,
    user_manager: UserManagerDep,
    request: Request,
) -> Response:
    """Delete an account (admins)."""
    await user_service.record_deletion(session, actor=actor, user=user)
    await user_manager.delete(user, request=request)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{user_id}/role",
    summary="Change a user's role",
    response_model=UserRead,
    responses=error_responses(
        *ACCESS_ERRORS,
        user_service.CannotChangeOwnRole,
        user_service.UserNotFound,
        user_service.LastAdmin,
    ),
)
async def set_user_role(
    change: RoleChange, actor: AdminUser, user: UserDep, session: SessionDep
) -> UserRead:
    """Change a user's role (admins, not on their own account); audited and notified."""
    updated = await user_service.set_user_role(
        session, actor=actor, user=user, role=change.role, reason=change.reason
    )
    return UserRead.model_validate(updated)


@router.put(
    "/{user_id}/professional",
    summary="Set a user's professional status",
    response_model=UserRead,
    responses=error_responses(*ACCESS_ERRORS, user_service.UserNotFound),
)
async def set_professional_status(
    change: ProfessionalStatusChange, actor: ManagerUser, user: UserDep, session: SessionDep
) -> UserRead:
    """Grant or withdraw professional status (managers and admins); audited and notified."""
    updated = await user_service.set_professional_status(
        session,
        actor=actor,
        user=user,
        is_professional=change.is_professional,
        reason=change.reason,
    )
    return UserRead.model_validate(updated)


@router.post(
    "/{user_id}/unlock",
    summary="Unlock a user",
    response_model=UserRead,
    responses=error_responses(*ACCESS_ERRORS, user_service.UserNotFound),
)
async def unlock_user(actor: ManagerUser, user: UserDep, session: SessionDep) -> UserRead:
    """Lift a login lockout and reset the failure count (managers and admins); audited."""
    updated = await user_service.unlock_user(session, actor=actor, user=user)
    return UserRead.model_validate(updated)


@profiles_router.get(
    "/{nickname}",
    summary="Get a public profile",
    response_model=UserPublic,
    responses=error_responses(*ACCESS_ERRORS, user_service.UserNotFound),
    openapi_extra=token_scope(Scope.USERS_READ),
)
async def get_profile(nickname: str, _: VerifiedUser, session: SessionDep) -> UserPublic:
    """A user's public profile (verified users)."""
    return UserPublic.model_validate(await user_service.get_user_by_nickname(session, nickname))
