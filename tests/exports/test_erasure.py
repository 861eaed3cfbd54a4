"""Account deletion (PRIV-1): audit entries about the deleted user stay, with bare ids, but the
personal fields in their before/after become "[redacted]" in the deletion's transaction."""

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.audit import service as audit_service
from api.audit.models import AuditAction, AuditLog
from api.users.models import User, UserRole
from tests.factories import create_user

pytestmark = pytest.mark.security("PRIV-1")

R = "[redacted]"
PROFILE = {
    "email": "old-ada@example.com",
    "nickname": "ada_old",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "bio": "Counts things",
    "profile_picture_url": "https://example.com/ada.png",
    "linkedin_profile_url": "https://www.linkedin.com/in/ada",
    "github_profile_url": "https://github.com/ada",
}


async def entry(
    session: AsyncSession,
    *,
    actor: User,
    target: uuid.UUID,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    action: AuditAction = AuditAction.USER_UPDATED_BY_STAFF,
    target_type: str = "user",
) -> uuid.UUID:
    recorded = await audit_service.record(
        session,
        actor_id=actor.id,
        action=action,
        target_type=target_type,
        target_id=target,
        before=before,
        after=after,
        reason="kept as it is",
    )
    return recorded.id


async def stored(session: AsyncSession, entry_id: uuid.UUID) -> dict[str, Any]:
    row = await session.scalar(
        select(AuditLog)
        .where(col(AuditLog.id) == entry_id)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row.model_dump(exclude={"at"})


async def audit_rows(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(AuditLog)) or 0)


async def history(session: AsyncSession, doomed: User, admin: User, other: User) -> dict[str, Any]:
    """Entries about `doomed`, about `other`, and by `doomed`; returns their ids and expected
    contents after `doomed` is deleted."""
    everything = await entry(
        session,
        actor=admin,
        target=doomed.id,
        before={**PROFILE, "is_active": True},
        after={"email": "ada@example.com", "nickname": "ada", "is_active": False},
    )
    only_after = await entry(
        session, actor=admin, target=doomed.id, before=None, after={"bio": "New bio"}
    )
    role = await entry(
        session,
        actor=admin,
        target=doomed.id,
        action=AuditAction.ROLE_CHANGED,
        before={"role": "AUTHENTICATED"},
        after={"role": "MANAGER"},
    )
    about_other = await entry(
        session, actor=admin, target=other.id, before=dict(PROFILE), after={"nickname": "o"}
    )
    by_doomed = await entry(
        session, actor=doomed, target=other.id, before={"first_name": "Bo"}, after=None
    )
    untouched = {
        role: {"role": "AUTHENTICATED"},
        about_other: dict(PROFILE),
        by_doomed: {"first_name": "Bo"},
    }
    return {
        "redacted": {
            everything: (
                {**dict.fromkeys(PROFILE, R), "is_active": True},
                {"email": R, "nickname": R, "is_active": False},
            ),
            only_after: (None, {"bio": R}),
        },
        "unchanged": {key: await stored(session, key) for key in untouched},
        "targets": {everything: doomed.id, only_after: doomed.id},
    }


async def assert_erased(session: AsyncSession, expected: dict[str, Any], actor_id: uuid.UUID):
    for entry_id, (before, after) in expected["redacted"].items():
        row = await stored(session, entry_id)
        assert (row["before"], row["after"]) == (before, after)
        assert (row["actor_id"], row["target_id"], row["reason"]) == (
            actor_id,
            expected["targets"][entry_id],
            "kept as it is",
        )
    for entry_id, row in expected["unchanged"].items():
        assert await stored(session, entry_id) == row


class TestErasure:
    async def test_delete_me_redacts_the_entries_about_me(self, client, session, admin, auth_as):
        doomed = await create_user(session, nickname="ada_now")
        other = await create_user(session)
        expected = await history(session, doomed, admin, other)
        headers = await auth_as(doomed)
        rows = await audit_rows(session)

        response = await client.delete("/api/v1/users/me", headers=headers)

        assert response.status_code == 204
        assert await session.get(User, doomed.id, populate_existing=True) is None
        await assert_erased(session, expected, admin.id)
        assert await audit_rows(session) == rows

    async def test_staff_deletion_redacts_too_and_keeps_its_own_entry(
        self, client, session, admin, auth_as
    ):
        doomed = await create_user(session, role=UserRole.MANAGER)
        other = await create_user(session)
        expected = await history(session, doomed, admin, other)
        rows = await audit_rows(session)

        response = await client.delete(f"/api/v1/users/{doomed.id}", headers=await auth_as(admin))

        assert response.status_code == 204
        await assert_erased(session, expected, admin.id)
        # One entry more: the deletion itself, which holds only the role the account had.
        assert await audit_rows(session) == rows + 1
        deletion = await session.scalar(
            select(AuditLog).where(
                col(AuditLog.action) == AuditAction.USER_DELETED,
                col(AuditLog.target_id) == doomed.id,
            )
        )
        assert deletion is not None
        assert (deletion.actor_id, deletion.before, deletion.after) == (
            admin.id,
            {"role": "MANAGER"},
            None,
        )

    async def test_an_entry_about_an_event_with_the_same_id_is_not_touched(
        self, client, session, admin, auth_as
    ):
        doomed = await create_user(session)
        event_entry = await entry(
            session,
            actor=admin,
            target=doomed.id,
            target_type="event",
            action=AuditAction.EVENT_APPROVED,
            before={"nickname": "not a user field here"},
            after=None,
        )

        response = await client.delete("/api/v1/users/me", headers=await auth_as(doomed))

        assert response.status_code == 204
        assert (await stored(session, event_entry))["before"] == {
            "nickname": "not a user field here"
        }
