"""GET /api/v1/events: the default window, the page envelope, every filter and the query plan.

Each test builds its own events inside the test's rolled-back transaction and, except for the
test of the bare default, narrows the listing to them with a unique `q` token.
"""

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api import clock
from api.events.models import Event, EventStatus, EventType
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, event_view

URL = "/api/v1/events"
BASE = "http://testserver/api/v1/events"
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
DATETIME_FIELDS = (
    "starts_at",
    "ends_at",
    "registration_deadline",
    "created_at",
    "updated_at",
    "published_at",
    "cancelled_at",
)
INDEX = "ix_event_status_starts_at"


def token() -> str:
    """A word no other event contains, to narrow a listing to this test's events."""
    return f"tok{uuid.uuid4().hex[:10]}"


def at(days: float) -> datetime:
    return clock.now() + timedelta(days=days)


async def make(
    session: AsyncSession,
    owner: User,
    tok: str,
    *,
    days: float,
    status: EventStatus = EventStatus.PUBLISHED,
    **fields: Any,
) -> Event:
    """An event starting `days` from now, whose title carries `tok`."""
    starts_at = at(days)
    fields.setdefault("title", f"Event {tok} {uuid.uuid4().hex[:4]}")
    return await create_event(
        session,
        owner=owner,
        status=status,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        **fields,
    )


async def listing(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **params: Any
) -> httpx.Response:
    return await client.get(URL, params=params, headers=headers or {})


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def id_list(*events: Event) -> list[str]:
    return [str(e.id) for e in events]


def error_locs(response: httpx.Response) -> list[list[str | int]]:
    return [error["loc"] for error in response.json()["detail"]]


def parsed(item: dict[str, Any]) -> dict[str, Any]:
    return {
        key: datetime.fromisoformat(value) if key in DATETIME_FIELDS and value else value
        for key, value in item.items()
    }


class TestListEvents:
    # --- the default --------------------------------------------------------------------------

    async def test_anonymous_default_is_upcoming_published_by_start(self, client, session, manager):
        tok = token()
        third = await make(session, manager, tok, days=3)
        first = await make(session, manager, tok, days=1)
        second = await make(session, manager, tok, days=2)
        await make(session, manager, tok, days=-1)  # published, started yesterday
        await make(session, manager, tok, days=1.5, status=EventStatus.PENDING)
        await make(session, manager, tok, days=1.5, status=EventStatus.REJECTED)
        await make(session, manager, tok, days=1.5, status=EventStatus.CANCELLED)

        response = await listing(client)

        assert ids(response) == id_list(first, second, third)
        assert response.json()["total"] == 3

    async def test_q_keeps_the_default_window(self, client, session, manager):
        tok = token()
        upcoming = await make(session, manager, tok, days=2)
        await make(session, manager, tok, days=-2)
        await make(session, manager, tok, days=2, status=EventStatus.PENDING)

        assert ids(await listing(client, q=tok)) == id_list(upcoming)

    async def test_manager_default_is_published_only(self, client, session, manager, auth_as):
        tok = token()
        published = await make(session, manager, tok, days=2)
        await make(session, manager, tok, days=1, status=EventStatus.PENDING)
        await make(session, manager, tok, days=1, status=EventStatus.REJECTED)

        response = await listing(client, await auth_as(manager), q=tok)

        assert ids(response) == id_list(published)

    async def test_same_start_is_ordered_by_id(self, client, session, manager):
        tok = token()
        starts_at = at(4)
        events = [
            await create_event(
                session,
                owner=manager,
                title=f"Twin {tok} {n}",
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=1),
            )
            for n in range(3)
        ]

        response = await listing(client, q=tok)

        assert ids(response) == sorted(id_list(*events))

    async def test_item_is_the_public_event(self, client, session, manager):
        tok = token()
        event = await make(
            session,
            manager,
            tok,
            days=5,
            description="Bring your CV.",
            event_type=EventType.COMPANY_TOUR,
            timezone="Europe/Berlin",
            online_url="https://meet.example.com/tour",
            capacity=30,
            registered_count=12,
            waitlist_count=0,
            registration_deadline=at(4),
            requirements="Student ID",
            tags=["career", "tour"],
        )

        response = await listing(client, q=tok)

        assert response.status_code == 200
        [item] = response.json()["items"]
        # Never reviewed or cancelled: those fields are null, whatever the row builder sets.
        assert parsed(item) == {
            **event_view(event),
            "reviewed_by": None,
            "review_feedback": None,
            "cancellation_reason": None,
            "series_id": None,
            "cancelled_at": None,
        }
        assert item["spots_left"] == 18

    # --- the page envelope --------------------------------------------------------------------

    async def test_first_page_envelope_with_absolute_links(self, client, session, manager):
        tok = token()
        events = [await make(session, manager, tok, days=d) for d in (1, 2, 3)]

        response = await listing(client, q=tok, size=2)

        assert response.status_code == 200
        body = response.json()
        assert [item["id"] for item in body.pop("items")] == id_list(*events[:2])
        assert body == {
            "total": 3,
            "total_capped": False,
            "page": 1,
            "size": 2,
            "pages": 2,
            "links": {
                "self": f"{BASE}?q={tok}&page=1&size=2",
                "first": f"{BASE}?q={tok}&page=1&size=2",
                "last": f"{BASE}?q={tok}&page=2&size=2",
                "next": f"{BASE}?q={tok}&page=2&size=2",
                "prev": None,
            },
        }

    async def test_last_page_envelope(self, client, session, manager):
        tok = token()
        events = [await make(session, manager, tok, days=d) for d in (1, 2, 3)]

        response = await listing(client, q=tok, page=2, size=2)

        assert response.status_code == 200
        body = response.json()
        assert [item["id"] for item in body.pop("items")] == id_list(events[2])
        assert body == {
            "total": 3,
            "total_capped": False,
            "page": 2,
            "size": 2,
            "pages": 2,
            "links": {
                "self": f"{BASE}?q={tok}&page=2&size=2",
                "first": f"{BASE}?q={tok}&page=1&size=2",
                "last": f"{BASE}?q={tok}&page=2&size=2",
                "next": None,
                "prev": f"{BASE}?q={tok}&page=1&size=2",
            },
        }

    async def test_default_page_and_size(self, client, session, manager):
        tok = token()
        events = [await make(session, manager, tok, days=1 + n / 24) for n in range(21)]

        response = await listing(client, q=tok)

        body = response.json()
        assert ids(response) == id_list(*events[:20])
        assert (body["total"], body["page"], body["size"], body["pages"]) == (21, 1, 20, 2)

    async def test_page_past_the_end_is_200_with_no_items(self, client, session, manager):
        tok = token()
        for d in (1, 2, 3):
            await make(session, manager, tok, days=d)

        response = await listing(client, q=tok, page=5, size=2)

        assert response.status_code == 200
        body = response.json()
        assert body["items"] == []
        assert (body["total"], body["page"], body["size"], body["pages"]) == (3, 5, 2, 2)
        assert body["links"]["next"] is None
        assert body["links"]["prev"] == f"{BASE}?q={tok}&page=2&size=2"

    async def test_empty_listing_has_one_page(self, client):
        tok = token()

        response = await listing(client, q=tok)

        assert response.status_code == 200
        assert response.json() == {
            "items": [],
            "total": 0,
            "total_capped": False,
            "page": 1,
            "size": 20,
            "pages": 1,
            "links": {
                "self": f"{BASE}?q={tok}&page=1&size=20",
                "first": f"{BASE}?q={tok}&page=1&size=20",
                "last": f"{BASE}?q={tok}&page=1&size=20",
                "next": None,
                "prev": None,
            },
        }

    @pytest.mark.parametrize(
        ("params", "loc"),
        [
            ({"page": 0}, ["query", "page"]),
            ({"page": -1}, ["query", "page"]),
            ({"page": "first"}, ["query", "page"]),
            ({"size": 0}, ["query", "size"]),
            ({"size": 101}, ["query", "size"]),
            ({"size": "all"}, ["query", "size"]),
        ],
    )
    async def test_page_bounds_422(self, client, params, loc):
        response = await listing(client, **params)

        assert response.status_code == 422
        assert error_locs(response) == [loc]

    @pytest.mark.parametrize("size", [1, 100])
    async def test_size_bounds_accepted(self, client, session, manager, size):
        tok = token()
        events = [await make(session, manager, tok, days=d) for d in (1, 2)]

        response = await listing(client, q=tok, size=size)

        assert ids(response) == id_list(*events[:size])
        assert response.json()["size"] == size

    # --- q ------------------------------------------------------------------------------------

    async def test_q_matches_title_substring_case_insensitively(self, client, session, manager):
        tok = token()
        match = await make(session, manager, tok, days=1, title=f"Rust {tok} MEETUP")
        await make(session, manager, tok, days=2, title=f"Go {tok} conference")

        response = await listing(client, q=f"{tok} meetUP".upper())

        assert ids(response) == id_list(match)

    async def test_q_matches_description(self, client, session, manager):
        tok = token()
        match = await make(
            session, manager, "", days=1, title="Plain title", description=f"About {tok} today"
        )
        await make(session, manager, "", days=2, title="Other title", description="Nothing")

        response = await listing(client, q=tok.upper())

        assert ids(response) == id_list(match)

    async def test_q_percent_is_literal(self, client, session, manager):
        tok = token()
        match = await make(session, manager, tok, days=1, title=f"{tok} 100% remote")
        await make(session, manager, tok, days=2, title=f"{tok} 1000 remote")

        response = await listing(client, q=f"{tok} 100%")

        assert ids(response) == id_list(match)

    async def test_q_underscore_is_literal(self, client, session, manager):
        tok = token()
        match = await make(session, manager, tok, days=1, title=f"{tok} snake_case")
        await make(session, manager, tok, days=2, title=f"{tok} snakeXcase")

        response = await listing(client, q=f"{tok} snake_c")

        assert ids(response) == id_list(match)

    async def test_q_backslash_is_literal(self, client, session, manager):
        tok = token()
        match = await make(session, manager, tok, days=1, title=f"{tok} C:\\jobs")
        await make(session, manager, tok, days=2, title=f"{tok} C:jobs")

        response = await listing(client, q=f"{tok} C:\\jobs")

        assert ids(response) == id_list(match)

    async def test_q_longer_than_200_422(self, client):
        response = await listing(client, q="x" * 201)

        assert response.status_code == 422
        assert error_locs(response) == [["query", "q"]]

    # --- event_type and tag -------------------------------------------------------------------

    async def test_event_type_filter(self, client, session, manager):
        tok = token()
        tour = await make(session, manager, tok, days=2, event_type=EventType.COMPANY_TOUR)
        await make(session, manager, tok, days=1, event_type=EventType.WORKSHOP)
        later_tour = await make(session, manager, tok, days=3, event_type=EventType.COMPANY_TOUR)

        response = await listing(client, q=tok, event_type="COMPANY_TOUR")

        assert ids(response) == id_list(tour, later_tour)

    @pytest.mark.parametrize("tag", ["python", "PYTHON", " Python "])
    async def test_tag_filter_is_case_insensitive(self, client, session, manager, tag):
        tok = token()
        tagged = await make(session, manager, tok, days=1, tags=["career", "python"])
        await make(session, manager, tok, days=2, tags=["pythonista"])
        await make(session, manager, tok, days=3, tags=[])

        response = await listing(client, q=tok, tag=tag)

        assert ids(response) == id_list(tagged)

    # --- time window --------------------------------------------------------------------------

    async def test_starts_after_in_the_past_includes_past_events(self, client, session, manager):
        tok = token()
        await make(session, manager, tok, days=-10)
        past = await make(session, manager, tok, days=-2)
        future = await make(session, manager, tok, days=2)

        response = await listing(client, q=tok, starts_after=at(-3).isoformat())

        assert ids(response) == id_list(past, future)

    async def test_starts_after_is_inclusive(self, client, session, manager):
        tok = token()
        await make(session, manager, tok, days=1)
        boundary = await make(session, manager, tok, days=2)
        later = await make(session, manager, tok, days=3)

        response = await listing(client, q=tok, starts_after=boundary.starts_at.isoformat())

        assert ids(response) == id_list(boundary, later)

    async def test_starts_after_with_offset_is_compared_as_an_instant(
        self, client, session, manager
    ):
        tok = token()
        await make(session, manager, tok, days=1)
        later = await make(session, manager, tok, days=3)
        cut = at(2).astimezone(timezone(timedelta(hours=5)))

        response = await listing(client, q=tok, starts_after=cut.isoformat())

        assert ids(response) == id_list(later)

    async def test_starts_before_is_exclusive(self, client, session, manager):
        tok = token()
        first = await make(session, manager, tok, days=1)
        boundary = await make(session, manager, tok, days=2)
        await make(session, manager, tok, days=3)

        response = await listing(client, q=tok, starts_before=boundary.starts_at.isoformat())

        assert ids(response) == id_list(first)

    async def test_starts_after_and_before_together(self, client, session, manager):
        tok = token()
        await make(session, manager, tok, days=-5)
        past = await make(session, manager, tok, days=-1)
        soon = await make(session, manager, tok, days=1)
        await make(session, manager, tok, days=4)

        response = await listing(
            client, q=tok, starts_after=at(-2).isoformat(), starts_before=at(2).isoformat()
        )

        assert ids(response) == id_list(past, soon)

    # --- has_spots ----------------------------------------------------------------------------

    async def test_has_spots_true_includes_unlimited(self, client, session, manager):
        tok = token()
        await make(session, manager, tok, days=1, capacity=2, registered_count=2)
        open_one = await make(session, manager, tok, days=2, capacity=2, registered_count=1)
        unlimited = await make(session, manager, tok, days=3, capacity=None, registered_count=50)

        response = await listing(client, q=tok, has_spots="true")

        assert ids(response) == id_list(open_one, unlimited)

    async def test_has_spots_false_lists_full_events(self, client, session, manager):
        tok = token()
        full = await make(session, manager, tok, days=1, capacity=2, registered_count=2)
        await make(session, manager, tok, days=2, capacity=2, registered_count=1)
        await make(session, manager, tok, days=3, capacity=None, registered_count=50)

        response = await listing(client, q=tok, has_spots="false")

        assert ids(response) == id_list(full)

    # --- status -------------------------------------------------------------------------------

    @pytest.mark.parametrize("role", [UserRole.MANAGER, UserRole.ADMIN])
    async def test_staff_list_pending_events_of_everyone(
        self, client, session, manager, auth_as, role
    ):
        tok = token()
        viewer = await create_user(session, role=role)
        other = await make(session, manager, tok, days=2, status=EventStatus.PENDING)
        own = await make(session, viewer, tok, days=1, status=EventStatus.PENDING)
        await make(session, manager, tok, days=1, status=EventStatus.PUBLISHED)
        await make(session, manager, tok, days=1, status=EventStatus.REJECTED)

        response = await listing(client, await auth_as(viewer), q=tok, status="PENDING")

        assert ids(response) == id_list(own, other)

    async def test_manager_lists_rejected_and_cancelled(self, client, session, manager, auth_as):
        tok = token()
        other_manager = await create_user(session, role=UserRole.MANAGER)
        rejected = await make(session, other_manager, tok, days=1, status=EventStatus.REJECTED)
        cancelled = await make(session, other_manager, tok, days=2, status=EventStatus.CANCELLED)
        headers = await auth_as(manager)

        assert ids(await listing(client, headers, q=tok, status="REJECTED")) == id_list(rejected)
        assert ids(await listing(client, headers, q=tok, status="CANCELLED")) == id_list(cancelled)

    async def test_user_status_pending_is_empty(self, client, session, manager, user, auth_as):
        tok = token()
        await make(session, manager, tok, days=1, status=EventStatus.PENDING)

        response = await listing(client, await auth_as(user), q=tok, status="PENDING")

        assert ids(response) == []
        assert response.json()["total"] == 0

    async def test_user_status_pending_lists_only_own(self, client, session, manager, auth_as):
        # A former manager demoted to a plain user still sees the events they created.
        tok = token()
        former = await create_user(session, role=UserRole.AUTHENTICATED)
        own = await make(session, former, tok, days=2, status=EventStatus.PENDING)
        await make(session, manager, tok, days=1, status=EventStatus.PENDING)

        response = await listing(client, await auth_as(former), q=tok, status="PENDING")

        assert ids(response) == id_list(own)

    @pytest.mark.parametrize("status", ["PENDING", "REJECTED", "CANCELLED"])
    async def test_anonymous_hidden_status_is_empty(self, client, session, manager, status):
        tok = token()
        await make(session, manager, tok, days=1, status=EventStatus(status))

        response = await listing(client, q=tok, status=status)

        assert ids(response) == []
        assert response.json()["total"] == 0

    async def test_anonymous_status_published(self, client, session, manager):
        tok = token()
        published = await make(session, manager, tok, days=1)
        await make(session, manager, tok, days=2, status=EventStatus.PENDING)

        response = await listing(client, q=tok, status="PUBLISHED")

        assert ids(response) == id_list(published)

    # --- created_by=me ------------------------------------------------------------------------

    async def test_created_by_me_lists_own_events_of_every_status(
        self, client, session, manager, auth_as
    ):
        tok = token()
        other_manager = await create_user(session, role=UserRole.MANAGER)
        own = [
            await make(session, manager, tok, days=d, status=s)
            for d, s in (
                (1, EventStatus.PENDING),
                (2, EventStatus.REJECTED),
                (3, EventStatus.PUBLISHED),
                (4, EventStatus.CANCELLED),
            )
        ]
        await make(session, other_manager, tok, days=1.5, status=EventStatus.PENDING)
        await make(session, other_manager, tok, days=2.5, status=EventStatus.PUBLISHED)

        response = await listing(client, await auth_as(manager), q=tok, created_by="me")

        assert ids(response) == id_list(*own)

    async def test_created_by_me_without_q(self, client, session, auth_as):
        owner = await create_user(session, role=UserRole.MANAGER)
        pending = await make(session, owner, "", days=2, status=EventStatus.PENDING)
        rejected = await make(session, owner, "", days=1, status=EventStatus.REJECTED)

        response = await listing(client, await auth_as(owner), created_by="me")

        assert ids(response) == id_list(rejected, pending)

    async def test_created_by_me_with_status(self, client, session, manager, auth_as):
        tok = token()
        await make(session, manager, tok, days=1, status=EventStatus.PENDING)
        rejected = await make(session, manager, tok, days=2, status=EventStatus.REJECTED)

        response = await listing(
            client, await auth_as(manager), q=tok, created_by="me", status="REJECTED"
        )

        assert ids(response) == id_list(rejected)

    async def test_created_by_me_keeps_the_time_window(self, client, session, manager, auth_as):
        tok = token()
        await make(session, manager, tok, days=-1, status=EventStatus.PENDING)
        upcoming = await make(session, manager, tok, days=1, status=EventStatus.PENDING)

        response = await listing(client, await auth_as(manager), q=tok, created_by="me")

        assert ids(response) == id_list(upcoming)

    async def test_created_by_me_plain_user_has_none(self, client, session, manager, user, auth_as):
        tok = token()
        await make(session, manager, tok, days=1)

        response = await listing(client, await auth_as(user), q=tok, created_by="me")

        assert ids(response) == []

    async def test_created_by_me_anonymous_401(self, client):
        response = await listing(client, created_by="me")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"

    async def test_created_by_other_422(self, client, manager, auth_as):
        response = await listing(client, await auth_as(manager), created_by=str(manager.id))

        assert response.status_code == 422
        assert error_locs(response) == [["query", "created_by"]]

    # --- validation ---------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("params", "loc"),
        [
            ({"event_type": "PARTY"}, ["query", "event_type"]),
            ({"event_type": "workshop"}, ["query", "event_type"]),
            ({"status": "DRAFT"}, ["query", "status"]),
            ({"starts_after": "next tuesday"}, ["query", "starts_after"]),
            ({"starts_before": "2031-13-01T00:00:00Z"}, ["query", "starts_before"]),
            ({"has_spots": "maybe"}, ["query", "has_spots"]),
            ({"tag": "x" * 31}, ["query", "tag"]),
        ],
    )
    async def test_bad_parameter_422(self, client, params, loc):
        response = await listing(client, **params)

        assert response.status_code == 422
        assert error_locs(response) == [loc]

    @pytest.mark.parametrize("name", ["starts_after", "starts_before"])
    async def test_naive_datetime_422(self, client, name):
        response = await client.get(URL, params={name: "2031-05-04T10:30:00"})

        assert response.status_code == 422
        assert error_locs(response) == [["query", name]]
        assert response.json()["detail"][0]["type"] == "timezone_aware"

    # --- the query plan -----------------------------------------------------------------------

    @pytest.mark.usefixtures("vacuum_afterwards")
    @pytest.mark.parametrize(
        ("query", "index"),
        [
            ({}, INDEX),
            ({"event_type": "WORKSHOP"}, "ix_event_status_event_type_starts_at"),
            ({"has_spots": "true"}, "ix_event_open_status_starts_at"),
        ],
    )
    async def test_listing_reads_its_index(self, client, session, manager, query, index):
        """Over years of past events, the count and the page read the filter's index."""
        await bulk_events(session, manager, 20_000)
        await session.execute(text("ANALYZE event"))
        count_sql, page_sql = await captured_listing_sql(client, session, query)

        count_nodes = await plan(session, count_sql)
        page_nodes = await plan(session, page_sql)

        for nodes in (count_nodes, page_nodes):
            assert any(node.get("Index Name") == index for node in nodes), nodes
            assert not any(
                node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "event"
                for node in nodes
            ), nodes


async def bulk_events(session: AsyncSession, manager: User, n: int) -> None:
    """`n` events in one INSERT, as a listing sees them after years: from 1,000 days ago to 5
    days ahead (1 in 200 upcoming), every status and type, open, full and unlimited."""
    await session.execute(
        text(
            "INSERT INTO event (id, title, description, event_type, starts_at, ends_at, timezone,"
            " location, capacity, tags, status, created_by, registered_count, waitlist_count,"
            " created_at, updated_at)"
            " SELECT gen_random_uuid(), 'Bulk event ' || k, '',"
            " (enum_range(NULL::event_type))[1 + k % 6], starts_at, starts_at + interval '2 hours',"
            " 'UTC', 'Room 1', capacity, '{}',"
            " (ARRAY['PUBLISHED', 'PUBLISHED', 'PENDING', 'REJECTED', 'CANCELLED']"
            "::event_status[])[1 + k % 5], :owner,"
            # One in three limited events is full.
            " CASE WHEN capacity IS NOT NULL AND k % 3 = 0 THEN capacity ELSE k % 50 END, 0,"
            " :now, :now"
            " FROM generate_series(1, :n) AS k,"
            " LATERAL (SELECT CAST(:now AS timestamptz)"
            " + ((k * 7919) % 24000 - 23880) * interval '1 hour' AS starts_at,"
            " CASE WHEN k % 7 = 0 THEN NULL ELSE 50 END AS capacity) AS v"
        ),
        {"owner": manager.id, "now": clock.now(), "n": n},
    )


async def plan(session: AsyncSession, sql: tuple[str, Any]) -> list[dict[str, Any]]:
    connection = await session.connection()
    result = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql[0]}", sql[1])
    found = result.scalar_one()
    return list(plan_nodes((json.loads(found) if isinstance(found, str) else found)[0]["Plan"]))


def plan_nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


async def captured_listing_sql(
    client: httpx.AsyncClient, session: AsyncSession, query: dict[str, str]
) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """The count and page queries GET /events sends for an anonymous caller, with parameters."""
    sync_engine = (await session.connection()).sync_engine
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM event" in statement and "LIMIT" in statement:
            statements.append((statement, parameters))

    sa_event.listen(sync_engine, "before_cursor_execute", capture)
    try:
        response = await client.get(URL, params=query)
    finally:
        sa_event.remove(sync_engine, "before_cursor_execute", capture)
    assert response.status_code == 200
    assert len(statements) == 2, statements
    count, page = statements
    assert count[0].startswith("SELECT count(*)"), count
    return count, page
