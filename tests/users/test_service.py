"""api.users.service rules that HTTP cannot reach alone: the last-admin guard and REL-4.

REL-4: a state change and its audit entry commit together or not at all. Each staff action runs
inside a savepoint that then fails, by an exception of the caller or by the database refusing
the audit row, and neither the change, the entry nor the mail it queued survives.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

import api.clock
from api.audit.models import AuditAction, AuditLog
from api.errors import Forbidden
from api.users import service as user_service
from api.users.models import User, UserRole
from tests.factories import create_user, queued_mail


class Boom(Exception):
    """A failure after the service call, in the same transaction."""


async def db_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    statement = (
        select(User).where(col(User.id) == user_id).execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).one()


async def audit_actions(session: AsyncSession, target_id: uuid.UUID) -> list[AuditAction]:
    rows = await session.scalars(
        select(col(AuditLog.action)).where(col(AuditLog.target_id) == target_id)
    )
    return list(rows.all())


async def admin_count(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count()).select_from(User).where(col(User.role) == UserRole.ADMIN)
    )
    return int(count or 0)


@pytest.mark.security("AC-4")
class TestEnsureNotLastAdmin:
    @pytest.mark.parametrize("becoming", [None, UserRole.MANAGER, UserRole.AUTHENTICATED])
    async def test_only_admin_refused(self, session, admin, becoming):
        assert await admin_count(session) == 1

        with pytest.raises(user_service.LastAdmin) as raised:
            await user_service.ensure_not_last_admin(session, admin, becoming=becoming)

        assert raised.value.status_code == 409
        assert raised.value.detail == {
            "code": "LAST_ADMIN",
            "reason": "The last admin cannot be demoted, deactivated or deleted",
        }

    async def test_inactive_other_admin_does_not_count(self, session, admin):
        await create_user(session, role=UserRole.ADMIN, is_active=False)

        with pytest.raises(user_service.LastAdmin):
            await user_service.ensure_not_last_admin(session, admin, becoming=None)

    async def test_other_active_admin_allows(self, session, admin):
        await create_user(session, role=UserRole.ADMIN)

        await user_service.ensure_not_last_admin(session, admin, becoming=UserRole.MANAGER)

    async def test_staying_admin_allowed(self, session, admin):
        await user_service.ensure_not_last_admin(session, admin, becoming=UserRole.ADMIN)

    @pytest.mark.parametrize("role", [UserRole.ANONYMOUS, UserRole.AUTHENTICATED, UserRole.MANAGER])
    async def test_non_admin_never_refused_even_without_admins(self, session, role):
        target = await create_user(session, role=role)
        assert await admin_count(session) == 0

        await user_service.ensure_not_last_admin(session, target, becoming=None)


class TestSetUserRole:
    @pytest.mark.security("AC-4")
    async def test_demoting_the_last_admin_409_changes_nothing(self, session, admin):
        # Over HTTP the actor is an active admin, so the target is never the last one; a
        # deactivation racing with the demotion is what this guard is there for.
        actor = await create_user(session, role=UserRole.MANAGER)

        with pytest.raises(user_service.LastAdmin):
            await user_service.set_user_role(
                session, actor=actor, user=admin, role=UserRole.MANAGER, reason=None
            )

        saved = await db_user(session, admin.id)
        assert (saved.role, saved.is_superuser) == (UserRole.ADMIN, True)
        assert await audit_actions(session, admin.id) == []
        assert await queued_mail(session) == []

    async def test_own_role_forbidden(self, session, admin):
        with pytest.raises(Forbidden) as raised:
            await user_service.set_user_role(
                session, actor=admin, user=admin, role=UserRole.MANAGER, reason=None
            )

        assert raised.value.detail == {
            "code": "CANNOT_CHANGE_OWN_ROLE",
            "reason": "Admins cannot change their own role",
        }
        assert (await db_user(session, admin.id)).role is UserRole.ADMIN


Action = Callable[[AsyncSession, User, User], Awaitable[Any]]


async def change_role(session: AsyncSession, actor: User, target: User) -> None:
    await user_service.set_user_role(
        session, actor=actor, user=target, role=UserRole.MANAGER, reason="promotion"
    )


async def grant_professional(session: AsyncSession, actor: User, target: User) -> None:
    await user_service.set_professional_status(
        session, actor=actor, user=target, is_professional=True, reason=None
    )


async def unlock(session: AsyncSession, actor: User, target: User) -> None:
    await user_service.unlock_user(session, actor=actor, user=target)


async def staff_edit(session: AsyncSession, actor: User, target: User) -> None:
    await user_service.update_user_by_staff(
        session, actor=actor, user=target, values={"bio": "edited", "is_active": False}
    )


def state(user: User) -> tuple[Any, ...]:
    return (
        user.role,
        user.is_superuser,
        user.is_professional,
        user.professional_status_updated_at,
        user.failed_login_count,
        user.locked_until,
        user.bio,
        user.is_active,
    )


ACTIONS: list[tuple[Action, AuditAction, int]] = [
    (change_role, AuditAction.ROLE_CHANGED, 1),
    (grant_professional, AuditAction.PROFESSIONAL_STATUS_CHANGED, 1),
    (unlock, AuditAction.USER_UNLOCKED, 0),
    (staff_edit, AuditAction.USER_UPDATED_BY_STAFF, 0),
]
ACTION_IDS = [action.__name__ for action, _, _ in ACTIONS]


@pytest.mark.security("REL-4")
class TestAuditAtomicity:
    async def _target(self, session: AsyncSession) -> User:
        return await create_user(
            session,
            locked_until=api.clock.now() + timedelta(minutes=10),
            failed_login_count=5,
            bio="original",
        )

    @pytest.mark.parametrize(("action", "audit_action", "mails"), ACTIONS, ids=ACTION_IDS)
    async def test_committed_change_has_its_entry(
        self, session, admin, action, audit_action, mails
    ):
        target = await self._target(session)
        before = state(target)

        async with session.begin_nested():
            await action(session, admin, target)

        assert state(await db_user(session, target.id)) != before
        assert await audit_actions(session, target.id) == [audit_action]
        assert len(await queued_mail(session)) == mails

    @pytest.mark.parametrize(("action", "audit_action", "mails"), ACTIONS, ids=ACTION_IDS)
    async def test_failure_after_the_change_undoes_change_and_entry(
        self, session, admin, action, audit_action, mails
    ):
        target = await self._target(session)
        target_id, before = target.id, state(target)

        async def change_then_fail() -> None:
            async with session.begin_nested():
                await action(session, admin, target)
                assert await audit_actions(session, target_id) == [audit_action]
                assert len(await queued_mail(session)) == mails
                raise Boom

        with pytest.raises(Boom):
            await change_then_fail()

        assert state(await db_user(session, target_id)) == before
        assert await audit_actions(session, target_id) == []
        assert await queued_mail(session) == []

    async def test_refused_audit_row_undoes_the_role_change(self, session, admin):
        target = await create_user(session)
        target_id = target.id

        with pytest.raises(DBAPIError):
            async with session.begin_nested():
                # The audit column holds 2000 characters: the database refuses the entry.
                await user_service.set_user_role(
                    session, actor=admin, user=target, role=UserRole.ADMIN, reason="r" * 2001
                )

        saved = await db_user(session, target_id)
        assert (saved.role, saved.is_superuser) == (UserRole.AUTHENTICATED, False)
        assert await audit_actions(session, target_id) == []
        assert await queued_mail(session) == []

    async def test_deletion_entry_goes_with_a_refused_deletion(self, session, admin):
        admin_id = admin.id

        async def delete_last_admin() -> None:
            await user_service.record_deletion(session, actor=admin, user=admin)
            await user_service.ensure_not_last_admin(session, admin, becoming=None)
            await session.delete(admin)

        with pytest.raises(user_service.LastAdmin):
            async with session.begin_nested():
                await delete_last_admin()

        assert (await db_user(session, admin_id)).role is UserRole.ADMIN
        assert await audit_actions(session, admin_id) == []
