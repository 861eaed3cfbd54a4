"""TOK-4: an API token acts only within its scopes and its owner's current role; scope is checked
before anything else; it dies with the owner's password change or reset, deactivation or deletion,
and it never manages tokens. Also last_used_at, and user_id_for_token."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.events.models import EventStatus
from api.tokens.models import ApiToken, Scope, hash_api_token, new_token
from api.users.auth import user_id_for_token
from api.users.models import UserRole
from tests.factories import (
    DEFAULT_PASSWORD,
    api_token_headers,
    create_event,
    create_user,
    event_body,
    queued_mail,
)

ME = "/api/v1/users/me"
EVENTS = "/api/v1/events"
TOKENS = "/api/v1/users/me/api-tokens"
LOGOUT = "/api/v1/auth/logout"
NEW_PASSWORD = "another perfectly fine passphrase"
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.security("TOK-4")


def insufficient(scope: str | None) -> dict[str, Any]:
    reason = (
        f"This API token lacks the scope {scope}"
        if scope
        else "This route needs a login token: API tokens may not call it"
    )
    return {"detail": {"code": "INSUFFICIENT_SCOPE", "reason": reason, "required_scope": scope}}


def assert_401(response: httpx.Response) -> None:
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def reset_token_for(client: httpx.AsyncClient, session: AsyncSession, email: str) -> str:
    response = await client.post("/api/v1/auth/forgot-password", json={"email": email})
    assert response.status_code == 202
    mails = [m for m in await queued_mail(session) if m.to == email and "reset-password" in m.text]
    link = mails[-1].text.split("reset-password?token=", 1)[1]
    return link.split()[0]


class TestRevocation:
    async def test_password_change_revokes(self, client, session, user, auth_as):
        api = await api_token_headers(session, user)
        response = await client.patch(
            ME,
            headers=await auth_as(user),
            json={"password": NEW_PASSWORD, "current_password": DEFAULT_PASSWORD},
        )
        assert response.status_code == 200
        assert_401(await client.get(ME, headers=api))

    async def test_password_reset_revokes(self, client, session, user):
        api = await api_token_headers(session, user)
        token = await reset_token_for(client, session, user.email)
        response = await client.post(
            "/api/v1/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
        )
        assert response.status_code == 200
        assert_401(await client.get(ME, headers=api))

    async def test_deactivation_by_staff_revokes(self, client, session, user, admin, auth_as):
        api = await api_token_headers(session, user)
        response = await client.patch(
            f"/api/v1/users/{user.id}", headers=await auth_as(admin), json={"is_active": False}
        )
        assert response.status_code == 200
        assert_401(await client.get(ME, headers=api))
        rows = await session.scalars(select(ApiToken).where(col(ApiToken.user_id) == user.id))
        assert rows.all() == []

    async def test_account_deletion_revokes(self, client, session, user, auth_as):
        api = await api_token_headers(session, user)
        assert (await client.delete(ME, headers=await auth_as(user))).status_code == 204
        assert_401(await client.get(ME, headers=api))

    async def test_an_inactive_owner_401(self, client, session, user):
        api = await api_token_headers(session, user)
        user.is_active = False  # token rows kept: the lookup itself refuses
        await session.flush()
        assert_401(await client.get(ME, headers=api))

    async def test_expired_401(self, client, session, user, monkeypatch):
        api = await api_token_headers(session, user, expires_at=NOW + timedelta(minutes=1))
        monkeypatch.setattr(clock, "now", lambda: NOW)
        assert (await client.get(ME, headers=api)).status_code == 200
        monkeypatch.setattr(clock, "now", lambda: NOW + timedelta(minutes=1))
        assert_401(await client.get(ME, headers=api))


class TestKeptAcross:
    async def test_logout_of_a_login_token(self, client, session, user, auth_as):
        api = await api_token_headers(session, user)
        assert (await client.post(LOGOUT, headers=await auth_as(user))).status_code == 204
        assert (await client.get(ME, headers=api)).status_code == 200

    async def test_role_change(self, client, session, user, admin, auth_as):
        api = await api_token_headers(session, user)
        response = await client.put(
            f"/api/v1/users/{user.id}/role", headers=await auth_as(admin), json={"role": "MANAGER"}
        )
        assert response.status_code == 200
        me = await client.get(ME, headers=api)
        assert (me.status_code, me.json()["role"]) == (200, "MANAGER")

    async def test_email_change(self, client, session, user, auth_as):
        api = await api_token_headers(session, user)
        response = await client.patch(
            ME, headers=await auth_as(user), json={"email": f"new-{uuid.uuid4().hex}@example.com"}
        )
        assert response.status_code == 200
        me = await client.get(ME, headers=api)
        assert (me.status_code, me.json()["is_verified"]) == (200, False)


class TestRolePerRequest:
    async def test_demoted_manager_403_at_once(self, client, session, manager, admin, auth_as):
        api = await api_token_headers(session, manager, [Scope.EVENTS_WRITE])
        assert (await client.post(EVENTS, headers=api, json=event_body())).status_code == 201
        demoted = await client.put(
            f"/api/v1/users/{manager.id}/role",
            headers=await auth_as(admin),
            json={"role": "AUTHENTICATED"},
        )
        assert demoted.status_code == 200

        response = await client.post(EVENTS, headers=api, json=event_body())

        assert (response.status_code, response.json()) == (403, {"detail": "FORBIDDEN"})


class TestNeverManagesTokens:
    @pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
    async def test_api_tokens_routes_403(self, client, session, user, method):
        api = await api_token_headers(session, user)  # every scope
        path = f"{TOKENS}/{uuid.uuid4()}" if method == "DELETE" else TOKENS
        body = {"name": "x", "scopes": ["users:read"]} if method == "POST" else None

        response = await client.request(method, path, headers=api, json=body)

        assert (response.status_code, response.json()) == (403, insufficient(None))

    async def test_logout_403_live_401_dead(self, client, session, user):
        api = await api_token_headers(session, user)
        response = await client.post(LOGOUT, headers=api)
        assert (response.status_code, response.json()) == (403, insufficient(None))
        assert (await client.get(ME, headers=api)).status_code == 200

        dead = {"Authorization": f"Bearer {new_token()}"}
        assert_401(await client.post(LOGOUT, headers=dead))


class TestPublicReads:
    @pytest.mark.parametrize("path", ["", "/{id}", "/{id}/calendar.ics"])
    async def test_dead_api_token_401(self, client, session, manager, path):
        event = await create_event(session, owner=manager, status=EventStatus.PUBLISHED)
        dead = {"Authorization": f"Bearer {new_token()}"}

        response = await client.get(EVENTS + path.replace("{id}", str(event.id)), headers=dead)

        assert_401(response)

    @pytest.mark.parametrize("path", ["", "/{id}", "/{id}/calendar.ics"])
    async def test_dead_login_token_reads_as_anonymous(self, client, session, manager, path):
        event = await create_event(session, owner=manager, status=EventStatus.PUBLISHED)
        dead = {"Authorization": "Bearer not-a-live-login-token"}

        response = await client.get(EVENTS + path.replace("{id}", str(event.id)), headers=dead)

        assert response.status_code == 200

    async def test_without_the_scope_403(self, client, session, user, manager):
        event = await create_event(session, owner=manager, status=EventStatus.PUBLISHED)
        api = await api_token_headers(session, user, [Scope.USERS_READ])

        response = await client.get(f"{EVENTS}/{event.id}", headers=api)

        assert (response.status_code, response.json()) == (403, insufficient("events:read"))

    async def test_the_owner_sees_what_their_role_sees(self, client, session, manager):
        pending = await create_event(session, owner=manager, status=EventStatus.PENDING)
        api = await api_token_headers(session, manager, [Scope.EVENTS_READ])

        response = await client.get(f"{EVENTS}/{pending.id}", headers=api)

        assert (response.status_code, response.json()["id"]) == (200, str(pending.id))


class TestScopeComesFirst:
    async def test_before_body_validation(self, client, session, manager):
        api = await api_token_headers(session, manager, [Scope.EVENTS_READ])
        response = await client.post(EVENTS, headers=api, json={"title": 1})
        assert (response.status_code, response.json()) == (403, insufficient("events:write"))

    async def test_before_a_bad_path_id(self, client, session, manager):
        api = await api_token_headers(session, manager, [Scope.EVENTS_READ])
        response = await client.patch(f"{EVENTS}/not-a-uuid", headers=api, json={})
        assert (response.status_code, response.json()) == (403, insufficient("events:write"))

    @pytest.mark.parametrize(
        ("scopes", "status"),
        [([Scope.EVENTS_READ], 403), ([Scope.EVENTS_WRITE], 422)],
    )
    async def test_malformed_json(self, client, session, manager, scopes, status):
        api = await api_token_headers(session, manager, scopes)
        response = await client.post(
            EVENTS, headers={**api, "Content-Type": "application/json"}, content=b'{"title": '
        )
        assert response.status_code == status
        if status == 403:
            assert response.json() == insufficient("events:write")
        else:
            assert [e["type"] for e in response.json()["detail"]] == ["json_invalid"]

    async def test_malformed_json_session_only_route(self, client, session, user):
        api = await api_token_headers(session, user)
        response = await client.patch(
            ME, headers={**api, "Content-Type": "application/json"}, content=b"{"
        )
        assert (response.status_code, response.json()) == (403, insufficient(None))

    async def test_malformed_json_dead_api_token_401(self, client):
        dead = {"Authorization": f"Bearer {new_token()}", "Content-Type": "application/json"}
        assert_401(await client.post(EVENTS, headers=dead, content=b"{"))

    async def test_malformed_json_login_token_422(self, client, manager, auth_as):
        headers = {**await auth_as(manager), "Content-Type": "application/json"}
        response = await client.post(EVENTS, headers=headers, content=b"{")
        assert response.status_code == 422

    async def test_malformed_json_route_without_token_422(self, client, session, user):
        api = await api_token_headers(session, user, [Scope.EVENTS_READ])
        response = await client.post(
            "/api/v1/auth/register",
            headers={**api, "Content-Type": "application/json"},
            content=b"{",
        )
        assert response.status_code == 422


async def last_used(session: AsyncSession, token: str) -> datetime | None:
    row = await session.scalar(
        select(col(ApiToken.last_used_at)).where(col(ApiToken.token_hash) == hash_api_token(token))
    )
    return row


class TestLastUsed:
    async def test_written_at_most_once_a_minute(self, client, session, user, monkeypatch):
        api = await api_token_headers(session, user, [Scope.USERS_READ])
        token = bearer(api)
        monkeypatch.setattr(clock, "now", lambda: NOW)
        first = await client.get(ME, headers=api)
        assert await last_used(session, token) == NOW

        for seconds in (1, 59):
            at = NOW + timedelta(seconds=seconds)
            monkeypatch.setattr(clock, "now", lambda at=at: at)
            again = await client.get(ME, headers=api)
            assert again.json() == first.json()
            assert await last_used(session, token) == NOW

        later = NOW + timedelta(minutes=1, seconds=1)
        monkeypatch.setattr(clock, "now", lambda: later)
        assert (await client.get(ME, headers=api)).status_code == 200
        assert await last_used(session, token) == later

    async def test_listed_after_use(self, client, user, auth_as, monkeypatch):
        monkeypatch.setattr(clock, "now", lambda: NOW)
        created = await client.post(
            TOKENS, headers=await auth_as(user), json={"name": "x", "scopes": ["users:read"]}
        )
        api = {"Authorization": f"Bearer {created.json()['token']}"}
        assert (await client.get(ME, headers=api)).status_code == 200

        listed = await client.get(TOKENS, headers=await auth_as(user))

        assert listed.json()["items"][0]["last_used_at"] == NOW.isoformat().replace("+00:00", "Z")

    async def test_a_failed_write_changes_no_answer(self, app, client, session, user, auth_as):
        api = await api_token_headers(session, user, [Scope.USERS_READ])
        expected = (await client.get(ME, headers=await auth_as(user))).json()

        @asynccontextmanager
        async def broken() -> AsyncIterator[AsyncSession]:
            raise ConnectionError("the database went away")
            yield session  # pragma: no cover

        app.state.open_session = broken
        response = await client.get(ME, headers=api)

        assert (response.status_code, response.json()) == (200, expected)
        assert await last_used(session, bearer(api)) is None


class TestUserIdForToken:
    async def test_either_kind(self, session, user, auth_as):
        login = bearer(await auth_as(user))
        api = bearer(await api_token_headers(session, user, [Scope.USERS_READ]))
        assert await user_id_for_token(session, login) == user.id
        assert await user_id_for_token(session, api) == user.id
        connection = await session.connection()
        assert await user_id_for_token(connection, api) == user.id

    async def test_dead_or_none(self, session, user):
        expired = await api_token_headers(session, user, expires_at=clock.now() - timedelta(1))
        assert await user_id_for_token(session, bearer(expired)) is None
        assert await user_id_for_token(session, new_token()) is None
        assert await user_id_for_token(session, "not-a-token") is None
        assert await user_id_for_token(session, None) is None

    async def test_inactive_owner_none(self, session):
        owner = await create_user(session, role=UserRole.AUTHENTICATED)
        api = bearer(await api_token_headers(session, owner))
        owner.is_active = False
        await session.flush()
        assert await user_id_for_token(session, api) is None
