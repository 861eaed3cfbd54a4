"""POST /api/v1/series, GET /api/v1/series/{id} and GET /api/v1/events?series_id=
(API-attendees.md, Recurring series)."""

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.events.models import Event, EventStatus
from api.notifications.models import NotificationKind
from api.series.models import Series
from api.users.models import UserRole
from tests.events.test_listing import bulk_events, captured_listing_sql, plan
from tests.factories import create_event, create_series, create_user, queued_mail
from tests.series.conftest import (
    EVENTS,
    SERIES,
    at,
    iso,
    last_sunday,
    notices,
    occurrences,
    outbox_after,
    outbox_mark,
    series_body,
    wall,
)

UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
FORBIDDEN = {"detail": "FORBIDDEN"}
SERIES_NOT_FOUND = {"detail": "SERIES_NOT_FOUND"}

EMPTY_PART = "the rule has an empty part (two ';' in a row, or one at an end)"
OVER_A_YEAR = "the last occurrence would be more than a year after the first"
YEARLY = "FREQ=YEARLY is not supported: use DAILY, WEEKLY or MONTHLY"
HOURLY = "FREQ=HOURLY is not supported: use DAILY, WEEKLY or MONTHLY"
FIRST_INSTANCE = "starts_at must be the rule's first instance: that is "


async def series_count(session) -> int:
    return int(await session.scalar(select(func.count()).select_from(Series)) or 0)


async def event_count(session) -> int:
    return int(await session.scalar(select(func.count()).select_from(Event)) or 0)


class TestCreateSeries:
    async def test_manager_201(self, client, session, manager, auth_as, now):
        body = series_body(registration_deadline=None)
        starts = [now + timedelta(days=7, weeks=n) for n in range(3)]
        body["starts_at"], body["ends_at"] = iso(starts[0]), iso(starts[0] + timedelta(hours=2))

        response = await client.post(SERIES, json=body, headers=await auth_as(manager))

        assert response.status_code == 201, response.text
        created = response.json()
        assert created == {
            "id": created["id"],
            "title": "Mock interviews with ACME engineers",
            "rrule": "FREQ=WEEKLY;COUNT=3",
            "timezone": "Europe/Berlin",
            "status": "PENDING",
            "created_by": str(manager.id),
            "reviewed_by": None,
            "review_feedback": None,
            "occurrence_count": 3,
            "first_starts_at": iso(starts[0]),
            "last_starts_at": iso(starts[2]),
            "created_at": iso(now),
            "published_at": None,
            "cancelled_at": None,
        }
        stored = await occurrences(session, created["id"])
        assert [
            (
                event.status,
                event.series_id,
                event.created_by,
                event.starts_at,
                event.ends_at,
                event.capacity,
                event.title,
                event.location,
                event.tags,
                event.registered_count,
            )
            for event in stored
        ] == [
            (
                EventStatus.PENDING,
                uuid.UUID(created["id"]),
                manager.id,
                start,
                start + timedelta(hours=2),
                20,
                "Mock interviews with ACME engineers",
                "ACME HQ, Berlin",
                ["interviews", "career"],
                0,
            )
            for start in starts
        ]
        assert len({event.id for event in stored}) == 3

    async def test_admin_201(self, client, session, admin, auth_as):
        response = await client.post(SERIES, json=series_body(), headers=await auth_as(admin))

        assert response.status_code == 201
        assert (response.json()["created_by"], response.json()["status"]) == (
            str(admin.id),
            "PENDING",
        )
        assert len(await occurrences(session, response.json()["id"])) == 3

    async def test_anonymous_401(self, client, session):
        response = await client.post(SERIES, json=series_body())

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await series_count(session) == 0

    @pytest.mark.parametrize("role", [UserRole.ANONYMOUS, UserRole.AUTHENTICATED])
    async def test_user_403(self, client, session, auth_as, role):
        caller = await create_user(session, role=role, is_verified=role is not UserRole.ANONYMOUS)

        response = await client.post(SERIES, json=series_body(), headers=await auth_as(caller))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        assert await series_count(session) == 0

    async def test_registration_deadline_is_an_offset_before_each_start(
        self, client, session, manager, auth_as
    ):
        body = series_body()
        first = datetime.fromisoformat(body["starts_at"])
        body["registration_deadline"] = iso(first - timedelta(hours=26))

        response = await client.post(SERIES, json=body, headers=await auth_as(manager))

        assert response.status_code == 201
        assert [
            (event.starts_at - event.registration_deadline)
            for event in await occurrences(session, response.json()["id"])
            if event.registration_deadline is not None
        ] == [timedelta(hours=26)] * 3

    async def test_keeps_the_local_time_across_the_spring_change(
        self, client, session, manager, auth_as, now
    ):
        change = last_sunday(now.year + 1, 3)
        first = at(change - timedelta(days=26), 19, "Europe/Berlin")  # a Tuesday, 4 weeks before
        body = series_body(
            rrule="FREQ=WEEKLY;BYDAY=TU;COUNT=6",
            starts_at=first.isoformat(),
            ends_at=(first + timedelta(hours=2)).isoformat(),
        )

        response = await client.post(SERIES, json=body, headers=await auth_as(manager))

        assert response.status_code == 201, response.text
        stored = await occurrences(session, response.json()["id"])
        assert [wall(event.starts_at, "Europe/Berlin")[11:] for event in stored] == [
            "19:00 +0100"
        ] * 4 + ["19:00 +0200"] * 2
        assert [wall(event.ends_at, "Europe/Berlin")[11:16] for event in stored] == ["21:00"] * 6

    async def test_keeps_the_local_time_across_the_autumn_change(
        self, client, session, manager, auth_as, now
    ):
        change = last_sunday(now.year + 1, 10)
        first = at(change - timedelta(days=10), 19, "Europe/Berlin")  # a Thursday
        body = series_body(
            rrule="FREQ=WEEKLY;COUNT=4",
            starts_at=first.isoformat(),
            ends_at=(first + timedelta(hours=2)).isoformat(),
        )

        response = await client.post(SERIES, json=body, headers=await auth_as(manager))

        assert response.status_code == 201, response.text
        stored = await occurrences(session, response.json()["id"])
        assert [wall(event.starts_at, "Europe/Berlin")[11:] for event in stored] == [
            "19:00 +0200",
            "19:00 +0200",
            "19:00 +0100",
            "19:00 +0100",
        ]

    @pytest.mark.parametrize(
        ("rrule", "reason"),
        [
            ("FREQ=YEARLY;COUNT=2", YEARLY),
            ("FREQ=HOURLY;COUNT=2", HOURLY),
            ("FREQ=DAILY;BYHOUR=19;COUNT=2", "BYHOUR is not supported in a series"),
            ("FREQ=DAILY;COUNT=2;UNTIL=20990101", "give exactly one of COUNT and UNTIL"),
            ("FREQ=DAILY", "give exactly one of COUNT and UNTIL"),
            ("FREQ=DAILY;COUNT=53", "a series has at most 52 occurrences"),
            ("FREQ=MONTHLY;COUNT=14", OVER_A_YEAR),
            ("garbage", "'GARBAGE' is not of the form NAME=VALUE"),
            ("FREQ=DAILY;;COUNT=2", EMPTY_PART),
            ("", "the rule is empty"),
        ],
    )  # fmt: skip
    async def test_invalid_rrule_422(self, client, session, manager, auth_as, rrule, reason):
        response = await client.post(
            SERIES, json=series_body(rrule=rrule), headers=await auth_as(manager)
        )

        assert response.status_code == 422
        assert response.json() == {"detail": {"code": "INVALID_RRULE", "reason": reason}}
        assert (await series_count(session), await event_count(session)) == (0, 0)
        assert await queued_mail(session) == []

    async def test_starts_at_not_the_first_instance_422(self, client, session, manager, auth_as):
        body = series_body()
        weekday = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
        first = datetime.fromisoformat(body["starts_at"]).astimezone(ZoneInfo("Europe/Berlin"))
        other = weekday[(first.weekday() + 1) % 7]
        response = await client.post(
            SERIES,
            json=series_body(rrule=f"FREQ=WEEKLY;BYDAY={other};COUNT=2"),
            headers=await auth_as(manager),
        )

        assert response.status_code == 422
        second = first + timedelta(days=1)
        assert response.json() == {
            "detail": {
                "code": "INVALID_RRULE",
                "reason": FIRST_INSTANCE + f"{second:%Y-%m-%d %H:%M} in Europe/Berlin",
            }
        }
        assert await series_count(session) == 0

    async def test_event_fields_are_checked_as_for_an_event_422(self, client, manager, auth_as):
        body = series_body()
        body["ends_at"] = body["starts_at"]

        response = await client.post(SERIES, json=body, headers=await auth_as(manager))

        assert response.status_code == 422
        assert [(e["type"], e["loc"]) for e in response.json()["detail"]] == [
            ("value_error", ["body", "ends_at"])
        ]

    async def test_rrule_missing_422(self, client, manager, auth_as):
        body = series_body()
        del body["rrule"]

        response = await client.post(SERIES, json=body, headers=await auth_as(manager))

        assert response.status_code == 422
        assert [(e["type"], e["loc"]) for e in response.json()["detail"]] == [
            ("missing", ["body", "rrule"])
        ]

    async def test_reviewers_are_told_once_for_the_series(
        self, client, session, manager, other_manager, admin, auth_as
    ):
        response = await client.post(
            SERIES, json=series_body(rrule="FREQ=DAILY;COUNT=10"), headers=await auth_as(manager)
        )

        assert response.status_code == 201
        data = {"series_id": response.json()["id"]}
        assert await notices(session, NotificationKind.EVENT_SUBMITTED) == sorted(
            [(other_manager.id, data), (admin.id, data)], key=str
        )
        assert sorted((mail.to, mail.subject) for mail in await queued_mail(session)) == sorted(
            [
                (
                    other_manager.email,
                    "Event awaiting approval: Mock interviews with ACME engineers",
                ),
                (admin.email, "Event awaiting approval: Mock interviews with ACME engineers"),
            ]
        )

    async def test_integrations_hear_of_each_occurrence(self, client, session, manager, auth_as):
        seen = await outbox_mark(session)

        response = await client.post(SERIES, json=series_body(), headers=await auth_as(manager))

        assert response.status_code == 201
        stored = await occurrences(session, response.json()["id"])
        written = await outbox_after(session, seen)
        assert [(kind, data["id"], data["series_id"]) for kind, data in written] == [
            ("event.created", str(event.id), response.json()["id"]) for event in stored
        ]


class TestCreateCostsTheSameStatementsWhateverTheCount:
    # A reviewer to notify: the notices are part of the work counted.
    @pytest.mark.usefixtures("other_manager")
    async def test_52_as_2(self, client, manager, auth_as, engine: AsyncEngine):
        headers = await auth_as(manager)
        counted: list[str] = []

        def count(*args: object) -> None:
            counted.append(str(args[2]))

        async def statements(rrule: str) -> int:
            counted.clear()
            sa_event.listen(engine.sync_engine, "before_cursor_execute", count)
            try:
                response = await client.post(SERIES, json=series_body(rrule), headers=headers)
            finally:
                sa_event.remove(engine.sync_engine, "before_cursor_execute", count)
            assert response.status_code == 201, response.text
            return len(counted)

        await statements("FREQ=DAILY;COUNT=2")  # warm caches
        two = await statements("FREQ=DAILY;COUNT=2")
        fifty_two = await statements("FREQ=DAILY;COUNT=52")

        assert fifty_two == two


class TestGetSeries:
    async def test_published_anonymous_200(self, client, session, manager, now):
        series, events = await create_series(session, owner=manager, count=3)

        response = await client.get(f"{SERIES}/{series.id}")

        assert response.status_code == 200
        assert response.json() == {
            "id": str(series.id),
            "title": events[0].title,
            "rrule": "FREQ=WEEKLY;COUNT=3",
            "timezone": "UTC",
            "status": "PUBLISHED",
            "created_by": str(manager.id),
            "reviewed_by": None,
            "review_feedback": None,
            "occurrence_count": 3,
            "first_starts_at": iso(events[0].starts_at),
            "last_starts_at": iso(events[2].starts_at),
            "created_at": iso(series.created_at),
            "published_at": iso(now),
            "cancelled_at": None,
        }

    async def test_title_is_the_first_occurrence_s(self, client, session, manager):
        series, events = await create_series(session, owner=manager, count=2)
        events[0].title, events[1].title = "First one", "Second one"
        session.add_all(events)
        await session.flush()

        response = await client.get(f"{SERIES}/{series.id}")

        assert response.json()["title"] == "First one"

    @pytest.mark.security("AC-3")
    @pytest.mark.parametrize(
        "status", [EventStatus.PENDING, EventStatus.REJECTED, EventStatus.CANCELLED]
    )
    async def test_hidden_from_anonymous_and_users_404(
        self, client, session, manager, user, auth_as, status
    ):
        series, _ = await create_series(session, owner=manager, status=status)

        anonymous = await client.get(f"{SERIES}/{series.id}")
        plain = await client.get(f"{SERIES}/{series.id}", headers=await auth_as(user))

        assert (anonymous.status_code, anonymous.json()) == (404, SERIES_NOT_FOUND)
        assert (plain.status_code, plain.json()) == (404, SERIES_NOT_FOUND)

    @pytest.mark.parametrize("viewer", ["creator", "other_manager", "admin"])
    async def test_hidden_seen_by_creator_and_staff_200(
        self, client, session, manager, other_manager, admin, auth_as, viewer
    ):
        series, _ = await create_series(session, owner=manager, status=EventStatus.PENDING)
        caller = {"creator": manager, "other_manager": other_manager, "admin": admin}[viewer]

        response = await client.get(f"{SERIES}/{series.id}", headers=await auth_as(caller))

        assert (response.status_code, response.json()["status"]) == (200, "PENDING")

    async def test_unknown_404(self, client, admin, auth_as):
        response = await client.get(f"{SERIES}/{uuid.uuid4()}", headers=await auth_as(admin))

        assert (response.status_code, response.json()) == (404, SERIES_NOT_FOUND)


class TestListOccurrences:
    async def test_the_series_occurrences_only(self, client, session, manager):
        series, events = await create_series(session, owner=manager, count=3)
        await create_series(session, owner=manager, count=2)

        response = await client.get(EVENTS, params={"series_id": str(series.id)})

        assert response.status_code == 200
        assert [item["id"] for item in response.json()["items"]] == [str(e.id) for e in events]
        assert {item["series_id"] for item in response.json()["items"]} == {str(series.id)}
        assert response.json()["total"] == 3

    async def test_status_defaults_to_all_the_caller_may_see(
        self, client, session, manager, user, auth_as
    ):
        series, events = await create_series(session, owner=manager, count=3)
        events[1].status, events[1].cancelled_at = EventStatus.CANCELLED, events[1].starts_at
        session.add(events[1])
        await session.flush()
        path = f"{EVENTS}?series_id={series.id}"

        anonymous = await client.get(path)
        plain = await client.get(path, headers=await auth_as(user))
        creator = await client.get(path, headers=await auth_as(manager))
        cancelled = await client.get(f"{path}&status=CANCELLED", headers=await auth_as(manager))

        published = [str(events[0].id), str(events[2].id)]
        assert [item["id"] for item in anonymous.json()["items"]] == published
        assert [item["id"] for item in plain.json()["items"]] == published
        assert [item["id"] for item in creator.json()["items"]] == [str(e.id) for e in events]
        assert [item["id"] for item in cancelled.json()["items"]] == [str(events[1].id)]

    @pytest.mark.security("AC-3")
    async def test_pending_series_hidden_from_anonymous(
        self, client, session, manager, admin, auth_as
    ):
        series, events = await create_series(session, owner=manager, status=EventStatus.PENDING)

        anonymous = await client.get(EVENTS, params={"series_id": str(series.id)})
        staff = await client.get(
            EVENTS, params={"series_id": str(series.id)}, headers=await auth_as(admin)
        )

        assert anonymous.json()["items"] == []
        assert [item["id"] for item in staff.json()["items"]] == [str(e.id) for e in events]

    async def test_event_outside_a_series_shows_null(self, client, session, manager):
        event = await create_event(session, owner=manager)

        response = await client.get(f"{EVENTS}/{event.id}")

        assert response.json()["series_id"] is None

    async def test_bad_series_id_422(self, client):
        response = await client.get(EVENTS, params={"series_id": "not-a-uuid"})

        assert response.status_code == 422

    async def test_occurrence_shows_its_series(self, client, session, manager):
        series, events = await create_series(session, owner=manager)

        response = await client.get(f"{EVENTS}/{events[0].id}")

        assert response.json()["series_id"] == str(series.id)


@pytest.mark.usefixtures("vacuum_afterwards")
async def test_listing_by_series_reads_its_index(client, session, manager):
    """Among many events, the count and the page of a series' occurrences read its index."""
    await bulk_events(session, manager, 20_000)
    series, _ = await create_series(session, owner=manager, count=5)
    await session.execute(text("ANALYZE event"))

    statements = await captured_listing_sql(client, session, {"series_id": str(series.id)})

    for sql in statements:
        nodes = await plan(session, sql)
        assert any(node.get("Index Name") == "ix_event_series_id_starts_at" for node in nodes)
        assert not any(
            node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "event"
            for node in nodes
        ), nodes
