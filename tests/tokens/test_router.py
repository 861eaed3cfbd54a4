"""/users/me/api-tokens: create, list and delete a user's personal API tokens."""

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.audit.models import AuditAction, AuditLog
from api.tokens.models import ApiToken, Scope
from api.tokens.service import MAX_TOKENS_PER_USER
from tests.factories import api_token_headers, create_user

TOKENS = "/api/v1/users/me/api-tokens"
ME = "/api/v1/users/me"
TOKEN_SHAPE = re.compile(r"^em_pat_[0-9A-Za-z]{43}$")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(clock, "now", lambda: NOW)
    return NOW


async def stored(session: AsyncSession, token_id: str) -> ApiToken | None:
    return await session.get(ApiToken, uuid.UUID(token_id))


class TestCreateApiToken:
    async def test_201_body_and_token_shape(self, client, session, user, auth_as, frozen):
        expires = frozen + timedelta(days=30)
        response = await client.post(
            TOKENS,
            headers=await auth_as(user),
            json={
                "name": "CI",
                "scopes": ["events:read", "users:read"],
                "expires_at": iso(expires),
            },
        )

        assert response.status_code == 201
        body = response.json()
        token = body["token"]
        assert TOKEN_SHAPE.match(token)
        assert body == {
            "id": body["id"],
            "name": "CI",
            "scopes": ["events:read", "users:read"],
            "token_prefix": token[:12],
            "created_at": iso(frozen),
            "expires_at": iso(expires),
            "last_used_at": None,
            "token": token,
        }
        row = await stored(session, body["id"])
        assert row is not None
        assert row.user_id == user.id
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()

    async def test_expiry_defaults_to_365_days(self, client, user, auth_as, frozen):
        response = await client.post(
            TOKENS, headers=await auth_as(user), json={"name": "x", "scopes": ["users:read"]}
        )

        assert response.status_code == 201
        assert response.json()["expires_at"] == iso(frozen + timedelta(days=365))

    async def test_tokens_differ(self, client, user, auth_as):
        headers = await auth_as(user)
        body = {"name": "x", "scopes": ["users:read"]}
        first = (await client.post(TOKENS, headers=headers, json=body)).json()
        second = (await client.post(TOKENS, headers=headers, json=body)).json()
        assert first["token"] != second["token"]

    async def test_the_new_token_works_within_its_scopes(self, client, user, auth_as):
        response = await client.post(
            TOKENS, headers=await auth_as(user), json={"name": "x", "scopes": ["users:read"]}
        )
        headers = {"Authorization": f"Bearer {response.json()['token']}"}

        me = await client.get(ME, headers=headers)
        assert me.status_code == 200
        assert me.json()["id"] == str(user.id)
        inbox = await client.get("/api/v1/notifications", headers=headers)
        assert inbox.status_code == 403
        assert inbox.json()["detail"]["required_scope"] == "notifications:read"

    async def test_audited_without_the_token(self, client, session, user, auth_as):
        response = await client.post(
            TOKENS, headers=await auth_as(user), json={"name": "CI", "scopes": ["users:read"]}
        )
        body = response.json()

        entry = await session.scalar(
            select(AuditLog).where(col(AuditLog.target_id) == uuid.UUID(body["id"]))
        )
        assert entry is not None
        assert (entry.actor_id, entry.action, entry.target_type) == (
            user.id,
            AuditAction.API_TOKEN_CREATED,
            "api_token",
        )
        assert entry.before is None
        assert entry.after == {
            "name": "CI",
            "scopes": ["users:read"],
            "token_prefix": body["token_prefix"],
            "expires_at": entry.after["expires_at"],
        }
        row = await stored(session, body["id"])
        assert row is not None
        assert body["token"] not in str(entry.after)
        assert row.token_hash not in str(entry.after)

    async def test_limit_409(self, client, session, user, auth_as):
        for _ in range(MAX_TOKENS_PER_USER):
            await api_token_headers(session, user, [Scope.USERS_READ])

        response = await client.post(
            TOKENS, headers=await auth_as(user), json={"name": "x", "scopes": ["users:read"]}
        )

        assert response.status_code == 409
        assert response.json() == {
            "detail": {
                "code": "API_TOKEN_LIMIT_REACHED",
                "reason": "A user holds at most 50 API tokens: delete one first",
            }
        }

    async def test_the_limit_is_per_user(self, client, session, user, auth_as):
        other = await create_user(session)
        for _ in range(MAX_TOKENS_PER_USER):
            await api_token_headers(session, other, [Scope.USERS_READ])

        response = await client.post(
            TOKENS, headers=await auth_as(user), json={"name": "x", "scopes": ["users:read"]}
        )
        assert response.status_code == 201

    @pytest.mark.parametrize(
        ("body", "loc", "kind"),
        [
            ({"name": "", "scopes": ["users:read"]}, ["body", "name"], "string_too_short"),
            ({"name": "x" * 101, "scopes": ["users:read"]}, ["body", "name"], "string_too_long"),
            ({"scopes": ["users:read"]}, ["body", "name"], "missing"),
            ({"name": "x", "scopes": []}, ["body", "scopes"], "too_short"),
            ({"name": "x"}, ["body", "scopes"], "missing"),
            ({"name": "x", "scopes": ["events:delete"]}, ["body", "scopes", 0], "enum"),
            (
                {"name": "x", "scopes": ["users:read", "users:read"]},
                ["body", "scopes"],
                "value_error",
            ),
        ],
    )
    async def test_bad_body_422(self, client, user, auth_as, body, loc, kind):
        response = await client.post(TOKENS, headers=await auth_as(user), json=body)

        assert response.status_code == 422
        errors = response.json()["detail"]
        assert [(e["loc"], e["type"]) for e in errors] == [(loc, kind)]

    @pytest.mark.parametrize(
        ("expires_in", "message"),
        [
            (timedelta(seconds=-1), "Value error, must be in the future"),
            (timedelta(0), "Value error, must be in the future"),
            (timedelta(days=365, seconds=1), "Value error, must be at most 365 days ahead"),
        ],
    )
    async def test_expiry_out_of_range_422(
        self, client, user, auth_as, frozen, expires_in, message
    ):
        body = {"name": "x", "scopes": ["users:read"], "expires_at": iso(frozen + expires_in)}
        response = await client.post(TOKENS, headers=await auth_as(user), json=body)

        assert response.status_code == 422
        errors = response.json()["detail"]
        assert [(e["loc"], e["msg"]) for e in errors] == [(["body", "expires_at"], message)]

    async def test_expiry_365_days_ahead_accepted(self, client, user, auth_as, frozen):
        body = {
            "name": "x",
            "scopes": ["users:read"],
            "expires_at": iso(frozen + timedelta(days=365)),
        }
        response = await client.post(TOKENS, headers=await auth_as(user), json=body)
        assert response.status_code == 201

    async def test_naive_expiry_422(self, client, user, auth_as):
        body = {"name": "x", "scopes": ["users:read"], "expires_at": "2026-12-24T10:00:00"}
        response = await client.post(TOKENS, headers=await auth_as(user), json=body)

        assert response.status_code == 422
        errors = response.json()["detail"]
        assert [(e["loc"], e["type"]) for e in errors] == [
            (["body", "expires_at"], "timezone_aware")
        ]

    async def test_anonymous_401(self, client):
        response = await client.post(TOKENS, json={"name": "x", "scopes": ["users:read"]})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


class TestListApiTokens:
    async def test_newest_first_without_tokens_expired_listed(
        self, client, session, user, auth_as, monkeypatch
    ):
        created: list[str] = []
        for minutes in (0, 1, 2):
            at = NOW + timedelta(minutes=minutes)
            monkeypatch.setattr(clock, "now", lambda at=at: at)
            body = {"name": f"t{minutes}", "scopes": ["users:read"]}
            if minutes == 0:
                body["expires_at"] = iso(at + timedelta(minutes=1))  # expired below
            response = await client.post(TOKENS, headers=await auth_as(user), json=body)
            assert response.status_code == 201
            created.append(response.json()["id"])
        other = await create_user(session)
        await api_token_headers(session, other, [Scope.USERS_READ])
        monkeypatch.setattr(clock, "now", lambda: NOW + timedelta(hours=1))

        response = await client.get(TOKENS, headers=await auth_as(user))

        assert response.status_code == 200
        page = response.json()
        assert [item["id"] for item in page["items"]] == created[::-1]
        assert [item["name"] for item in page["items"]] == ["t2", "t1", "t0"]
        assert page["total"] == 3
        assert all("token" not in item for item in page["items"])
        assert set(page["items"][0]) == {
            "id",
            "name",
            "scopes",
            "token_prefix",
            "created_at",
            "expires_at",
            "last_used_at",
        }

    async def test_empty(self, client, user, auth_as):
        response = await client.get(TOKENS, headers=await auth_as(user))
        assert response.status_code == 200
        assert (response.json()["items"], response.json()["total"]) == ([], 0)

    async def test_anonymous_401(self, client):
        assert (await client.get(TOKENS)).status_code == 401


async def create(client: Any, headers: dict[str, str], scopes: list[str]) -> dict[str, Any]:
    response = await client.post(TOKENS, headers=headers, json={"name": "x", "scopes": scopes})
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


class TestDeleteApiToken:
    async def test_204_then_the_token_401(self, client, session, user, auth_as):
        headers = await auth_as(user)
        body = await create(client, headers, ["users:read"])
        bearer = {"Authorization": f"Bearer {body['token']}"}
        assert (await client.get(ME, headers=bearer)).status_code == 200

        response = await client.delete(f"{TOKENS}/{body['id']}", headers=headers)

        assert response.status_code == 204
        assert response.content == b""
        refused = await client.get(ME, headers=bearer)
        assert refused.status_code == 401
        assert refused.json() == {"detail": "UNAUTHORIZED"}
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert await stored(session, body["id"]) is None
        entry = await session.scalar(
            select(AuditLog).where(
                col(AuditLog.target_id) == uuid.UUID(body["id"]),
                col(AuditLog.action) == AuditAction.API_TOKEN_REVOKED,
            )
        )
        assert entry is not None
        assert (entry.actor_id, entry.target_type, entry.after) == (user.id, "api_token", None)
        assert entry.before is not None
        assert body["token"] not in str(entry.before)

    async def test_another_users_token_404(self, client, session, user, auth_as):
        other = await create_user(session)
        body = await create(client, await auth_as(other), ["users:read"])

        response = await client.delete(f"{TOKENS}/{body['id']}", headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == {"detail": "API_TOKEN_NOT_FOUND"}
        assert await stored(session, body["id"]) is not None

    async def test_unknown_404(self, client, user, auth_as):
        response = await client.delete(f"{TOKENS}/{uuid.uuid4()}", headers=await auth_as(user))
        assert response.status_code == 404
        assert response.json() == {"detail": "API_TOKEN_NOT_FOUND"}

    async def test_twice_404(self, client, user, auth_as):
        headers = await auth_as(user)
        body = await create(client, headers, ["users:read"])
        assert (await client.delete(f"{TOKENS}/{body['id']}", headers=headers)).status_code == 204
        again = await client.delete(f"{TOKENS}/{body['id']}", headers=headers)
        assert again.status_code == 404
