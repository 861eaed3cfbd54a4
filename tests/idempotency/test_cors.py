"""A replayed answer and CORS: the grant is made per request, outside the replay, so a replay
carries the grant of the origin asking now (and its page may read Idempotent-Replayed), never
the one stored with the first answer."""

from collections.abc import AsyncIterator

import httpx
import pytest

from api.config import settings
from api.main import create_app
from api.registrations.models import Registration
from tests.idempotency.conftest import World, client_of

FIRST, SECOND, OTHER = "https://app.example.com", "https://admin.example.com", "https://x.example"


@pytest.fixture
async def http(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setattr(settings, "CORS_ORIGINS", f"{FIRST},{SECOND}")
    async with client_of(create_app(run_worker=False)) as client:
        yield client


async def test_a_replay_carries_the_grant_of_the_origin_asking_now(
    http: httpx.AsyncClient, world: World
) -> None:
    _, headers = await world.user()
    event = await world.event()
    path = f"/api/v1/events/{event.id}/registrations"
    keyed = {**headers, "Idempotency-Key": "cors-replay"}

    first = await http.post(path, headers={**keyed, "Origin": FIRST})
    again = await http.post(path, headers={**keyed, "Origin": SECOND})
    elsewhere = await http.post(path, headers={**keyed, "Origin": OTHER})

    assert first.status_code == 201
    assert first.headers["Access-Control-Allow-Origin"] == FIRST
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers.get_list("Access-Control-Allow-Origin") == [SECOND]
    assert "Idempotent-Replayed" in again.headers["Access-Control-Expose-Headers"]
    assert elsewhere.headers["Idempotent-Replayed"] == "true"
    assert "Access-Control-Allow-Origin" not in elsewhere.headers
    assert await world.count(Registration, event_id=event.id) == 1
