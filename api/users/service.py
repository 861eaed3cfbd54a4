"""Account rules that fastapi-users does not cover: roles, staff edits, unlocks, the last admin."""

import uuid
from collections.abc import Sequence
from typing import Any

from fastapi_users import exceptions
from sqlalchemy import Row, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.audit import service as audit_service
from api.audit.models import AuditAction
from api.db import contains_pattern
from api.errors import Conflict, Forbidden, NotFound
from api.notifications.models import NotificationKind
from api.notifications.service import announce
from api.outbox.models import DomainEventType
from api.pagination import PageParams, Total, paginate_rows
from api.tokens import service as token_service
from api.users.models import (
    ANNOUNCED_USER_FIELDS,
    USER_READ_COLUMNS,
    AccessToken,
    User,
    UserDeleted,
    UserRead,
    UserRole,
    UserSort,
)

SORTS = {
    UserSort.CREATED_AT: (col(User.created_at).asc(), col(User.id).asc()),
    UserSort.CREATED_AT_DESC: (col(User.created_at).desc(), col(User.id).desc()),
    UserSort.EMAIL: (func.lower(User.email).asc(), col(User.id).asc()),
    UserSort.NICKNAME: (func.lower(User.nickname).asc(), col(User.id).asc()),
}


class LastAdmin(Conflict):
    """The last active admin cannot be demoted, deactivated or deleted."""

    code = "LAST_ADMIN"
    example_reason = "The last admin cannot be demoted, deactivated or deleted"


class UserNotFound(NotFound):
    """No user has this id (or nickname)."""

    code = "USER_NOT_FOUND"


class NicknameTaken(Conflict):
    """Another user has this nickname (nicknames compare case-insensitively)."""

    code = "NICKNAME_TAKEN"


class CannotChangeOwnRole(Forbidden):
    """An admin cannot change their own role: another admin must."""

    code = "CANNOT_CHANGE_OWN_ROLE"
    example_reason = "Admins cannot change their own role"


def _constraint_name(error: IntegrityError) -> str | None:
    return getattr(getattr(error.orig, "__cause__", None), "constraint_name", None)


async def save_user(session: AsyncSession, user: User) -> User:
    """Flush one user in a savepoint; the unique indexes decide duplicates, even under races."""
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError as error:
        name = _constraint_name(error)
        if name == "uq_user_email_lower":
            raise exceptions.UserAlreadyExists() from error
        if name == "uq_user_nickname_lower":
            raise NicknameTaken() from error
        raise
    return user


def announced_fields(user: User) -> dict[str, Any]:
    """What a `user.updated` domain event is about, as it stands: taken before a change and
    handed to announce_user_update() after it."""
    return {field: getattr(user, field) for field in ANNOUNCED_USER_FIELDS}


async def announce_user_created(session: AsyncSession, user: User) -> None:
    await session.flush()
    await announce(session, DomainEventType.USER_CREATED, UserRead.model_validate(user))


async def announce_user_update(
    session: AsyncSession,
    user: User,
    before: dict[str, Any],
    *,
    kind: NotificationKind | None = None,
    **context: Any,
) -> None:
    """`user.updated` (the user as staff see it) when an announced field changed since `before`,
    with the notice of `kind` to the user; nothing at all when none changed."""
    if announced_fields(user) == before:
        return
    await session.flush()  # the row lock taken, updated_at set
    await announce(
        session,
        DomainEventType.USER_UPDATED,
        UserRead.model_validate(user),
        notify=[user],
        kind=kind,
        **context,
    )


async def announce_user_deleted(session: AsyncSession, user: User) -> None:
    await announce(session, DomainEventType.USER_DELETED, UserDeleted(id=user.id))


async def revoke_tokens(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Every login token and API token of the user stops working (password change or reset,
    deactivation)."""
    await session.execute(delete(AccessToken).where(col(AccessToken.user_id) == user_id))
    await token_service.revoke_all_tokens(session, user_id=user_id)


async def ensure_not_last_admin(
    session: AsyncSession, user: User, *, becoming: UserRole | None
) -> None:
    """Refuse to remove the last active admin (demotion, deactivation or deletion).

    The admin rows are locked first, so two admins demoting each other at once cannot both win.
    """
    if user.role is not UserRole.ADMIN or becoming is UserRole.ADMIN:
        return
    admins = await session.scalars(
        select(col(User.id))
        .where(col(User.role) == UserRole.ADMIN, col(User.is_active).is_(True))
        .with_for_update()
    )
    if set(admins.all()) <= {user.id}:
        raise LastAdmin(reason="The last admin cannot be demoted, deactivated or deleted")


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound()
    return user


async def get_user_by_nickname(session: AsyncSession, nickname: str) -> User:
    user = await session.scalar(
        select(User).where(
            func.lower(User.nickname) == nickname.lower(),
            col(User.is_active).is_(True),
        )
    )
    if user is None:
        raise UserNotFound()
    return user


async def list_users(
    session: AsyncSession,
    *,
    params: PageParams,
    q: str | None = None,
    role: UserRole | None = None,
    is_professional: bool | None = None,
    is_locked: bool | None = None,
    is_verified: bool | None = None,
    sort: UserSort = UserSort.CREATED_AT,
) -> tuple[Sequence[Row[Any]], Total]:
    """A page of users as rows of USER_READ_COLUMNS (read only: no ORM instances)."""
    statement = select(*USER_READ_COLUMNS)
    if q:
        pattern = contains_pattern(q)
        statement = statement.where(
            or_(
                *(
                    col(column).ilike(pattern, escape="\\")
                    for column in (User.email, User.nickname, User.first_name, User.last_name)
                )
            )
        )
    if role is not None:
        statement = statement.where(col(User.role) == role)
    if is_professional is not None:
        statement = statement.where(col(User.is_professional).is_(is_professional))
    if is_verified is not None:
        statement = statement.where(col(User.is_verified).is_(is_verified))
    if is_locked is not None:
        locked = col(User.locked_until) > clock.now()
        statement = statement.where(
            locked if is_locked else or_(~locked, col(User.locked_until).is_(None))
        )
    return await paginate_rows(session, statement.order_by(*SORTS[sort]), params)


def _changes(user: User, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The before/after pair of the fields that really change."""
    before = {k: getattr(user, k) for k, v in values.items() if getattr(user, k) != v}
    return before, {k: values[k] for k in before}


async def set_user_role(
    session: AsyncSession, *, actor: User, user: User, role: UserRole, reason: str | None
) -> User:
    if user.id == actor.id:
        raise CannotChangeOwnRole(reason="Admins cannot change their own role")
    if user.role is role:
        return user
    await ensure_not_last_admin(session, user, becoming=role)
    old_role = user.role
    announced = announced_fields(user)
    before, after = _changes(user, {"role": role, "is_superuser": role is UserRole.ADMIN})
    if role is not UserRole.ANONYMOUS and not user.is_verified:
        # Staff vouch for the account: a role above ANONYMOUS implies a verified email.
        before["is_verified"], after["is_verified"] = False, True
    for key, value in after.items():
        setattr(user, key, value)
    session.add(user)
    await audit_service.record(
        session,
        actor_id=actor.id,
        action=AuditAction.ROLE_CHANGED,
        target_type="user",
        target_id=user.id,
        before=before,
        after=after,
        reason=reason,
    )
    await announce_user_update(
        session,
        user,
        announced,
        kind=NotificationKind.ROLE_CHANGED,
        old_role=old_role.value,
        new_role=role.value,
        reason=reason,
    )
    return user


async def set_professional_status(
    session: AsyncSession, *, actor: User, user: User, is_professional: bool, reason: str | None
) -> User:
    if user.is_professional is is_professional:
        return user
    announced = announced_fields(user)
    before = {
        "is_professional": user.is_professional,
        "professional_status_updated_at": user.professional_status_updated_at,
    }
    user.is_professional = is_professional
    user.professional_status_updated_at = clock.now()
    session.add(user)
    await audit_service.record(
        session,
        actor_id=actor.id,
        action=AuditAction.PROFESSIONAL_STATUS_CHANGED,
        target_type="user",
        target_id=user.id,
        before=before,
        after={
            "is_professional": user.is_professional,
            "professional_status_updated_at": user.professional_status_updated_at,
        },
        reason=reason,
    )
    await announce_user_update(
        session,
        user,
        announced,
        kind=NotificationKind.PRO_STATUS_CHANGED,
        is_professional=is_professional,
        reason=reason,
    )
    return user


async def unlock_user(session: AsyncSession, *, actor: User, user: User) -> User:
    # The entry speaks the API's language (is_locked), not the lockout internals, which no
    # response shows (AC-2), the audit log included.
    before = {"is_locked": user.is_locked}
    user.failed_login_count = 0
    user.locked_until = None
    session.add(user)
    await audit_service.record(
        session,
        actor_id=actor.id,
        action=AuditAction.USER_UNLOCKED,
        target_type="user",
        target_id=user.id,
        before=before,
        after={"is_locked": False},
    )
    return user


async def update_user_by_staff(
    session: AsyncSession, *, actor: User, user: User, values: dict[str, Any]
) -> User:
    """Apply a staff edit of profile fields or activation, with its audit entry."""
    before, after = _changes(user, values)
    if not after:
        return user
    if after.get("is_active") is False:
        await ensure_not_last_admin(session, user, becoming=None)
        await revoke_tokens(session, user.id)
    await audit_service.record(
        session,
        actor_id=actor.id,
        action=AuditAction.USER_UPDATED_BY_STAFF,
        target_type="user",
        target_id=user.id,
        before=before,
        after=after,
    )
    announced = announced_fields(user)
    for key, value in after.items():
        setattr(user, key, value)
    await save_user(session, user)
    await announce_user_update(session, user, announced)
    return user


async def record_deletion(session: AsyncSession, *, actor: User, user: User) -> None:
    await audit_service.record(
        session,
        actor_id=actor.id,
        action=AuditAction.USER_DELETED,
        target_type="user",
        target_id=user.id,
        # Personal data goes with the account: the entry keeps only what the role change needs.
        before={"role": user.role},
    )
