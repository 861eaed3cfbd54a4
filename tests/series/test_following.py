"""PATCH /api/v1/events/{id}?scope=following (API-attendees.md, Recurring series): the fields
sent go to this occurrence and every later one not CANCELLED and not started, all or none; each
keeps its local date."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from api.events.models import Event, EventStatus
from api.notifications.models import NotificationKind
from tests.factories import create_event, create_series, create_user, register
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

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def following(event: Event | uuid.UUID) -> str:
    event_id = event.id if isinstance(event, Event) else event
    return f"{EVENTS}/{event_id}?scope=following"


def snapshot(events: list[Event]) -> list[tuple[Any, ...]]:
    return [
        (
            e.title,
            e.location,
            e.capacity,
            e.starts_at,
            e.ends_at,
            e.timezone,
            e.registration_deadline,
            e.revision,
            e.updated_at,
        )
        for e in events
    ]


async def series_via_api(client, session, manager, auth_as, rrule: str, first: datetime) -> Any:
    """A series made by POST /series, then published; its occurrences soonest first."""
    body = series_body(
        rrule=rrule,
        starts_at=first.isoformat(),
        ends_at=(first + timedelta(hours=2)).isoformat(),
        timezone=str(first.tzinfo),
    )
    response = await client.post(SERIES, json=body, headers=await auth_as(manager))
    assert response.status_code == 201, response.text
    series_id = uuid.UUID(response.json()["id"])
    await session.execute(
        update(Event).where(col(Event.series_id) == series_id).values(status=EventStatus.PUBLISHED)
    )
    return await occurrences(session, series_id)


class TestFollowing:
    async def test_this_and_later_change_earlier_untouched(self, client, session, manager, auth_as):
        _, events = await create_series(session, owner=manager, count=4)
        before = snapshot(events)

        response = await client.patch(
            following(events[1]),
            json={"title": "Evening workshop", "location": "Room 5", "capacity": 30},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200, response.text
        assert (response.json()["id"], response.json()["title"]) == (
            str(events[1].id),
            "Evening workshop",
        )
        stored = await occurrences(session, events[0].series_id)
        assert snapshot(stored)[0] == before[0]
        assert [(e.title, e.location, e.capacity) for e in stored] == [
            (events[0].title, "Room 101", 10),
            ("Evening workshop", "Room 5", 30),
            ("Evening workshop", "Room 5", 30),
            ("Evening workshop", "Room 5", 30),
        ]
        assert [e.revision for e in stored] == [0, 1, 1, 1]

    async def test_this_is_the_default_scope(self, client, session, manager, auth_as):
        _, events = await create_series(session, owner=manager, count=3)

        response = await client.patch(
            f"{EVENTS}/{events[0].id}",
            json={"title": "Only this one"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        stored = await occurrences(session, events[0].series_id)
        assert [e.title for e in stored] == ["Only this one", events[1].title, events[2].title]

    async def test_cancelled_and_started_ones_untouched(
        self, client, session, manager, auth_as, now
    ):
        _, events = await create_series(session, owner=manager, count=4)
        events[2].status, events[2].cancelled_at = EventStatus.CANCELLED, now
        session.add(events[2])
        await session.flush()
        cancelled = snapshot(events)[2]

        response = await client.patch(
            following(events[1]), json={"location": "Room 7"}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        stored = await occurrences(session, events[0].series_id)
        assert snapshot(stored)[2] == cancelled
        assert [e.location for e in stored] == ["Room 101", "Room 7", "Room 101", "Room 7"]

    async def test_started_later_occurrence_untouched(self, client, session, manager, auth_as, now):
        # The addressed occurrence moved to the past by hand, a later one started already.
        _, events = await create_series(session, owner=manager, count=3)
        events[1].starts_at, events[1].ends_at = (
            now - timedelta(minutes=5),
            now + timedelta(hours=1),
        )
        events[0].starts_at, events[0].ends_at = now - timedelta(days=1), now - timedelta(hours=22)
        session.add_all(events)
        await session.flush()

        response = await client.patch(
            following(events[0]), json={"location": "Room 9"}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        stored = await occurrences(session, events[0].series_id)
        assert [e.location for e in stored] == ["Room 9", "Room 101", "Room 9"]

    async def test_each_published_one_tells_its_own_registrants(
        self, client, session, manager, auth_as
    ):
        _, events = await create_series(session, owner=manager, count=3)
        ada, bob, cy = [await create_user(session) for _ in range(3)]
        await register(session, events[0], ada)
        await register(session, events[1], bob)
        await register(session, events[2], cy)
        seen = await outbox_mark(session)

        response = await client.patch(
            following(events[1]), json={"location": "Room 5"}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        assert await notices(session, NotificationKind.EVENT_UPDATED) == sorted(
            [(bob.id, {"event_id": str(events[1].id)}), (cy.id, {"event_id": str(events[2].id)})],
            key=str,
        )
        assert [(kind, data["id"]) for kind, data in await outbox_after(session, seen)] == [
            ("event.updated", str(events[1].id)),
            ("event.updated", str(events[2].id)),
        ]

    async def test_capacity_below_registered_on_a_later_one_changes_nothing_409(
        self, client, session, manager, auth_as
    ):
        _, events = await create_series(session, owner=manager, count=4)
        for _ in range(2):
            await register(session, events[3], await create_user(session))
        before = snapshot(await occurrences(session, events[0].series_id))
        seen = await outbox_mark(session)

        response = await client.patch(
            following(events[1]),
            json={"capacity": 1, "title": "Smaller room"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 409
        assert response.json() == {
            "detail": {
                "code": "CAPACITY_BELOW_REGISTERED",
                "reason": "2 people are registered; "
                "cancel registrations before lowering the capacity below that",
                "registered_count": 2,
            }
        }
        assert snapshot(await occurrences(session, events[0].series_id)) == before
        assert await outbox_after(session, seen) == []

    async def test_starts_at_on_another_date_422_nothing_changed(
        self, client, session, manager, auth_as
    ):
        _, events = await create_series(session, owner=manager, count=3, timezone=BERLIN)
        before = snapshot(await occurrences(session, events[0].series_id))
        moved = events[1].starts_at + timedelta(days=1)

        response = await client.patch(
            following(events[1]),
            json={"starts_at": iso(moved), "ends_at": iso(moved + timedelta(hours=2))},
            headers=await auth_as(manager),
        )

        assert response.status_code == 422
        local_date = wall(events[1].starts_at, BERLIN)[:10]
        assert [(e["loc"], e["msg"]) for e in response.json()["detail"]] == [
            (
                ["body", "starts_at"],
                "Value error, with scope=following starts_at may change only the time of "
                f"day: keep {local_date} in {BERLIN}",
            )
        ]
        assert snapshot(await occurrences(session, events[0].series_id)) == before

    async def test_invalid_field_422_nothing_changed(self, client, session, manager, auth_as):
        _, events = await create_series(session, owner=manager, count=3)
        before = snapshot(await occurrences(session, events[0].series_id))

        response = await client.patch(
            following(events[0]), json={"title": None}, headers=await auth_as(manager)
        )

        assert response.status_code == 422
        assert snapshot(await occurrences(session, events[0].series_id)) == before

    async def test_cancelled_addressed_409(self, client, session, manager, auth_as, now):
        _, events = await create_series(session, owner=manager, count=2)
        events[0].status, events[0].cancelled_at = EventStatus.CANCELLED, now
        session.add(events[0])
        await session.flush()

        response = await client.patch(
            following(events[0]), json={"title": "Again"}, headers=await auth_as(manager)
        )

        assert response.status_code == 409
        assert response.json()["detail"]["code"] == "INVALID_EVENT_TRANSITION"
        assert [e.title for e in await occurrences(session, events[0].series_id)] == [
            events[0].title,
            events[1].title,
        ]

    async def test_outside_a_series_acts_as_this(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager)
        other = await create_event(session, owner=manager)

        response = await client.patch(
            following(event), json={"title": "Alone"}, headers=await auth_as(manager)
        )

        assert (response.status_code, response.json()["title"]) == (200, "Alone")
        await session.refresh(other)
        assert other.title != "Alone"

    async def test_other_manager_403(self, client, session, manager, auth_as):
        _, events = await create_series(session, owner=manager, count=2)
        stranger = await create_user(session, role=manager.role)

        response = await client.patch(
            following(events[0]), json={"title": "Mine now"}, headers=await auth_as(stranger)
        )

        assert response.status_code == 403

    async def test_unknown_scope_422(self, client, session, manager, auth_as):
        _, events = await create_series(session, owner=manager, count=2)

        response = await client.patch(
            f"{EVENTS}/{events[0].id}?scope=all",
            json={"title": "Everything"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 422


class TestIfMatch:
    async def test_stale_tag_412_nothing_changed(self, client, session, manager, auth_as):
        _, events = await create_series(session, owner=manager, count=3)
        headers = await auth_as(manager)
        tag = (await client.get(f"{EVENTS}/{events[0].id}", headers=headers)).headers["ETag"]
        await client.patch(f"{EVENTS}/{events[0].id}", json={"title": "First"}, headers=headers)
        before = snapshot(await occurrences(session, events[0].series_id))

        response = await client.patch(
            following(events[0]), json={"title": "Late"}, headers={**headers, "If-Match": tag}
        )

        assert response.status_code == 412
        assert response.headers["ETag"] != tag
        assert snapshot(await occurrences(session, events[0].series_id)) == before

    async def test_current_tag_200(self, client, session, manager, auth_as):
        _, events = await create_series(session, owner=manager, count=2)
        headers = await auth_as(manager)
        tag = (await client.get(f"{EVENTS}/{events[0].id}", headers=headers)).headers["ETag"]

        response = await client.patch(
            following(events[0]), json={"title": "Fresh"}, headers={**headers, "If-Match": tag}
        )

        assert response.status_code == 200
        assert [e.title for e in await occurrences(session, events[0].series_id)] == ["Fresh"] * 2


class TestTimes:
    async def test_time_of_day_across_the_spring_change_keeps_each_local_time(
        self, client, session, manager, auth_as, now
    ):
        change = last_sunday(now.year + 1, 3)
        first = at(change - timedelta(days=12), 19, BERLIN)  # a Tuesday, two weeks before
        events = await series_via_api(
            client, session, manager, auth_as, "FREQ=WEEKLY;COUNT=4", first
        )
        new_start = at(change - timedelta(days=12), 18, BERLIN, minute=30)

        response = await client.patch(
            following(events[0]),
            json={
                "starts_at": new_start.isoformat(),
                "ends_at": (new_start + timedelta(hours=3)).isoformat(),
            },
            headers=await auth_as(manager),
        )

        assert response.status_code == 200, response.text
        stored = await occurrences(session, events[0].series_id)
        assert [wall(e.starts_at, BERLIN) for e in stored] == [
            wall(first + timedelta(weeks=n), BERLIN)[:11] + "18:30 " + offset
            for n, offset in enumerate(["+0100", "+0100", "+0200", "+0200"])
        ]
        assert [e.ends_at - e.starts_at for e in stored] == [timedelta(hours=3)] * 4

    async def test_nonexistent_time_moves_forward_by_the_gap(
        self, client, session, manager, auth_as, now
    ):
        change = last_sunday(now.year + 1, 3)
        first = at(change - timedelta(days=1), 20, BERLIN)
        events = await series_via_api(
            client, session, manager, auth_as, "FREQ=DAILY;COUNT=3", first
        )
        new_start = at(change - timedelta(days=1), 2, BERLIN, minute=30)

        response = await client.patch(
            following(events[0]),
            json={"starts_at": new_start.isoformat()},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200, response.text
        stored = await occurrences(session, events[0].series_id)
        assert [wall(e.starts_at, BERLIN)[11:] for e in stored] == [
            "02:30 +0100",
            "03:30 +0200",
            "02:30 +0200",
        ]
        # ends_at was not sent: the addressed one's new length (20:00-22:00 became 02:30-22:00)
        assert {e.ends_at - e.starts_at for e in stored} == {timedelta(hours=19, minutes=30)}

    async def test_new_timezone_keeps_each_local_date_and_time(
        self, client, session, manager, auth_as, now
    ):
        first = at((now + timedelta(days=10)).date(), 19, BERLIN)
        events = await series_via_api(
            client, session, manager, auth_as, "FREQ=WEEKLY;COUNT=3", first
        )

        response = await client.patch(
            following(events[1]), json={"timezone": NEW_YORK}, headers=await auth_as(manager)
        )

        assert response.status_code == 200, response.text
        stored = await occurrences(session, events[0].series_id)
        assert stored[0].timezone == BERLIN
        assert [wall(e.starts_at, e.timezone)[:16] for e in stored] == [
            wall(first + timedelta(weeks=n), BERLIN)[:16] for n in range(3)
        ]
        assert [e.timezone for e in stored[1:]] == [NEW_YORK] * 2
        assert [e.ends_at - e.starts_at for e in stored] == [timedelta(hours=2)] * 3

    async def test_registration_deadline_is_an_offset_before_each_start(
        self, client, session, manager, auth_as
    ):
        _, events = await create_series(session, owner=manager, count=3)
        deadline = events[1].starts_at - timedelta(hours=24)

        response = await client.patch(
            following(events[1]),
            json={"registration_deadline": iso(deadline)},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        stored = await occurrences(session, events[0].series_id)
        assert [e.registration_deadline for e in stored] == [
            None,
            stored[1].starts_at - timedelta(hours=24),
            stored[2].starts_at - timedelta(hours=24),
        ]

    async def test_a_moved_start_keeps_each_deadline_offset(
        self, client, session, manager, auth_as
    ):
        _, events = await create_series(session, owner=manager, count=2, timezone=BERLIN)
        for event, hours in zip(events, (24, 48), strict=True):
            event.registration_deadline = event.starts_at - timedelta(hours=hours)
        session.add_all(events)
        await session.flush()
        moved = events[0].starts_at + timedelta(minutes=30)
        if wall(moved, BERLIN)[:10] != wall(events[0].starts_at, BERLIN)[:10]:
            moved = events[0].starts_at - timedelta(minutes=30)

        response = await client.patch(
            following(events[0]), json={"starts_at": iso(moved)}, headers=await auth_as(manager)
        )

        assert response.status_code == 200, response.text
        stored = await occurrences(session, events[0].series_id)
        assert [
            e.starts_at - e.registration_deadline for e in stored if e.registration_deadline
        ] == [
            timedelta(hours=24),
            timedelta(hours=48),
        ]

    async def test_ends_at_alone_sets_each_length(self, client, session, manager, auth_as):
        _, events = await create_series(session, owner=manager, count=3)

        response = await client.patch(
            following(events[0]),
            json={"ends_at": iso(events[0].starts_at + timedelta(minutes=90))},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        stored = await occurrences(session, events[0].series_id)
        assert [e.ends_at - e.starts_at for e in stored] == [timedelta(minutes=90)] * 3
        assert [e.starts_at for e in stored] == [e.starts_at for e in events]
