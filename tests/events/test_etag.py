"""Conditional GET on the public event reads: ETag, 304 while unchanged, 200 once changed."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.events.models import Event
from api.users.models import User
from tests.factories import create_event


@pytest.fixture
def paths(event: Event) -> dict[str, str]:
    return {"one": f"/api/v1/events/{event.id}", "list": f"/api/v1/events?q={event.title}"}


@pytest.mark.parametrize("which", ["one", "list"])
class TestConditionalGet:
    async def test_answer_carries_an_etag(self, client, paths, which):
        response = await client.get(paths[which])

        assert response.status_code == 200
        assert response.headers["ETag"].startswith('"')
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["Vary"] == "Authorization"
        assert response.headers["Content-Type"] == "application/json"

    async def test_same_etag_for_the_same_body(self, client, paths, which):
        first = await client.get(paths[which])
        second = await client.get(paths[which])

        assert first.json() == second.json()
        assert first.headers["ETag"] == second.headers["ETag"]

    async def test_if_none_match_answers_304_without_body(self, client, paths, which):
        tag = (await client.get(paths[which])).headers["ETag"]

        response = await client.get(paths[which], headers={"If-None-Match": tag})

        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["ETag"] == tag

    @pytest.mark.parametrize("header", ["W/{tag}", '"other", {tag}', "*"])
    async def test_weak_lists_and_star_match(self, client, paths, which, header):
        tag = (await client.get(paths[which])).headers["ETag"]

        response = await client.get(paths[which], headers={"If-None-Match": header.format(tag=tag)})

        assert response.status_code == 304

    async def test_other_tag_gets_the_body(self, client, paths, which):
        expected = await client.get(paths[which])

        response = await client.get(paths[which], headers={"If-None-Match": '"stale"'})

        assert response.status_code == 200
        assert response.json() == expected.json()

    async def test_change_gives_a_new_etag_and_200(
        self, client, session: AsyncSession, event: Event, paths, which
    ):
        tag = (await client.get(paths[which])).headers["ETag"]
        event.capacity = 99
        session.add(event)
        await session.flush()

        response = await client.get(paths[which], headers={"If-None-Match": tag})

        assert response.status_code == 200
        body = response.json()
        assert (body if which == "one" else body["items"][0])["capacity"] == 99
        assert response.headers["ETag"] != tag


async def test_list_etag_changes_with_a_new_event(client, session: AsyncSession, manager: User):
    await create_event(session, owner=manager, title="Etag walk 1")
    tag = (await client.get("/api/v1/events?q=Etag walk")).headers["ETag"]
    await create_event(session, owner=manager, title="Etag walk 2")

    response = await client.get("/api/v1/events?q=Etag walk", headers={"If-None-Match": tag})

    assert response.status_code == 200
    assert response.json()["total"] == 2
