"""GET /events/{id}/stats.png (API-attendees.md, Event insights): the chart of cumulative
registrations per day."""

import io
import threading
import uuid
from typing import Any

import PIL.Image
from PIL.ImageColor import getrgb

from api.events.models import EventStatus
from api.insights import chart
from tests.factories import create_event
from tests.insights.test_stats import MIXED, NEW_YORK, NOT_EVENT_OWNER, add_rows

SIZE = (800, 450)


def url(event_id: uuid.UUID) -> str:
    return f"/api/v1/events/{event_id}/stats.png"


def image(png: bytes) -> PIL.Image.Image:
    picture = PIL.Image.open(io.BytesIO(png))
    picture.load()
    return picture


def pixels_of(picture: PIL.Image.Image, color: str) -> int:
    """How many pixels have exactly `color` (a line or marker drawn in it)."""
    wanted = getrgb(color)[:3]
    colors = picture.convert("RGB").getcolors(maxcolors=SIZE[0] * SIZE[1])
    assert colors is not None
    return sum(int(count) for count, value in colors if value == wanted)


class TestEventStatsChart:
    async def test_creator_200_png(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=3, timezone=NEW_YORK)
        await add_rows(session, event, MIXED)

        response = await client.get(url(event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"] == "private, no-store"
        picture = image(response.content)
        assert (picture.format, picture.size) == ("PNG", SIZE)
        # Both lines and the capacity line are drawn.
        assert pixels_of(picture, chart.REGISTERED_COLOR) > 0
        assert pixels_of(picture, chart.NET_COLOR) > 0
        assert pixels_of(picture, chart.CAPACITY_COLOR) > 0

    async def test_no_registrations_still_renders(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=20)

        response = await client.get(url(event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        picture = image(response.content)
        assert (picture.format, picture.size) == ("PNG", SIZE)
        assert pixels_of(picture, chart.REGISTERED_COLOR) == 0
        assert pixels_of(picture, chart.NET_COLOR) == 0
        assert pixels_of(picture, chart.CAPACITY_COLOR) > 0

    async def test_unlimited_capacity_draws_no_capacity_line(
        self, client, session, manager, auth_as
    ):
        event = await create_event(session, owner=manager, capacity=None)
        await add_rows(session, event, MIXED[:2])

        response = await client.get(url(event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        picture = image(response.content)
        assert pixels_of(picture, chart.REGISTERED_COLOR) > 0
        assert pixels_of(picture, chart.CAPACITY_COLOR) == 0

    async def test_a_title_with_dollar_signs_is_drawn_as_text(
        self, client, session, manager, auth_as
    ):
        # As TeX math, "$\frac{$" would fail to parse.
        event = await create_event(
            session, owner=manager, title="Pricing in $ and $\\frac{$ " + "long words " * 15
        )
        await add_rows(session, event, MIXED[:1])

        response = await client.get(url(event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        assert image(response.content).size == SIZE

    async def test_drawn_off_the_event_loop(self, client, session, manager, auth_as, monkeypatch):
        event = await create_event(session, owner=manager)
        threads = []
        draw = chart.stats_png

        def spy(*args: Any, **kwargs: Any) -> bytes:
            threads.append(threading.get_ident())
            return draw(*args, **kwargs)

        monkeypatch.setattr(chart, "stats_png", spy)

        response = await client.get(url(event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        assert len(threads) == 1
        assert threads[0] != threading.get_ident()

    async def test_admin_200(self, client, session, manager, admin, auth_as):
        event = await create_event(session, owner=manager)

        response = await client.get(url(event.id), headers=await auth_as(admin))

        assert response.status_code == 200
        assert image(response.content).size == SIZE

    async def test_anonymous_401(self, client, session, manager):
        event = await create_event(session, owner=manager)

        response = await client.get(url(event.id))

        assert response.status_code == 401
        assert response.json() == {"detail": "UNAUTHORIZED"}

    async def test_user_403(self, client, session, manager, user, auth_as):
        event = await create_event(session, owner=manager)

        response = await client.get(url(event.id), headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == NOT_EVENT_OWNER

    async def test_pending_event_404_to_a_user(self, client, session, manager, user, auth_as):
        event = await create_event(session, owner=manager, status=EventStatus.PENDING)

        response = await client.get(url(event.id), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == {"detail": "EVENT_NOT_FOUND"}

    async def test_unknown_event_404(self, client, manager, auth_as):
        response = await client.get(url(uuid.uuid4()), headers=await auth_as(manager))

        assert response.status_code == 404
        assert response.json() == {"detail": "EVENT_NOT_FOUND"}

    def test_openapi_documents_a_png(self, app):
        operation = app.openapi()["paths"]["/api/v1/events/{event_id}/stats.png"]["get"]

        assert operation["x-token-scope"] == "registrations:read"
        assert operation["responses"]["200"]["content"] == {
            "image/png": {"schema": {"type": "string", "format": "binary"}}
        }
        assert {
            code: operation["responses"][code]["description"] for code in ("401", "403", "404")
        } == {
            "401": "UNAUTHORIZED",
            "403": "NOT_EVENT_OWNER, INSUFFICIENT_SCOPE (an API token without registrations:read)",
            "404": "EVENT_NOT_FOUND",
        }
