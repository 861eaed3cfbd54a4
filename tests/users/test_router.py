"""The Users section of API.md: /users/me, /profiles, and the staff routes under /users."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

import api.clock
from api.audit.models import AuditAction, AuditLog
from api.users.models import AccessToken, User, UserRole
from tests.factories import (
    DEFAULT_PASSWORD,
    OWNER_FIELDS,
    PUBLIC_FIELDS,
    create_user,
    deliver_queued_mail,
    queued_mail,
)
from tests.support import Mailbox

DATETIME_FIELDS = ("professional_status_updated_at", "last_login_at", "created_at", "updated_at")
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
FORBIDDEN = {"detail": "FORBIDDEN"}
USER_NOT_FOUND = {"detail": "USER_NOT_FOUND"}
LAST_ADMIN = {
    "detail": {
        "code": "LAST_ADMIN",
        "reason": "The last admin cannot be demoted, deactivated or deleted",
    }
}
FIXED_NOW = datetime(2031, 5, 4, 10, 30, tzinfo=UTC)


def marker() -> str:
    return uuid.uuid4().hex[:8]


def owner_view(user: User) -> dict[str, Any]:
    """What API.md says the owner, managers and admins see of `user`."""
    return {
        "id": str(user.id),
        "email": user.email,
        "nickname": user.nickname,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "bio": user.bio,
        "profile_picture_url": user.profile_picture_url,
        "linkedin_profile_url": user.linkedin_profile_url,
        "github_profile_url": user.github_profile_url,
        "role": user.role.value,
        "is_verified": user.is_verified,
        "is_active": user.is_active,
        "is_professional": user.is_professional,
        "professional_status_updated_at": user.professional_status_updated_at,
        "is_locked": user.is_locked,
        "last_login_at": user.last_login_at,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def parsed(body: dict[str, Any]) -> dict[str, Any]:
    """A user body with its datetimes parsed, to compare with owner_view."""
    return {
        key: datetime.fromisoformat(value) if key in DATETIME_FIELDS and value else value
        for key, value in body.items()
    }


def error_locs(response: httpx.Response) -> list[list[str | int]]:
    return [error["loc"] for error in response.json()["detail"]]


async def db_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user row as the database holds it now (None when gone)."""
    statement = (
        select(User).where(col(User.id) == user_id).execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).first()


async def audit_entries(session: AsyncSession, target_id: uuid.UUID) -> list[AuditLog]:
    statement = (
        select(AuditLog)
        .where(col(AuditLog.target_id) == target_id)
        .order_by(col(AuditLog.at))
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(statement)).all())


def audit_summary(entry: AuditLog) -> dict[str, Any]:
    return {
        "actor_id": entry.actor_id,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "before": entry.before,
        "after": entry.after,
        "reason": entry.reason,
    }


async def token_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).select_from(AccessToken).where(col(AccessToken.user_id) == user_id)
    )
    return int(count or 0)


class TestGetMe:
    async def test_owner_sees_exactly_the_documented_fields(self, client, user, auth_as):
        response = await client.get("/api/v1/users/me", headers=await auth_as(user))

        assert response.status_code == 200
        body = response.json()
        assert set(body) == OWNER_FIELDS
        assert parsed(body) == owner_view(user)

    async def test_profile_fields_and_status_are_shown(self, client, session, auth_as):
        owner = await create_user(
            session,
            first_name="Ada",
            last_name="Lovelace",
            bio="Analyst",
            profile_picture_url="https://cdn.example.com/ada.png",
            linkedin_profile_url="https://www.linkedin.com/in/ada",
            github_profile_url="https://github.com/ada",
            is_professional=True,
            professional_status_updated_at=FIXED_NOW,
            last_login_at=FIXED_NOW,
            locked_until=api.clock.now() + timedelta(minutes=5),
        )

        response = await client.get("/api/v1/users/me", headers=await auth_as(owner))

        assert response.status_code == 200
        assert parsed(response.json()) == owner_view(owner)
        assert response.json()["is_locked"] is True

    async def test_no_secret_in_body(self, client, user, auth_as):
        headers = await auth_as(user)

        response = await client.get("/api/v1/users/me", headers=headers)

        assert response.status_code == 200
        for secret in ("hashed_password", "is_superuser", "failed_login_count", "locked_until"):
            assert secret not in response.text
        assert headers["Authorization"].removeprefix("Bearer ") not in response.text

    async def test_anonymous_401(self, client):
        response = await client.get("/api/v1/users/me")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"

    async def test_unknown_token_401(self, client):
        response = await client.get(
            "/api/v1/users/me", headers={"Authorization": "Bearer not-a-token"}
        )

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"


class TestUpdateMe:
    async def test_profile_fields_200_and_saved(self, client, session, user, auth_as):
        values = {
            "nickname": "Grace-Hopper_1",
            "first_name": "G" * 100,
            "last_name": "H" * 100,
            "bio": "b" * 500,
            "profile_picture_url": "https://cdn.example.com/people/grace.WEBP?size=2",
            "linkedin_profile_url": "https://linkedin.com/in/grace",
            "github_profile_url": "https://github.com/grace-hopper/",
        }

        response = await client.patch("/api/v1/users/me", headers=await auth_as(user), json=values)

        assert response.status_code == 200
        saved = await db_user(session, user.id)
        assert saved is not None
        assert {key: getattr(saved, key) for key in values} == values
        assert parsed(response.json()) == owner_view(saved)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("nickname", "abc"),
            ("nickname", "a" * 30),
            ("profile_picture_url", "http://example.com/a.jpg"),
            ("profile_picture_url", "https://example.com/a/b.jpeg"),
            ("profile_picture_url", "https://example.com/a.gif"),
            ("linkedin_profile_url", "https://www.linkedin.com/in/someone"),
            ("linkedin_profile_url", "http://de.linkedin.com/in/someone"),
            ("github_profile_url", "https://github.com/octocat"),
            ("github_profile_url", "https://www.github.com/octo-cat"),
        ],
    )
    async def test_valid_value_accepted(self, client, session, user, auth_as, field, value):
        response = await client.patch(
            "/api/v1/users/me", headers=await auth_as(user), json={field: value}
        )

        assert response.status_code == 200
        assert response.json()[field] == value
        saved = await db_user(session, user.id)
        assert saved is not None
        assert getattr(saved, field) == value

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("nickname", "ab"),
            ("nickname", "a" * 31),
            ("nickname", "has space"),
            ("nickname", "dot.ted"),
            ("nickname", "ümlaut"),
            ("nickname", "semi;colon"),
            ("first_name", "f" * 101),
            ("last_name", "l" * 101),
            ("bio", "b" * 501),
            ("profile_picture_url", "https://example.com/picture.svg"),
            ("profile_picture_url", "https://example.com/jpg"),
            ("profile_picture_url", "https://example.com/a.jpg.exe"),
            ("profile_picture_url", "ftp://example.com/a.jpg"),
            ("profile_picture_url", "javascript:alert(1)//a.png"),
            ("profile_picture_url", "example.com/a.png"),
            ("linkedin_profile_url", "https://linkedin.com.evil.example/in/x"),
            ("linkedin_profile_url", "https://evil-linkedin.com/in/x"),
            ("linkedin_profile_url", "https://example.com/in/x"),
            ("linkedin_profile_url", "ftp://www.linkedin.com/in/x"),
            ("github_profile_url", "https://gitlab.com/octocat"),
            ("github_profile_url", "https://github.com/"),
            ("github_profile_url", "https://github.com/octocat/hello-world"),
            ("github_profile_url", "https://gist.github.com/octocat"),
            ("github_profile_url", "https://github.com.evil.example/octocat"),
            ("github_profile_url", "git://github.com/octocat"),
        ],
    )
    async def test_bad_value_422_names_field(self, client, session, user, auth_as, field, value):
        before = getattr(user, field)

        response = await client.patch(
            "/api/v1/users/me", headers=await auth_as(user), json={field: value}
        )

        assert response.status_code == 422
        assert error_locs(response) == [["body", field]]
        saved = await db_user(session, user.id)
        assert saved is not None
        assert getattr(saved, field) == before

    async def test_bio_null_clears_it(self, client, session, auth_as):
        owner = await create_user(session, bio="Old bio", first_name="Kept")

        response = await client.patch(
            "/api/v1/users/me", headers=await auth_as(owner), json={"bio": None}
        )

        assert response.status_code == 200
        assert response.json()["bio"] is None
        saved = await db_user(session, owner.id)
        assert saved is not None
        assert (saved.bio, saved.first_name) == (None, "Kept")

    async def test_nickname_taken_case_insensitively_409(self, client, session, user, auth_as):
        await create_user(session, nickname="Taken_Name")
        own_nickname = user.nickname

        response = await client.patch(
            "/api/v1/users/me", headers=await auth_as(user), json={"nickname": "tAKEN_nAME"}
        )

        assert response.status_code == 409
        assert response.json() == {"detail": "NICKNAME_TAKEN"}
        saved = await db_user(session, user.id)
        assert saved is not None
        assert saved.nickname == own_nickname

    async def test_anonymous_401(self, client):
        response = await client.patch("/api/v1/users/me", json={"bio": "x"})

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"


class TestDeleteMe:
    async def test_204_row_gone_and_token_dead(self, client, session, user, auth_as):
        headers = await auth_as(user)
        user_id = user.id

        response = await client.delete("/api/v1/users/me", headers=headers)

        assert response.status_code == 204
        assert response.content == b""
        assert await db_user(session, user_id) is None
        assert await token_count(session, user_id) == 0
        again = await client.get("/api/v1/users/me", headers=headers)
        assert again.status_code == 401
        assert again.headers["WWW-Authenticate"] == "Bearer"

    @pytest.mark.security("AC-4")
    async def test_last_admin_409(self, client, session, admin, auth_as):
        response = await client.delete("/api/v1/users/me", headers=await auth_as(admin))

        assert response.status_code == 409
        assert response.json() == LAST_ADMIN
        assert await db_user(session, admin.id) is not None

    @pytest.mark.security("AC-4")
    async def test_inactive_other_admin_does_not_count_409(self, client, session, admin, auth_as):
        await create_user(session, role=UserRole.ADMIN, is_active=False)

        response = await client.delete("/api/v1/users/me", headers=await auth_as(admin))

        assert response.status_code == 409
        assert response.json() == LAST_ADMIN
        assert await db_user(session, admin.id) is not None

    async def test_admin_with_another_admin_204(self, client, session, admin, auth_as):
        other = await create_user(session, role=UserRole.ADMIN)
        admin_id = admin.id

        response = await client.delete("/api/v1/users/me", headers=await auth_as(admin))

        assert response.status_code == 204
        assert await db_user(session, admin_id) is None
        assert await db_user(session, other.id) is not None

    async def test_anonymous_401(self, client):
        response = await client.delete("/api/v1/users/me")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"


class TestGetProfile:
    async def test_verified_user_sees_public_fields_only(self, client, session, user, auth_as):
        target = await create_user(
            session,
            nickname="Public_Ada",
            first_name="Ada",
            last_name="Lovelace",
            bio="Analyst",
            profile_picture_url="https://cdn.example.com/ada.jpg",
            linkedin_profile_url="https://www.linkedin.com/in/ada",
            github_profile_url="https://github.com/ada",
            is_professional=True,
        )

        response = await client.get("/api/v1/profiles/Public_Ada", headers=await auth_as(user))

        assert response.status_code == 200
        assert response.json() == {
            "id": str(target.id),
            "nickname": "Public_Ada",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "bio": "Analyst",
            "profile_picture_url": "https://cdn.example.com/ada.jpg",
            "linkedin_profile_url": "https://www.linkedin.com/in/ada",
            "github_profile_url": "https://github.com/ada",
            "is_professional": True,
        }
        assert set(response.json()) == PUBLIC_FIELDS
        assert target.email not in response.text

    async def test_nickname_matched_case_insensitively(self, client, session, user, auth_as):
        target = await create_user(session, nickname="MiXeD_Case")

        response = await client.get("/api/v1/profiles/mixed_CASE", headers=await auth_as(user))

        assert response.status_code == 200
        assert response.json()["id"] == str(target.id)
        assert response.json()["nickname"] == "MiXeD_Case"

    async def test_unknown_404(self, client, user, auth_as):
        response = await client.get("/api/v1/profiles/nobody_here", headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == USER_NOT_FOUND

    async def test_deactivated_user_404(self, client, session, user, auth_as):
        await create_user(session, nickname="Gone_User", is_active=False)

        response = await client.get("/api/v1/profiles/Gone_User", headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == USER_NOT_FOUND

    async def test_manager_200(self, client, user, manager, auth_as):
        response = await client.get(
            f"/api/v1/profiles/{user.nickname}", headers=await auth_as(manager)
        )

        assert response.status_code == 200
        assert set(response.json()) == PUBLIC_FIELDS

    async def test_unverified_caller_403(self, client, user, unverified_user, auth_as):
        response = await client.get(
            f"/api/v1/profiles/{user.nickname}", headers=await auth_as(unverified_user)
        )

        assert response.status_code == 403
        assert response.json() == {"detail": "FORBIDDEN"}

    async def test_anonymous_401(self, client, user):
        response = await client.get(f"/api/v1/profiles/{user.nickname}")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"


class TestListUsers:
    async def _users(self, session: AsyncSession, m: str, count: int) -> list[User]:
        base = datetime(2030, 1, 1, tzinfo=UTC)
        return [
            await create_user(
                session, email=f"{m}-{i}@example.com", created_at=base + timedelta(minutes=i)
            )
            for i in range(count)
        ]

    async def _list(
        self, client: httpx.AsyncClient, headers: dict[str, str], **params: Any
    ) -> httpx.Response:
        return await client.get("/api/v1/users", headers=headers, params=params)

    async def test_manager_gets_envelope_first_page(self, client, session, manager, auth_as):
        m = marker()
        users = await self._users(session, m, 5)

        response = await self._list(client, await auth_as(manager), q=m, page=1, size=2)

        assert response.status_code == 200
        body = response.json()
        url = f"http://testserver/api/v1/users?q={m}"
        assert {key: value for key, value in body.items() if key != "items"} == {
            "total": 5,
            "total_capped": False,
            "page": 1,
            "size": 2,
            "pages": 3,
            "links": {
                "self": f"{url}&page=1&size=2",
                "first": f"{url}&page=1&size=2",
                "last": f"{url}&page=3&size=2",
                "next": f"{url}&page=2&size=2",
                "prev": None,
            },
        }
        assert [parsed(item) for item in body["items"]] == [owner_view(u) for u in users[:2]]

    async def test_middle_and_last_pages(self, client, session, admin, auth_as):
        m = marker()
        users = await self._users(session, m, 5)
        headers = await auth_as(admin)
        url = f"http://testserver/api/v1/users?q={m}"

        middle = await self._list(client, headers, q=m, page=2, size=2)
        last = await self._list(client, headers, q=m, page=3, size=2)

        assert middle.status_code == 200
        assert [item["id"] for item in middle.json()["items"]] == [str(u.id) for u in users[2:4]]
        assert middle.json()["links"]["next"] == f"{url}&page=3&size=2"
        assert middle.json()["links"]["prev"] == f"{url}&page=1&size=2"
        assert last.status_code == 200
        assert [item["id"] for item in last.json()["items"]] == [str(users[4].id)]
        assert last.json()["links"] == {
            "self": f"{url}&page=3&size=2",
            "first": f"{url}&page=1&size=2",
            "last": f"{url}&page=3&size=2",
            "next": None,
            "prev": f"{url}&page=2&size=2",
        }

    async def test_page_past_the_end_200_empty(self, client, session, manager, auth_as):
        m = marker()
        await self._users(session, m, 3)

        response = await self._list(client, await auth_as(manager), q=m, page=7, size=2)

        assert response.status_code == 200
        body = response.json()
        url = f"http://testserver/api/v1/users?q={m}"
        assert body == {
            "items": [],
            "total": 3,
            "total_capped": False,
            "page": 7,
            "size": 2,
            "pages": 2,
            "links": {
                "self": f"{url}&page=7&size=2",
                "first": f"{url}&page=1&size=2",
                "last": f"{url}&page=2&size=2",
                "next": None,
                "prev": f"{url}&page=2&size=2",
            },
        }

    async def test_no_match_is_one_empty_page(self, client, manager, auth_as):
        m = marker()

        response = await self._list(client, await auth_as(manager), q=m)

        assert response.status_code == 200
        url = f"http://testserver/api/v1/users?q={m}"
        assert response.json() == {
            "items": [],
            "total": 0,
            "total_capped": False,
            "page": 1,
            "size": 20,
            "pages": 1,
            "links": {
                "self": f"{url}&page=1&size=20",
                "first": f"{url}&page=1&size=20",
                "last": f"{url}&page=1&size=20",
                "next": None,
                "prev": None,
            },
        }

    @pytest.mark.parametrize(
        ("param", "value"),
        [("page", 0), ("page", -1), ("size", 0), ("size", 101), ("page", "one")],
    )
    async def test_bad_page_params_422(self, client, manager, auth_as, param, value):
        response = await self._list(client, await auth_as(manager), **{param: value})

        assert response.status_code == 422
        assert error_locs(response) == [["query", param]]

    async def test_size_100_accepted(self, client, manager, auth_as):
        response = await self._list(client, await auth_as(manager), q=marker(), size=100)

        assert response.status_code == 200
        assert response.json()["size"] == 100

    @pytest.mark.parametrize("field", ["email", "nickname", "first_name", "last_name"])
    async def test_q_matches_each_field_case_insensitively(
        self, client, session, manager, auth_as, field
    ):
        m = marker()
        values = {
            "email": f"x{m}Y@example.com",
            "nickname": f"n_x{m}Y",
            "first_name": f"First x{m}Y",
            "last_name": f"Last x{m}Y",
        }
        fields: dict[str, Any] = {field: values[field]}
        target = await create_user(session, **fields)
        await create_user(session, first_name=f"x{m}", last_name="decoy")

        response = await self._list(client, await auth_as(manager), q=f"X{m.upper()}y")

        assert response.status_code == 200
        assert [item["id"] for item in response.json()["items"]] == [str(target.id)]
        assert response.json()["total"] == 1

    @pytest.mark.parametrize(("wildcard", "other"), [("%", "x"), ("_", "y"), ("\\", "z")])
    async def test_q_matches_special_characters_literally(
        self, client, session, manager, auth_as, wildcard, other
    ):
        m = marker()
        literal = await create_user(session, first_name=f"{m}a{wildcard}b")
        await create_user(session, first_name=f"{m}a{other}b")
        await create_user(session, first_name=f"{m}ab")

        response = await self._list(client, await auth_as(manager), q=f"{m}a{wildcard}b")

        assert response.status_code == 200
        assert [item["id"] for item in response.json()["items"]] == [str(literal.id)]

    async def test_filter_role(self, client, session, manager, auth_as):
        m = marker()
        await create_user(session, email=f"{m}-user@example.com", role=UserRole.AUTHENTICATED)
        staff = await create_user(session, email=f"{m}-mgr@example.com", role=UserRole.MANAGER)
        await create_user(session, email=f"{m}-adm@example.com", role=UserRole.ADMIN)

        response = await self._list(client, await auth_as(manager), q=m, role="MANAGER")

        assert response.status_code == 200
        assert [item["id"] for item in response.json()["items"]] == [str(staff.id)]

    @pytest.mark.parametrize("value", [True, False])
    async def test_filter_is_professional(self, client, session, manager, auth_as, value):
        m = marker()
        pro = await create_user(session, email=f"{m}-pro@example.com", is_professional=True)
        other = await create_user(session, email=f"{m}-std@example.com", is_professional=False)

        response = await self._list(
            client, await auth_as(manager), q=m, is_professional=str(value).lower()
        )

        assert response.status_code == 200
        expected = pro if value else other
        assert [item["id"] for item in response.json()["items"]] == [str(expected.id)]

    @pytest.mark.parametrize("value", [True, False])
    async def test_filter_is_verified(self, client, session, manager, auth_as, value):
        m = marker()
        verified = await create_user(session, email=f"{m}-v@example.com")
        unverified = await create_user(
            session, email=f"{m}-u@example.com", role=UserRole.ANONYMOUS, is_verified=False
        )

        response = await self._list(
            client, await auth_as(manager), q=m, is_verified=str(value).lower()
        )

        assert response.status_code == 200
        expected = verified if value else unverified
        assert [item["id"] for item in response.json()["items"]] == [str(expected.id)]

    async def test_filter_is_locked(self, client, session, manager, auth_as):
        m = marker()
        now = api.clock.now()
        base = datetime(2030, 1, 1, tzinfo=UTC)
        locked = await create_user(
            session,
            email=f"{m}-locked@example.com",
            locked_until=now + timedelta(minutes=10),
            failed_login_count=5,
            created_at=base,
        )
        expired = await create_user(
            session,
            email=f"{m}-expired@example.com",
            locked_until=now - timedelta(minutes=10),
            failed_login_count=5,
            created_at=base + timedelta(minutes=1),
        )
        never = await create_user(
            session, email=f"{m}-never@example.com", created_at=base + timedelta(minutes=2)
        )
        headers = await auth_as(manager)

        locked_page = await self._list(client, headers, q=m, is_locked="true")
        unlocked_page = await self._list(client, headers, q=m, is_locked="false")

        assert locked_page.status_code == 200
        assert [item["id"] for item in locked_page.json()["items"]] == [str(locked.id)]
        assert locked_page.json()["items"][0]["is_locked"] is True
        assert unlocked_page.status_code == 200
        assert [item["id"] for item in unlocked_page.json()["items"]] == [
            str(expired.id),
            str(never.id),
        ]

    @pytest.mark.parametrize(
        ("param", "value"),
        [
            ("role", "SUPERUSER"),
            ("role", "admin!"),
            ("is_professional", "maybe"),
            ("is_locked", "2"),
            ("is_verified", "yes please"),
            ("sort", "password"),
            ("sort", "-email"),
            ("sort", "hashed_password"),
            ("q", "x" * 201),
        ],
    )
    async def test_bad_filter_or_sort_422(self, client, manager, auth_as, param, value):
        response = await self._list(client, await auth_as(manager), **{param: value})

        assert response.status_code == 422
        assert error_locs(response) == [["query", param]]

    @pytest.mark.parametrize(
        ("sort", "expected"),
        [
            (None, [1, 2, 0]),
            ("created_at", [1, 2, 0]),
            ("-created_at", [0, 2, 1]),
            ("email", [2, 0, 1]),
            ("nickname", [1, 2, 0]),
        ],
    )
    async def test_sort_orders(self, client, session, manager, auth_as, sort, expected):
        m = marker()
        base = datetime(2030, 1, 1, tzinfo=UTC)
        users = [
            await create_user(
                session,
                email=f"{m}-b@example.com",
                nickname=f"{m}_c",
                created_at=base + timedelta(minutes=2),
            ),
            await create_user(
                session,
                email=f"{m}-C@example.com",
                nickname=f"{m}_a",
                created_at=base,
            ),
            await create_user(
                session,
                email=f"{m}-a@example.com",
                nickname=f"{m}_B",
                created_at=base + timedelta(minutes=1),
            ),
        ]
        params = {"q": m} if sort is None else {"q": m, "sort": sort}

        response = await self._list(client, await auth_as(manager), **params)

        assert response.status_code == 200
        assert [item["id"] for item in response.json()["items"]] == [
            str(users[i].id) for i in expected
        ]

    async def test_user_403(self, client, user, auth_as):
        response = await self._list(client, await auth_as(user))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN

    async def test_anonymous_401(self, client):
        response = await client.get("/api/v1/users")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"


class TestCreateUser:
    # ANONYMOUS means "email not verified": an admin-created account is verified (422 below).
    @pytest.mark.parametrize("role", [r for r in UserRole if r is not UserRole.ANONYMOUS])
    async def test_admin_creates_verified_user_with_role(
        self, client, session, admin, auth_as, role
    ):
        local = f"Staff-{marker()}"

        response = await client.post(
            "/api/v1/users",
            headers=await auth_as(admin),
            json={
                "email": f"{local}@Example.COM",
                "password": DEFAULT_PASSWORD,
                "role": role.value,
            },
        )

        assert response.status_code == 201
        body = response.json()
        assert set(body) == OWNER_FIELDS
        created = await db_user(session, uuid.UUID(body["id"]))
        assert created is not None
        assert parsed(body) == owner_view(created)
        # The address is kept as given, its domain normalised by the email validator.
        assert (created.email, created.role, created.is_verified) == (
            f"{local}@example.com",
            role,
            True,
        )
        assert created.is_superuser is (role is UserRole.ADMIN)
        assert created.is_active is True
        assert await queued_mail(session) == []

    async def test_without_role_is_authenticated_and_verified(
        self, client, session, admin, auth_as, monkeypatch
    ):
        # The clock is set first: the token's age is measured on the same clock.
        monkeypatch.setattr(api.clock, "now", lambda: FIXED_NOW)
        headers = await auth_as(admin)

        response = await client.post(
            "/api/v1/users",
            headers=headers,
            json={
                "email": f"pro-{marker()}@example.com",
                "password": DEFAULT_PASSWORD,
                "nickname": "Given_Nick",
                "first_name": "Pro",
                "is_professional": True,
            },
        )

        assert response.status_code == 201
        created = await db_user(session, uuid.UUID(response.json()["id"]))
        assert created is not None
        assert parsed(response.json()) == owner_view(created)
        assert (created.nickname, created.first_name, created.role, created.is_verified) == (
            "Given_Nick",
            "Pro",
            UserRole.AUTHENTICATED,
            True,
        )
        assert (created.is_professional, created.professional_status_updated_at) == (
            True,
            FIXED_NOW,
        )
        assert created.is_superuser is False
        assert await queued_mail(session) == []

    async def test_generated_nickname(self, client, session, admin, auth_as):
        response = await client.post(
            "/api/v1/users",
            headers=await auth_as(admin),
            json={"email": "Jane.Doe+events@example.com", "password": DEFAULT_PASSWORD},
        )

        assert response.status_code == 201
        nickname = response.json()["nickname"]
        assert re.fullmatch(r"JaneDoeevents-[0-9a-f]{8}", nickname)
        created = await db_user(session, uuid.UUID(response.json()["id"]))
        assert created is not None
        assert created.nickname == nickname

    async def test_duplicate_email_other_case_400(self, client, session, admin, auth_as):
        m = marker()
        await create_user(session, email=f"Taken-{m}@example.com")

        response = await client.post(
            "/api/v1/users",
            headers=await auth_as(admin),
            json={"email": f"taken-{m}@EXAMPLE.COM", "password": DEFAULT_PASSWORD},
        )

        assert response.status_code == 400
        assert response.json() == {"detail": "REGISTER_USER_ALREADY_EXISTS"}
        count = await session.scalar(
            select(func.count()).select_from(User).where(func.lower(User.email).contains(m))
        )
        assert count == 1

    @pytest.mark.parametrize(
        ("password", "reason"),
        [
            ("short", "Password should be at least 8 characters"),
            ("password123", "Password is too common"),
        ],
    )
    async def test_weak_password_400(self, client, session, admin, auth_as, password, reason):
        email = f"weak-{marker()}@example.com"

        response = await client.post(
            "/api/v1/users",
            headers=await auth_as(admin),
            json={"email": email, "password": password},
        )

        assert response.status_code == 400
        assert response.json() == {
            "detail": {"code": "REGISTER_INVALID_PASSWORD", "reason": reason}
        }
        count = await session.scalar(
            select(func.count()).select_from(User).where(col(User.email) == email)
        )
        assert count == 0

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"password": DEFAULT_PASSWORD}, ["body", "email"]),
            ({"email": "not-an-email", "password": DEFAULT_PASSWORD}, ["body", "email"]),
            ({"email": "ok@example.com"}, ["body", "password"]),
            ({"email": "ok@example.com", "password": "p" * 129}, ["body", "password"]),
            (
                {"email": "ok@example.com", "password": DEFAULT_PASSWORD, "role": "ROOT"},
                ["body", "role"],
            ),
            (
                {"email": "ok@example.com", "password": DEFAULT_PASSWORD, "nickname": "x"},
                ["body", "nickname"],
            ),
            (
                {
                    "email": "ok@example.com",
                    "password": DEFAULT_PASSWORD,
                    "github_profile_url": "https://example.com/x",
                },
                ["body", "github_profile_url"],
            ),
            (
                {"email": "ok@example.com", "password": DEFAULT_PASSWORD, "role": "ANONYMOUS"},
                ["body", "role"],
            ),
        ],
    )
    async def test_bad_body_422(self, client, admin, auth_as, body, loc):
        response = await client.post("/api/v1/users", headers=await auth_as(admin), json=body)

        assert response.status_code == 422
        assert error_locs(response) == [loc]

    async def test_manager_403(self, client, session, manager, auth_as):
        email = f"nope-{marker()}@example.com"

        response = await client.post(
            "/api/v1/users",
            headers=await auth_as(manager),
            json={"email": email, "password": DEFAULT_PASSWORD, "role": "ADMIN"},
        )

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        count = await session.scalar(
            select(func.count()).select_from(User).where(col(User.email) == email)
        )
        assert count == 0

    async def test_anonymous_401(self, client):
        response = await client.post(
            "/api/v1/users", json={"email": "a@example.com", "password": DEFAULT_PASSWORD}
        )

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestGetUser:
    @pytest.mark.parametrize("staff_role", [UserRole.MANAGER, UserRole.ADMIN])
    async def test_staff_200(self, client, session, user, auth_as, staff_role):
        staff = await create_user(session, role=staff_role)

        response = await client.get(f"/api/v1/users/{user.id}", headers=await auth_as(staff))

        assert response.status_code == 200
        assert set(response.json()) == OWNER_FIELDS
        assert parsed(response.json()) == owner_view(user)

    async def test_user_403(self, client, session, user, auth_as):
        other = await create_user(session)

        response = await client.get(f"/api/v1/users/{other.id}", headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN

    async def test_user_403_for_unknown_id_too(self, client, user, auth_as):
        response = await client.get(f"/api/v1/users/{uuid.uuid4()}", headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN

    async def test_unknown_404(self, client, manager, auth_as):
        response = await client.get(f"/api/v1/users/{uuid.uuid4()}", headers=await auth_as(manager))

        assert response.status_code == 404
        assert response.json() == USER_NOT_FOUND

    @pytest.mark.parametrize("bad_id", ["not-a-uuid", "12345", "0" * 40])
    async def test_malformed_id_422(self, client, manager, auth_as, bad_id):
        response = await client.get(f"/api/v1/users/{bad_id}", headers=await auth_as(manager))

        assert response.status_code == 422
        assert error_locs(response) == [["path", "user_id"]]

    async def test_anonymous_401(self, client, user):
        response = await client.get(f"/api/v1/users/{user.id}")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestUpdateUser:
    async def test_manager_edits_profile_200_with_audit(self, client, session, manager, auth_as):
        target = await create_user(session, first_name="Old", bio="Same bio")

        response = await client.patch(
            f"/api/v1/users/{target.id}",
            headers=await auth_as(manager),
            json={"first_name": "New", "last_name": "Name", "bio": "Same bio"},
        )

        assert response.status_code == 200
        saved = await db_user(session, target.id)
        assert saved is not None
        assert (saved.first_name, saved.last_name, saved.bio) == ("New", "Name", "Same bio")
        assert parsed(response.json()) == owner_view(saved)
        assert [audit_summary(e) for e in await audit_entries(session, target.id)] == [
            {
                "actor_id": manager.id,
                "action": AuditAction.USER_UPDATED_BY_STAFF,
                "target_type": "user",
                "target_id": target.id,
                "before": {"first_name": "Old", "last_name": None},
                "after": {"first_name": "New", "last_name": "Name"},
                "reason": None,
            }
        ]

    async def test_bio_null_clears_with_audit(self, client, session, admin, auth_as):
        target = await create_user(session, bio="To be removed")

        response = await client.patch(
            f"/api/v1/users/{target.id}", headers=await auth_as(admin), json={"bio": None}
        )

        assert response.status_code == 200
        assert response.json()["bio"] is None
        saved = await db_user(session, target.id)
        assert saved is not None
        assert saved.bio is None
        [entry] = await audit_entries(session, target.id)
        assert (entry.actor_id, entry.before, entry.after) == (
            admin.id,
            {"bio": "To be removed"},
            {"bio": None},
        )

    async def test_deactivate_200_revokes_tokens(self, client, session, manager, auth_as):
        target = await create_user(session)
        target_headers = await auth_as(target)

        response = await client.patch(
            f"/api/v1/users/{target.id}", headers=await auth_as(manager), json={"is_active": False}
        )

        assert response.status_code == 200
        assert response.json()["is_active"] is False
        saved = await db_user(session, target.id)
        assert saved is not None
        assert saved.is_active is False
        assert await token_count(session, target.id) == 0
        [entry] = await audit_entries(session, target.id)
        assert (entry.action, entry.before, entry.after) == (
            AuditAction.USER_UPDATED_BY_STAFF,
            {"is_active": True},
            {"is_active": False},
        )
        denied = await client.get("/api/v1/users/me", headers=target_headers)
        assert denied.status_code == 401

    async def test_reactivate_200(self, client, session, manager, auth_as):
        target = await create_user(session, is_active=False)

        response = await client.patch(
            f"/api/v1/users/{target.id}", headers=await auth_as(manager), json={"is_active": True}
        )

        assert response.status_code == 200
        saved = await db_user(session, target.id)
        assert saved is not None
        assert saved.is_active is True
        [entry] = await audit_entries(session, target.id)
        assert (entry.before, entry.after) == ({"is_active": False}, {"is_active": True})

    @pytest.mark.parametrize(
        "body", [{}, {"first_name": "Same"}, {"nickname": None}, {"is_active": None}]
    )
    async def test_no_change_200_without_audit(self, client, session, manager, auth_as, body):
        target = await create_user(session, first_name="Same")
        nickname = target.nickname

        response = await client.patch(
            f"/api/v1/users/{target.id}", headers=await auth_as(manager), json=body
        )

        assert response.status_code == 200
        saved = await db_user(session, target.id)
        assert saved is not None
        assert (saved.first_name, saved.nickname, saved.is_active) == ("Same", nickname, True)
        assert await audit_entries(session, target.id) == []

    async def test_role_email_and_flags_in_body_have_no_effect(
        self, client, session, manager, auth_as
    ):
        target = await create_user(session)
        email = target.email

        response = await client.patch(
            f"/api/v1/users/{target.id}",
            headers=await auth_as(manager),
            json={
                "role": "ADMIN",
                "email": "changed@example.com",
                "is_superuser": True,
                "is_verified": False,
                "is_professional": True,
                "failed_login_count": 99,
                "bio": "changed",
            },
        )

        assert response.status_code == 200
        saved = await db_user(session, target.id)
        assert saved is not None
        assert (saved.role, saved.email, saved.is_superuser, saved.is_verified) == (
            UserRole.AUTHENTICATED,
            email,
            False,
            True,
        )
        assert (saved.is_professional, saved.failed_login_count, saved.bio) == (
            False,
            0,
            "changed",
        )
        [entry] = await audit_entries(session, target.id)
        assert (entry.before, entry.after) == ({"bio": None}, {"bio": "changed"})

    @pytest.mark.security("AC-4")
    async def test_deactivating_only_active_admin_409(
        self, client, session, admin, manager, auth_as
    ):
        await create_user(session, role=UserRole.ADMIN, is_active=False)

        response = await client.patch(
            f"/api/v1/users/{admin.id}", headers=await auth_as(manager), json={"is_active": False}
        )

        assert response.status_code == 409
        assert response.json() == LAST_ADMIN
        saved = await db_user(session, admin.id)
        assert saved is not None
        assert saved.is_active is True
        assert await audit_entries(session, admin.id) == []

    @pytest.mark.security("AC-4")
    async def test_admin_deactivating_self_as_only_admin_409(self, client, session, admin, auth_as):
        response = await client.patch(
            f"/api/v1/users/{admin.id}", headers=await auth_as(admin), json={"is_active": False}
        )

        assert response.status_code == 409
        assert response.json() == LAST_ADMIN
        saved = await db_user(session, admin.id)
        assert saved is not None
        assert saved.is_active is True

    async def test_deactivating_one_of_two_admins_200(self, client, session, admin, auth_as):
        other = await create_user(session, role=UserRole.ADMIN)

        response = await client.patch(
            f"/api/v1/users/{other.id}", headers=await auth_as(admin), json={"is_active": False}
        )

        assert response.status_code == 200
        saved = await db_user(session, other.id)
        assert saved is not None
        assert saved.is_active is False

    async def test_nickname_taken_409(self, client, session, manager, auth_as):
        await create_user(session, nickname="Someone_Else")
        target = await create_user(session)
        nickname = target.nickname

        response = await client.patch(
            f"/api/v1/users/{target.id}",
            headers=await auth_as(manager),
            json={"nickname": "someone_else"},
        )

        assert response.status_code == 409
        assert response.json() == {"detail": "NICKNAME_TAKEN"}
        saved = await db_user(session, target.id)
        assert saved is not None
        assert saved.nickname == nickname
        assert await audit_entries(session, target.id) == []

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("nickname", "no"),
            ("first_name", "f" * 101),
            ("bio", "b" * 501),
            ("profile_picture_url", "https://example.com/a.bmp"),
            ("linkedin_profile_url", "https://example.com/in/x"),
            ("github_profile_url", "https://github.com/a/b"),
            ("is_active", "sometimes"),
        ],
    )
    async def test_bad_value_422(self, client, session, manager, auth_as, field, value):
        target = await create_user(session)

        response = await client.patch(
            f"/api/v1/users/{target.id}", headers=await auth_as(manager), json={field: value}
        )

        assert response.status_code == 422
        assert error_locs(response) == [["body", field]]
        assert await audit_entries(session, target.id) == []

    async def test_unknown_404(self, client, manager, auth_as):
        response = await client.patch(
            f"/api/v1/users/{uuid.uuid4()}", headers=await auth_as(manager), json={"bio": "x"}
        )

        assert response.status_code == 404
        assert response.json() == USER_NOT_FOUND

    async def test_user_403(self, client, session, user, auth_as):
        target = await create_user(session)

        response = await client.patch(
            f"/api/v1/users/{target.id}", headers=await auth_as(user), json={"bio": "x"}
        )

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        saved = await db_user(session, target.id)
        assert saved is not None
        assert saved.bio is None


class TestDeleteUser:
    async def test_admin_204_row_gone_and_audited(self, client, session, admin, auth_as):
        target = await create_user(session, role=UserRole.MANAGER)
        await auth_as(target)
        target_id = target.id

        response = await client.delete(f"/api/v1/users/{target_id}", headers=await auth_as(admin))

        assert response.status_code == 204
        assert response.content == b""
        assert await db_user(session, target_id) is None
        assert await token_count(session, target_id) == 0
        assert [audit_summary(e) for e in await audit_entries(session, target_id)] == [
            {
                "actor_id": admin.id,
                "action": AuditAction.USER_DELETED,
                "target_type": "user",
                "target_id": target_id,
                "before": {"role": "MANAGER"},
                "after": None,
                "reason": None,
            }
        ]

    async def test_admin_deletes_other_admin_204(self, client, session, admin, auth_as):
        other = await create_user(session, role=UserRole.ADMIN)
        other_id = other.id

        response = await client.delete(f"/api/v1/users/{other_id}", headers=await auth_as(admin))

        assert response.status_code == 204
        assert await db_user(session, other_id) is None

    @pytest.mark.security("AC-4")
    async def test_only_admin_deleting_self_409_without_audit(
        self, client, session, admin, auth_as
    ):
        response = await client.delete(f"/api/v1/users/{admin.id}", headers=await auth_as(admin))

        assert response.status_code == 409
        assert response.json() == LAST_ADMIN
        assert await db_user(session, admin.id) is not None
        # The USER_DELETED entry was written before the guard refused: it went with the rollback.
        assert await audit_entries(session, admin.id) == []

    async def test_manager_403(self, client, session, manager, auth_as):
        target = await create_user(session)

        response = await client.delete(f"/api/v1/users/{target.id}", headers=await auth_as(manager))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        assert await db_user(session, target.id) is not None

    async def test_unknown_404(self, client, admin, auth_as):
        response = await client.delete(
            f"/api/v1/users/{uuid.uuid4()}", headers=await auth_as(admin)
        )

        assert response.status_code == 404
        assert response.json() == USER_NOT_FOUND

    async def test_anonymous_401(self, client, user):
        response = await client.delete(f"/api/v1/users/{user.id}")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestSetRole:
    async def _put(
        self, client: httpx.AsyncClient, headers: dict[str, str], user_id: Any, **body: Any
    ) -> httpx.Response:
        return await client.put(f"/api/v1/users/{user_id}/role", headers=headers, json=body)

    async def test_promote_200_audited_and_mailed(
        self, client, session, admin, auth_as, mailbox: Mailbox
    ):
        target = await create_user(session, first_name="Rita")

        response = await self._put(
            client, await auth_as(admin), target.id, role="MANAGER", reason="Runs the team"
        )

        assert response.status_code == 200
        assert response.json()["role"] == "MANAGER"
        saved = await db_user(session, target.id)
        assert saved is not None
        assert parsed(response.json()) == owner_view(saved)
        assert (saved.role, saved.is_superuser) == (UserRole.MANAGER, False)
        assert [audit_summary(e) for e in await audit_entries(session, target.id)] == [
            {
                "actor_id": admin.id,
                "action": AuditAction.ROLE_CHANGED,
                "target_type": "user",
                "target_id": target.id,
                "before": {"role": "AUTHENTICATED"},
                "after": {"role": "MANAGER"},
                "reason": "Runs the team",
            }
        ]
        [mail] = await queued_mail(session)
        assert (mail.to, mail.subject) == (target.email, "Your event-manager role changed")
        assert await deliver_queued_mail(session) == 1
        [message] = mailbox.to(target.email)
        assert message["Subject"] == "Your event-manager role changed"
        text = Mailbox.text(message)
        assert "Hello Rita," in text
        assert "changed from AUTHENTICATED to MANAGER" in text
        assert "Reason: Runs the team" in text

    async def test_promote_to_admin_syncs_superuser(self, client, session, admin, auth_as):
        target = await create_user(session, role=UserRole.MANAGER)

        response = await self._put(client, await auth_as(admin), target.id, role="ADMIN")

        assert response.status_code == 200
        saved = await db_user(session, target.id)
        assert saved is not None
        assert (saved.role, saved.is_superuser) == (UserRole.ADMIN, True)
        [entry] = await audit_entries(session, target.id)
        assert (entry.before, entry.after, entry.reason) == (
            {"role": "MANAGER", "is_superuser": False},
            {"role": "ADMIN", "is_superuser": True},
            None,
        )

    async def test_demote_admin_clears_superuser(self, client, session, admin, auth_as):
        target = await create_user(session, role=UserRole.ADMIN)

        response = await self._put(client, await auth_as(admin), target.id, role="AUTHENTICATED")

        assert response.status_code == 200
        saved = await db_user(session, target.id)
        assert saved is not None
        assert (saved.role, saved.is_superuser) == (UserRole.AUTHENTICATED, False)

    async def test_unverified_promoted_to_manager_is_verified(
        self, client, session, admin, unverified_user, auth_as
    ):
        response = await self._put(client, await auth_as(admin), unverified_user.id, role="MANAGER")

        assert response.status_code == 200
        assert response.json()["is_verified"] is True
        saved = await db_user(session, unverified_user.id)
        assert saved is not None
        assert (saved.role, saved.is_verified) == (UserRole.MANAGER, True)
        [entry] = await audit_entries(session, unverified_user.id)
        assert (entry.before, entry.after) == (
            {"role": "ANONYMOUS", "is_verified": False},
            {"role": "MANAGER", "is_verified": True},
        )

    async def test_same_role_200_without_audit_or_mail(self, client, session, admin, auth_as):
        target = await create_user(session, role=UserRole.MANAGER)

        response = await self._put(client, await auth_as(admin), target.id, role="MANAGER")

        assert response.status_code == 200
        assert response.json()["role"] == "MANAGER"
        assert await audit_entries(session, target.id) == []
        assert await queued_mail(session) == []

    async def test_own_account_403(self, client, session, admin, auth_as):
        await create_user(session, role=UserRole.ADMIN)

        response = await self._put(client, await auth_as(admin), admin.id, role="MANAGER")

        assert response.status_code == 403
        assert response.json() == {
            "detail": {
                "code": "CANNOT_CHANGE_OWN_ROLE",
                "reason": "Admins cannot change their own role",
            }
        }
        saved = await db_user(session, admin.id)
        assert saved is not None
        assert saved.role is UserRole.ADMIN
        assert await audit_entries(session, admin.id) == []

    async def test_manager_403(self, client, session, manager, auth_as):
        target = await create_user(session)

        response = await self._put(client, await auth_as(manager), target.id, role="MANAGER")

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        saved = await db_user(session, target.id)
        assert saved is not None
        assert saved.role is UserRole.AUTHENTICATED

    async def test_manager_cannot_promote_self_403(self, client, session, manager, auth_as):
        response = await self._put(client, await auth_as(manager), manager.id, role="ADMIN")

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        saved = await db_user(session, manager.id)
        assert saved is not None
        assert saved.role is UserRole.MANAGER

    async def test_unknown_404(self, client, admin, auth_as):
        response = await self._put(client, await auth_as(admin), uuid.uuid4(), role="MANAGER")

        assert response.status_code == 404
        assert response.json() == USER_NOT_FOUND

    @pytest.mark.parametrize(
        "body",
        [{"role": "SUPERUSER"}, {"role": "manager"}, {}, {"role": "MANAGER", "reason": "r" * 2001}],
    )
    async def test_invalid_body_422(self, client, session, admin, auth_as, body):
        target = await create_user(session)

        response = await client.put(
            f"/api/v1/users/{target.id}/role", headers=await auth_as(admin), json=body
        )

        assert response.status_code == 422
        assert [loc[:2] for loc in error_locs(response)] == [
            ["body", "reason" if "reason" in body else "role"]
        ]
        assert await audit_entries(session, target.id) == []

    async def test_anonymous_401(self, client, user):
        response = await self._put(client, {}, user.id, role="ADMIN")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestSetProfessional:
    async def _put(
        self, client: httpx.AsyncClient, headers: dict[str, str], user_id: Any, **body: Any
    ) -> httpx.Response:
        return await client.put(f"/api/v1/users/{user_id}/professional", headers=headers, json=body)

    async def test_grant_200_audited_and_mailed(
        self, client, session, manager, auth_as, mailbox: Mailbox, monkeypatch
    ):
        target = await create_user(session, first_name="Pat")
        # The clock is set first: the token's age is measured on the same clock.
        monkeypatch.setattr(api.clock, "now", lambda: FIXED_NOW)
        headers = await auth_as(manager)

        response = await self._put(
            client, headers, target.id, is_professional=True, reason="Ten years in the field"
        )

        assert response.status_code == 200
        body = response.json()
        assert body["is_professional"] is True
        assert datetime.fromisoformat(body["professional_status_updated_at"]) == FIXED_NOW
        saved = await db_user(session, target.id)
        assert saved is not None
        assert (saved.is_professional, saved.professional_status_updated_at) == (True, FIXED_NOW)
        assert [audit_summary(e) for e in await audit_entries(session, target.id)] == [
            {
                "actor_id": manager.id,
                "action": AuditAction.PROFESSIONAL_STATUS_CHANGED,
                "target_type": "user",
                "target_id": target.id,
                "before": {"is_professional": False, "professional_status_updated_at": None},
                "after": {
                    "is_professional": True,
                    "professional_status_updated_at": FIXED_NOW.isoformat(),
                },
                "reason": "Ten years in the field",
            }
        ]
        [mail] = await queued_mail(session)
        assert (mail.to, mail.subject) == (target.email, "Your professional status changed")
        assert await deliver_queued_mail(session) == 1
        [message] = mailbox.to(target.email)
        text = Mailbox.text(message)
        assert "Hello Pat," in text
        assert "Your professional status is now: professional." in text
        assert "Reason: Ten years in the field" in text

    async def test_admin_withdraws_200(self, client, session, admin, auth_as, monkeypatch):
        earlier = FIXED_NOW - timedelta(days=30)
        target = await create_user(
            session, is_professional=True, professional_status_updated_at=earlier
        )
        # The clock is set first: the token's age is measured on the same clock.
        monkeypatch.setattr(api.clock, "now", lambda: FIXED_NOW)
        headers = await auth_as(admin)

        response = await self._put(client, headers, target.id, is_professional=False)

        assert response.status_code == 200
        saved = await db_user(session, target.id)
        assert saved is not None
        assert (saved.is_professional, saved.professional_status_updated_at) == (False, FIXED_NOW)
        [entry] = await audit_entries(session, target.id)
        assert (entry.actor_id, entry.before, entry.after, entry.reason) == (
            admin.id,
            {"is_professional": True, "professional_status_updated_at": earlier.isoformat()},
            {"is_professional": False, "professional_status_updated_at": FIXED_NOW.isoformat()},
            None,
        )
        [mail] = await queued_mail(session)
        assert "Your professional status is now: not professional." in mail.text

    async def test_same_status_200_without_audit_or_mail(self, client, session, manager, auth_as):
        target = await create_user(session)

        response = await self._put(client, await auth_as(manager), target.id, is_professional=False)

        assert response.status_code == 200
        assert response.json()["professional_status_updated_at"] is None
        assert await audit_entries(session, target.id) == []
        assert await queued_mail(session) == []

    async def test_user_403(self, client, session, user, auth_as):
        target = await create_user(session)

        response = await self._put(client, await auth_as(user), target.id, is_professional=True)

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        saved = await db_user(session, target.id)
        assert saved is not None
        assert saved.is_professional is False

    async def test_user_cannot_grant_self_403(self, client, session, user, auth_as):
        response = await self._put(client, await auth_as(user), user.id, is_professional=True)

        assert response.status_code == 403
        saved = await db_user(session, user.id)
        assert saved is not None
        assert saved.is_professional is False

    async def test_unknown_404(self, client, manager, auth_as):
        response = await self._put(
            client, await auth_as(manager), uuid.uuid4(), is_professional=True
        )

        assert response.status_code == 404
        assert response.json() == USER_NOT_FOUND

    @pytest.mark.parametrize("body", [{}, {"is_professional": "perhaps"}])
    async def test_invalid_body_422(self, client, user, manager, auth_as, body):
        response = await client.put(
            f"/api/v1/users/{user.id}/professional", headers=await auth_as(manager), json=body
        )

        assert response.status_code == 422
        assert error_locs(response) == [["body", "is_professional"]]


class TestUnlockUser:
    async def test_unlock_200_resets_and_login_works(self, client, session, manager, auth_as):
        locked_until = api.clock.now() + timedelta(minutes=15)
        target = await create_user(session, locked_until=locked_until, failed_login_count=5)
        form = {"username": target.email, "password": DEFAULT_PASSWORD}
        refused = await client.post("/api/v1/auth/login", data=form)
        assert refused.status_code == 400
        assert refused.json() == {"detail": "LOGIN_ACCOUNT_LOCKED"}

        response = await client.post(
            f"/api/v1/users/{target.id}/unlock", headers=await auth_as(manager)
        )

        assert response.status_code == 200
        assert response.json()["is_locked"] is False
        saved = await db_user(session, target.id)
        assert saved is not None
        assert (saved.failed_login_count, saved.locked_until) == (0, None)
        assert parsed(response.json()) == owner_view(saved)
        assert [audit_summary(e) for e in await audit_entries(session, target.id)] == [
            {
                "actor_id": manager.id,
                "action": AuditAction.USER_UNLOCKED,
                "target_type": "user",
                "target_id": target.id,
                "before": {"is_locked": True},
                "after": {"is_locked": False},
                "reason": None,
            }
        ]
        login = await client.post("/api/v1/auth/login", data=form)
        assert login.status_code == 200
        assert login.json()["token_type"] == "bearer"
        me = await client.get(
            "/api/v1/users/me",
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
        assert me.status_code == 200
        assert me.json()["id"] == str(target.id)

    async def test_admin_200(self, client, session, admin, auth_as):
        target = await create_user(
            session, locked_until=api.clock.now() + timedelta(minutes=5), failed_login_count=5
        )

        response = await client.post(
            f"/api/v1/users/{target.id}/unlock", headers=await auth_as(admin)
        )

        assert response.status_code == 200
        saved = await db_user(session, target.id)
        assert saved is not None
        assert (saved.failed_login_count, saved.locked_until, saved.is_locked) == (0, None, False)

    async def test_user_403(self, client, session, user, auth_as):
        locked_until = api.clock.now() + timedelta(minutes=15)
        target = await create_user(session, locked_until=locked_until, failed_login_count=5)

        response = await client.post(
            f"/api/v1/users/{target.id}/unlock", headers=await auth_as(user)
        )

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        saved = await db_user(session, target.id)
        assert saved is not None
        assert (saved.failed_login_count, saved.locked_until) == (5, locked_until)
        assert await audit_entries(session, target.id) == []

    async def test_unknown_404(self, client, manager, auth_as):
        response = await client.post(
            f"/api/v1/users/{uuid.uuid4()}/unlock", headers=await auth_as(manager)
        )

        assert response.status_code == 404
        assert response.json() == USER_NOT_FOUND

    async def test_anonymous_401(self, client, user):
        response = await client.post(f"/api/v1/users/{user.id}/unlock")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
