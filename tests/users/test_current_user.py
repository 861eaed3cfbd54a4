"""The current-user dependencies of api.users.auth (current_active_user, optional_user,
optional_viewer, current_verified_user): one statement per request, and what a token that finds
no active account means to a route that needs a caller and to one that does not."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.events.models import EventStatus
from api.users.models import User, UserRole
from tests.factories import create_event, create_user

ME = "/api/v1/users/me"
LOGOUT = "/api/v1/auth/logout"
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}


@pytest.fixture
def selects(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SELECT statements sent to PostgreSQL (savepoint bookkeeping left out)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):
            seen.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def deactivate_keeping_tokens(session: AsyncSession, user: User) -> None:
    """An inactive account whose token rows survived (deactivation normally deletes them)."""
    user.is_active = False
    await session.flush()


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def get_counted(app, selects: list[str], path: str, **kwargs: Any) -> httpx.Response:
    """One request, with only its own statements in `selects` (the suite's client scans for
    leaks with queries of its own after each response)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as plain:
        selects.clear()
        return await plain.get(path, **kwargs)


class TestCurrentActiveUser:
    async def test_token_and_user_in_one_select(self, app, user, auth_as, selects):
        headers = await auth_as(user)
        response = await get_counted(app, selects, ME, headers=headers)
        assert response.status_code == 200
        assert response.json()["id"] == str(user.id)
        assert len(selects) == 1
        assert "JOIN accesstoken" in selects[0]

    async def test_no_token_401_without_a_query(self, app, selects):
        assert_401(await get_counted(app, selects, ME))
        assert selects == []

    async def test_inactive_account_with_live_token_401(self, client, session, user, auth_as):
        headers = await auth_as(user)
        await deactivate_keeping_tokens(session, user)
        assert_401(await client.get(ME, headers=headers))

    async def test_logout_of_inactive_account_401(self, client, session, user, auth_as):
        # Logout is fastapi-users' route and strategy: the same lookup refuses the token.
        headers = await auth_as(user)
        await deactivate_keeping_tokens(session, user)
        assert_401(await client.post(LOGOUT, headers=headers))


class TestOptionalViewer:
    async def test_dead_token_reads_a_public_event_as_anonymous(self, client, session, manager):
        event = await create_event(session, owner=manager)
        anonymous = await client.get(f"/api/v1/events/{event.id}")
        response = await client.get(
            f"/api/v1/events/{event.id}", headers={"Authorization": "Bearer no-such-token"}
        )
        assert response.status_code == 200
        assert response.content == anonymous.content
        assert response.json()["id"] == str(event.id)

    async def test_inactive_creator_sees_own_pending_event_404(
        self, client, session, manager, auth_as
    ):
        event = await create_event(session, owner=manager, status=EventStatus.PENDING)
        headers = await auth_as(manager)
        assert (await client.get(f"/api/v1/events/{event.id}", headers=headers)).status_code == 200
        await deactivate_keeping_tokens(session, manager)
        response = await client.get(f"/api/v1/events/{event.id}", headers=headers)
        assert response.status_code == 404
        assert response.json() == {"detail": "EVENT_NOT_FOUND"}


class TestOptionalUser:
    async def test_own_events_need_a_live_token(self, client, session, manager, auth_as):
        await create_event(session, owner=manager)
        headers = await auth_as(manager)
        mine = await client.get("/api/v1/events?created_by=me", headers=headers)
        assert mine.status_code == 200
        assert mine.json()["total"] == 1
        dead = {"Authorization": "Bearer no-such-token"}
        assert_401(await client.get("/api/v1/events?created_by=me", headers=dead))
        await deactivate_keeping_tokens(session, manager)
        assert_401(await client.get("/api/v1/events?created_by=me", headers=headers))


class TestCurrentVerifiedUser:
    async def test_unverified_403(self, client, session, auth_as):
        unverified = await create_user(session, role=UserRole.ANONYMOUS, is_verified=False)
        response = await client.get(
            f"/api/v1/profiles/{unverified.nickname}", headers=await auth_as(unverified)
        )
        assert response.status_code == 403
        assert response.json() == {"detail": "FORBIDDEN"}
