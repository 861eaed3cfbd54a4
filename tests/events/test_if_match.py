"""Conditional PATCH /events/{id} (If-Match, CONC-1): a write names the version it was made from.

The tag is the one GET /events/{id} gives; it is compared strongly under the event's row lock,
so of two writers holding one tag exactly one wins and the other gets 412 with the current tag.
"""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import delete, func
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlmodel import col

from api.events.models import Event
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, token_headers
from tests.leaks import LeakScanner
from tests.support import ServerProcess, TestDatabaseServer, run_server

API = "/api/v1/events"
PRECONDITION_FAILED = {"detail": "PRECONDITION_FAILED"}


async def current(
    client: httpx.AsyncClient, event: Event, headers: dict[str, str]
) -> httpx.Response:
    response = await client.get(f"{API}/{event.id}", headers=headers)
    assert response.status_code == 200
    return response


class TestIfMatch:
    async def test_matching_tag_200_with_the_new_etag_get_gives(
        self, client, event, manager, auth_as
    ):
        headers = await auth_as(manager)
        before = await current(client, event, headers)

        response = await client.patch(
            f"{API}/{event.id}",
            json={"title": "Renamed by tag"},
            headers={**headers, "If-Match": before.headers["ETag"]},
        )

        assert response.status_code == 200
        assert response.json()["title"] == "Renamed by tag"
        after = await current(client, event, headers)
        assert response.headers["ETag"] == after.headers["ETag"] != before.headers["ETag"]
        assert response.json() == after.json()
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["Vary"] == "Authorization"

    async def test_stale_tag_412_with_the_current_etag_and_nothing_changed(
        self, client, event, manager, auth_as
    ):
        headers = await auth_as(manager)
        stale = (await current(client, event, headers)).headers["ETag"]
        first = await client.patch(
            f"{API}/{event.id}", json={"title": "First edit"}, headers=headers
        )
        assert first.status_code == 200

        response = await client.patch(
            f"{API}/{event.id}",
            json={"title": "Edit from a stale read", "capacity": 50},
            headers={**headers, "If-Match": stale},
        )

        assert response.status_code == 412
        assert response.json() == PRECONDITION_FAILED
        now = await current(client, event, headers)
        assert response.headers["ETag"] == now.headers["ETag"] == first.headers["ETag"]
        assert now.json() == first.json()
        assert (now.json()["title"], now.json()["capacity"]) == ("First edit", 10)

    async def test_star_matches_any_version(self, client, event, manager, auth_as):
        headers = await auth_as(manager)

        response = await client.patch(
            f"{API}/{event.id}", json={"capacity": 12}, headers={**headers, "If-Match": "*"}
        )

        assert response.status_code == 200
        assert response.json()["capacity"] == 12
        assert response.headers["ETag"] == (await current(client, event, headers)).headers["ETag"]

    async def test_weak_tag_never_matches(self, client, event, manager, auth_as):
        headers = await auth_as(manager)
        before = await current(client, event, headers)

        response = await client.patch(
            f"{API}/{event.id}",
            json={"capacity": 12},
            headers={**headers, "If-Match": f"W/{before.headers['ETag']}"},
        )

        assert response.status_code == 412
        assert response.json() == PRECONDITION_FAILED
        assert response.headers["ETag"] == before.headers["ETag"]
        assert (await current(client, event, headers)).json() == before.json()

    async def test_list_holding_the_current_tag_matches(self, client, event, manager, auth_as):
        headers = await auth_as(manager)
        tag = (await current(client, event, headers)).headers["ETag"]

        response = await client.patch(
            f"{API}/{event.id}",
            json={"capacity": 12},
            headers={**headers, "If-Match": f'"not-this-one", W/{tag} ,{tag}'},
        )

        assert response.status_code == 200
        assert response.json()["capacity"] == 12

    async def test_list_without_the_current_tag_412(self, client, event, manager, auth_as):
        headers = await auth_as(manager)
        tag = (await current(client, event, headers)).headers["ETag"]

        response = await client.patch(
            f"{API}/{event.id}",
            json={"capacity": 12},
            headers={**headers, "If-Match": f'"not-this-one", W/{tag}'},
        )

        assert response.status_code == 412
        assert response.json() == PRECONDITION_FAILED
        assert response.headers["ETag"] == tag

    async def test_no_header_last_write_wins(self, client, event, manager, auth_as):
        headers = await auth_as(manager)
        await client.patch(f"{API}/{event.id}", json={"capacity": 11}, headers=headers)

        response = await client.patch(f"{API}/{event.id}", json={"capacity": 12}, headers=headers)

        assert response.status_code == 200
        assert response.json()["capacity"] == 12
        assert response.headers["ETag"] == (await current(client, event, headers)).headers["ETag"]

    async def test_access_checks_come_first(self, client, event, pending_event, user, auth_as):
        headers = {**await auth_as(user), "If-Match": '"stale"'}

        anonymous = await client.patch(
            f"{API}/{event.id}", json={"capacity": 12}, headers={"If-Match": '"stale"'}
        )
        forbidden = await client.patch(f"{API}/{event.id}", json={"capacity": 12}, headers=headers)
        hidden = await client.patch(
            f"{API}/{pending_event.id}", json={"capacity": 12}, headers=headers
        )

        assert (anonymous.status_code, anonymous.json()) == (401, {"detail": "UNAUTHORIZED"})
        assert forbidden.status_code == 403
        assert forbidden.json()["detail"]["code"] == "NOT_EVENT_OWNER"
        assert (hidden.status_code, hidden.json()) == (404, {"detail": "EVENT_NOT_FOUND"})
        assert ["ETag" in r.headers for r in (anonymous, forbidden, hidden)] == [False] * 3

    def test_openapi_documents_if_match_and_412(self, app):
        operation = app.openapi()["paths"]["/api/v1/events/{event_id}"]["patch"]

        headers = [p for p in operation["parameters"] if p["in"] == "header"]
        assert [(p["name"], p["required"]) for p in headers] == [("If-Match", False)]
        assert operation["responses"]["412"]["description"] == "PRECONDITION_FAILED"
        assert "ETag" in operation["responses"]["412"]["headers"]
        assert "ETag" in operation["responses"]["200"]["headers"]


# --- CONC-1: two writers with one tag, against a real server ----------------------------------


@pytest.fixture(scope="module")
def server(db_server: TestDatabaseServer) -> Iterator[ServerProcess]:
    with run_server({"AUTH_RATE_LIMIT": "off"}, workers=2, own_database=db_server) as process:
        yield process


@pytest.fixture
async def server_engine(server: ServerProcess) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(server.database_url)
    yield engine
    await engine.dispose()


@pytest.mark.security("CONC-1")
@pytest.mark.parametrize("run", range(3))
async def test_parallel_patches_with_one_tag_one_wins(
    server: ServerProcess, server_engine: AsyncEngine, run: int
) -> None:
    del run  # each run repeats the same race afresh
    prefix = f"ifmatch-{uuid.uuid4().hex[:8]}-"
    async with AsyncSession(server_engine, expire_on_commit=False) as session:
        owner = await create_user(session, role=UserRole.MANAGER, email=f"{prefix}o@example.com")
        headers = await token_headers(session, owner)
        event = await create_event(session, owner=owner, capacity=10)
        await session.commit()
    try:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=60, event_hooks=LeakScanner().hooks
        ) as client:
            tag = (await client.get(f"{API}/{event.id}")).headers["ETag"]
            start = asyncio.Event()

            async def patch(title: str) -> httpx.Response:
                await start.wait()
                return await client.patch(
                    f"{API}/{event.id}",
                    json={"title": title},
                    headers={**headers, "If-Match": tag},
                )

            tasks = [asyncio.create_task(patch(t)) for t in ("Writer A edit", "Writer B edit")]
            await asyncio.sleep(0)
            start.set()
            answers = await asyncio.gather(*tasks)
            final = await client.get(f"{API}/{event.id}")

        assert Counter(a.status_code for a in answers) == {200: 1, 412: 1}, [
            (a.status_code, a.text) for a in answers
        ]
        [winner] = [a for a in answers if a.status_code == 200]
        [loser] = [a for a in answers if a.status_code == 412]
        assert loser.json() == PRECONDITION_FAILED
        assert loser.headers["ETag"] == winner.headers["ETag"] == final.headers["ETag"]
        assert final.json() == winner.json()
        assert final.json()["title"] == winner.json()["title"]
    finally:
        async with AsyncSession(server_engine) as session:
            await session.execute(delete(Event).where(col(Event.id) == event.id))
            await session.execute(delete(User).where(func.lower(User.email).like(f"{prefix}%")))
            await session.commit()
