"""Bounded counting on the lists (API.md, Lists): past 10,000 matches `total` stays 10000 with
`total_capped` true, `pages` and `last` follow it, and `next` leads on while rows remain (a page
beyond `last` that has rows points `prev` one page back).

Each test bulk-loads its rows with one INSERT ... SELECT generate_series inside the test's
rolled-back transaction, and narrows the list to them (a unique tag, or the caller's own rows).
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api import clock
from api.users.models import User

EVENTS = "/api/v1/events"
INBOX = "/api/v1/notifications"
MY_REGISTRATIONS = "/api/v1/users/me/registrations"
HOST = "http://testserver"

AuthAs = Callable[[User], Awaitable[dict[str, str]]]


pytestmark = pytest.mark.usefixtures("vacuum_afterwards")


async def analyze(session: AsyncSession, table: str) -> None:
    """ANALYZE `table` in the test's transaction, which counts the rows it just inserted, so
    that the page queries are planned for 10,000 rows whatever statistics earlier tests left.

    A table VACUUMed while another transaction keeps its dead rows has 0 rows over hundreds of
    pages in its statistics, and is planned as holding one row: the page query of
    TestOwnRegistrationsCapped then runs a 10,000 x 5,000 nested loop (measured: 29 s, against
    0.03 s). In one whole-suite run on the embedded server both its requests outlasted
    DB_COMMAND_TIMEOUT_SECONDS that way."""
    await session.execute(text(f"ANALYZE {table}"))


def token() -> str:
    return f"cap{uuid.uuid4().hex[:10]}"


async def seed_events(session: AsyncSession, owner: User, tag: str, n: int) -> None:
    """`n` upcoming published events tagged `tag`, the k-th starting k minutes after the first."""
    start = clock.now() + timedelta(days=1)
    await session.execute(
        text(
            "INSERT INTO event (id, title, description, event_type, starts_at, ends_at, timezone,"
            " location, capacity, tags, status, created_by, registered_count, waitlist_count,"
            " created_at, updated_at, published_at)"
            " SELECT gen_random_uuid(), 'Bulk ' || k, '', 'WORKSHOP',"
            " CAST(:start AS timestamptz) + k * interval '1 minute',"
            " CAST(:start AS timestamptz) + k * interval '1 minute' + interval '1 hour',"
            " 'UTC', 'Room 1', NULL, ARRAY[:tag]::varchar[], 'PUBLISHED', :owner, 0, 0,"
            " :now, :now, :now"
            " FROM generate_series(1, :n) AS k"
        ),
        {"start": start, "tag": tag, "owner": owner.id, "now": clock.now(), "n": n},
    )
    await analyze(session, "event")


async def seed_notifications(session: AsyncSession, user: User, n: int) -> None:
    """`n` notices for `user`, the k-th k minutes old; every third one read."""
    await session.execute(
        text(
            "INSERT INTO notification (id, user_id, kind, title, body, data, read_at, created_at)"
            " SELECT gen_random_uuid(), :user, 'EVENT_REMINDER', 'Notice ' || k, 'Body', '{}',"
            " CASE WHEN k % 3 = 0 THEN CAST(:now AS timestamptz) END,"
            " CAST(:now AS timestamptz) - k * interval '1 minute'"
            " FROM generate_series(1, :n) AS k"
        ),
        {"user": user.id, "now": clock.now(), "n": n},
    )
    await analyze(session, "notification")


async def seed_registrations(session: AsyncSession, user: User, tag: str) -> None:
    """A confirmed registration of `user` for every event tagged `tag`, made in start order."""
    await session.execute(
        text(
            "INSERT INTO registration (id, event_id, user_id, status, created_at, updated_at)"
            " SELECT gen_random_uuid(), id, :user, 'CONFIRMED',"
            " starts_at - interval '30 days', :now"
            " FROM event WHERE :tag = ANY(tags)"
        ),
        {"user": user.id, "tag": tag, "now": clock.now()},
    )
    await analyze(session, "registration")


async def event_ids(session: AsyncSession, tag: str, *, offset: int, limit: int) -> list[str]:
    """The tagged events' ids in listing order (by start, then id)."""
    rows = await session.execute(
        text(
            "SELECT id FROM event WHERE :tag = ANY(tags) ORDER BY starts_at, id"
            " OFFSET :offset LIMIT :limit"
        ),
        {"tag": tag, "offset": offset, "limit": limit},
    )
    return [str(row.id) for row in rows]


def envelope(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in ("items", "unread_count")}


def expected(
    url: str,
    *,
    total: int,
    capped: bool,
    page: int,
    size: int,
    pages: int,
    next_page: int | None,
    prev_page: int | None,
) -> dict[str, Any]:
    """The envelope of a page of `url` (its own query first, then page and size)."""

    def link(number: int) -> str:
        separator = "&" if "?" in url else "?"
        return f"{HOST}{url}{separator}page={number}&size={size}"

    return {
        "total": total,
        "total_capped": capped,
        "page": page,
        "size": size,
        "pages": pages,
        "links": {
            "self": link(page),
            "first": link(1),
            "last": link(pages),
            "next": link(next_page) if next_page is not None else None,
            "prev": link(prev_page) if prev_page is not None else None,
        },
    }


async def get_page(
    client: httpx.AsyncClient,
    url: str,
    page: int,
    size: int,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    separator = "&" if "?" in url else "?"
    response = await client.get(f"{url}{separator}page={page}&size={size}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestEventsListCapped:
    async def test_10005_events_count_10000_capped(self, client, session, manager):
        tag = token()
        await seed_events(session, manager, tag, 10_005)
        url = f"{EVENTS}?tag={tag}"

        body = await get_page(client, url, 1, 20)

        assert [item["id"] for item in body["items"]] == await event_ids(
            session, tag, offset=0, limit=20
        )
        assert envelope(body) == expected(
            url, total=10_000, capped=True, page=1, size=20, pages=500, next_page=2, prev_page=None
        )

    async def test_the_capped_last_page_still_leads_on(self, client, session, manager):
        tag = token()
        await seed_events(session, manager, tag, 10_005)
        url = f"{EVENTS}?tag={tag}"

        body = await get_page(client, url, 500, 20)

        assert [item["id"] for item in body["items"]] == await event_ids(
            session, tag, offset=9_980, limit=20
        )
        assert envelope(body) == expected(
            url, total=10_000, capped=True, page=500, size=20, pages=500, next_page=501,
            prev_page=499,
        )  # fmt: skip

    async def test_next_stops_on_the_true_last_page(self, client, session, manager):
        tag = token()
        await seed_events(session, manager, tag, 10_005)
        url = f"{EVENTS}?tag={tag}"

        hundredth = await get_page(client, url, 100, 100)
        last = await get_page(client, url, 101, 100)
        beyond = await get_page(client, url, 102, 100)

        assert len(hundredth["items"]) == 100
        assert envelope(hundredth) == expected(
            url, total=10_000, capped=True, page=100, size=100, pages=100, next_page=101,
            prev_page=99,
        )  # fmt: skip
        assert [item["id"] for item in last["items"]] == await event_ids(
            session, tag, offset=10_000, limit=100
        )
        assert len(last["items"]) == 5
        assert envelope(last) == expected(
            url, total=10_000, capped=True, page=101, size=100, pages=100, next_page=None,
            prev_page=100,
        )  # fmt: skip
        assert beyond["items"] == []
        assert envelope(beyond) == expected(
            url, total=10_000, capped=True, page=102, size=100, pages=100, next_page=None,
            prev_page=100,
        )  # fmt: skip

    async def test_pages_past_the_cap_lead_on_while_rows_remain(self, client, session, manager):
        tag = token()
        await seed_events(session, manager, tag, 10_005)
        url = f"{EVENTS}?tag={tag}"

        past = await get_page(client, url, 5_001, 2)
        last = await get_page(client, url, 5_003, 2)

        # Rows 10,001 and 10,002: the count stopped before them, the page query looked further.
        assert [item["id"] for item in past["items"]] == await event_ids(
            session, tag, offset=10_000, limit=2
        )
        assert envelope(past) == expected(
            url, total=10_000, capped=True, page=5_001, size=2, pages=5_000, next_page=5_002,
            prev_page=5_000,
        )  # fmt: skip
        assert [item["id"] for item in last["items"]] == await event_ids(
            session, tag, offset=10_004, limit=2
        )
        assert envelope(last) == expected(
            url, total=10_000, capped=True, page=5_003, size=2, pages=5_000, next_page=None,
            prev_page=5_002,
        )  # fmt: skip

    async def test_one_past_the_cap_shows_one_more_page_of_one(self, client, session, manager):
        tag = token()
        await seed_events(session, manager, tag, 10_001)
        url = f"{EVENTS}?tag={tag}"

        last_counted = await get_page(client, url, 500, 20)
        last = await get_page(client, url, 501, 20)

        assert last_counted["links"]["next"] == f"{HOST}{url}&page=501&size=20"
        assert [item["id"] for item in last["items"]] == await event_ids(
            session, tag, offset=10_000, limit=20
        )
        assert envelope(last) == expected(
            url, total=10_000, capped=True, page=501, size=20, pages=500, next_page=None,
            prev_page=500,
        )  # fmt: skip

    async def test_exactly_10000_events_are_not_capped(self, client, session, manager):
        tag = token()
        await seed_events(session, manager, tag, 10_000)
        url = f"{EVENTS}?tag={tag}"

        first = await get_page(client, url, 1, 20)
        last = await get_page(client, url, 500, 20)

        assert envelope(first) == expected(
            url, total=10_000, capped=False, page=1, size=20, pages=500, next_page=2,
            prev_page=None,
        )  # fmt: skip
        assert len(last["items"]) == 20
        assert envelope(last) == expected(
            url, total=10_000, capped=False, page=500, size=20, pages=500, next_page=None,
            prev_page=499,
        )  # fmt: skip


class TestInboxCapped:
    async def test_10005_notices_count_10000_capped(self, client, session, user, auth_as: AuthAs):
        await seed_notifications(session, user, 10_005)
        headers = await auth_as(user)

        first = await get_page(client, INBOX, 1, 100, headers)
        last = await get_page(client, INBOX, 101, 100, headers)

        # The unread count is not a list: it stays exact.
        assert (first["unread_count"], last["unread_count"]) == (6_670, 6_670)
        assert envelope(first) == expected(
            INBOX, total=10_000, capped=True, page=1, size=100, pages=100, next_page=2,
            prev_page=None,
        )  # fmt: skip
        # Newest first: the oldest five notices, 10,001 to 10,005 minutes old.
        assert [item["title"] for item in last["items"]] == [
            f"Notice {k}" for k in range(10_001, 10_006)
        ]
        assert envelope(last) == expected(
            INBOX, total=10_000, capped=True, page=101, size=100, pages=100, next_page=None,
            prev_page=100,
        )  # fmt: skip

    async def test_unread_filter_under_the_cap_is_exact(
        self, client, session, user, auth_as: AuthAs
    ):
        await seed_notifications(session, user, 10_005)
        url = f"{INBOX}?unread=true"

        body = await get_page(client, url, 1, 100, await auth_as(user))

        assert envelope(body) == expected(
            url, total=6_670, capped=False, page=1, size=100, pages=67, next_page=2,
            prev_page=None,
        )  # fmt: skip

    async def test_exactly_10000_notices_are_not_capped(
        self, client, session, user, auth_as: AuthAs
    ):
        await seed_notifications(session, user, 10_000)

        body = await get_page(client, INBOX, 100, 100, await auth_as(user))

        assert len(body["items"]) == 100
        assert envelope(body) == expected(
            INBOX, total=10_000, capped=False, page=100, size=100, pages=100, next_page=None,
            prev_page=99,
        )  # fmt: skip


class TestOwnRegistrationsCapped:
    """A list of several entities per row (paginate_rows) caps alike."""

    @pytest.mark.parametrize(("seeded", "capped"), [(10_005, True), (10_000, False)])
    async def test_cap_and_last_page(
        self, client, session, manager, user, auth_as: AuthAs, seeded: int, capped: bool
    ):
        tag = token()
        await seed_events(session, manager, tag, seeded)
        await seed_registrations(session, user, tag)
        headers = await auth_as(user)

        hundredth = await get_page(client, MY_REGISTRATIONS, 100, 100, headers)
        last = await get_page(client, MY_REGISTRATIONS, 101, 100, headers)

        assert envelope(hundredth) == expected(
            MY_REGISTRATIONS, total=10_000, capped=capped, page=100, size=100, pages=100,
            next_page=101 if capped else None, prev_page=99,
        )  # fmt: skip
        # Newest first: the registrations for the earliest events come last.
        assert [item["event"]["id"] for item in last["items"]] == (
            await event_ids(session, tag, offset=0, limit=seeded - 10_000)
        )[::-1]
        assert envelope(last) == expected(
            MY_REGISTRATIONS, total=10_000, capped=capped, page=101, size=100, pages=100,
            next_page=None, prev_page=100,
        )  # fmt: skip
