"""What the calendar feed shows (API-integrations.md, Calendar feed): which events, with what
STATUS, SEQUENCE, DTSTAMP and LAST-MODIFIED, parsed with icalendar after each change."""

from datetime import UTC, datetime, timedelta

import httpx
import icalendar
import pytest

from api.config import settings
from api.events.models import Event, EventStatus
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, register
from tests.feeds.conftest import Clock, feed_path, read_feed, vevents

API = "/api/v1/events"
Headers = dict[str, str]


def uid(event: Event) -> str:
    return f"{event.id}@testserver"


async def shown(client: httpx.AsyncClient, path: str) -> dict[str, tuple[str, int]]:
    """UID -> (STATUS, SEQUENCE) of every VEVENT of the feed."""
    calendar = await read_feed(client, path)
    return {key: (str(item["STATUS"]), item.sequence) for key, item in vevents(calendar).items()}


async def changed_at(client: httpx.AsyncClient, path: str, event: Event) -> datetime:
    """DTSTAMP of the event's VEVENT, checked equal to its LAST-MODIFIED."""
    item = vevents(await read_feed(client, path))[uid(event)]
    stamp, modified = item.DTSTAMP, item.LAST_MODIFIED
    assert stamp == modified
    assert isinstance(stamp, datetime)
    return stamp


async def call(
    client: httpx.AsyncClient, method: str, path: str, headers: Headers, **body: object
) -> None:
    response = await client.request(method, path, headers=headers, json=body or None)
    assert response.status_code in (200, 201, 204), response.text


class TestSequenceAndStatus:
    async def test_each_change_of_a_registrants_event(
        self, client, session, manager, user, auth_as, moving_clock: Clock
    ):
        event = await create_event(session, owner=manager, title="Compilers")
        owner, registrant = await auth_as(manager), await auth_as(user)
        path = await feed_path(client, registrant)
        assert await shown(client, path) == {}

        registered = moving_clock.advance(minutes=1)
        await call(client, "POST", f"{API}/{event.id}/registrations", registrant)
        assert await shown(client, path) == {uid(event): ("CONFIRMED", 0)}
        assert await changed_at(client, path, event) == registered

        # Moved: the event's revision rises, DTSTART follows.
        moved = moving_clock.advance(minutes=1)
        new_start = (event.starts_at + timedelta(days=1)).astimezone(UTC).replace(microsecond=0)
        await call(
            client,
            "PATCH",
            f"{API}/{event.id}",
            owner,
            starts_at=new_start.isoformat(),
            ends_at=(new_start + timedelta(hours=2)).isoformat(),
        )
        assert await shown(client, path) == {uid(event): ("CONFIRMED", 1)}
        item = vevents(await read_feed(client, path))[uid(event)]
        assert (item.start, item.end) == (new_start, new_start + timedelta(hours=2))
        assert await changed_at(client, path, event) == moved

        # A new title is no new revision.
        moving_clock.advance(minutes=1)
        await call(client, "PATCH", f"{API}/{event.id}", owner, title="Compilers, part two")
        assert await shown(client, path) == {uid(event): ("CONFIRMED", 1)}
        item = vevents(await read_feed(client, path))[uid(event)]
        assert str(item["SUMMARY"]) == "Compilers, part two"

        # Unregistered: still shown, CANCELLED, one more.
        left = moving_clock.advance(minutes=1)
        await call(client, "DELETE", f"{API}/{event.id}/registrations/me", registrant)
        assert await shown(client, path) == {uid(event): ("CANCELLED", 2)}
        assert await changed_at(client, path, event) == left

        # Registered again: CONFIRMED, one more (never back to a smaller number).
        await call(client, "POST", f"{API}/{event.id}/registrations", registrant)
        assert await shown(client, path) == {uid(event): ("CONFIRMED", 3)}

        # The event cancelled: its revision and the registration's cancellation both count.
        cancelled = moving_clock.advance(minutes=1)
        await call(client, "POST", f"{API}/{event.id}/cancel", owner, reason="Speaker ill")
        assert await shown(client, path) == {uid(event): ("CANCELLED", 5)}
        assert await changed_at(client, path, event) == cancelled

    async def test_the_review_workflow_raises_the_revision(
        self, client, session, manager, admin, auth_as
    ):
        event = await create_event(session, owner=manager, status=EventStatus.PENDING)
        owner, reviewer = await auth_as(manager), await auth_as(admin)
        path = await feed_path(client, owner)
        assert await shown(client, path) == {uid(event): ("TENTATIVE", 0)}

        steps: list[tuple[str, str, Headers, dict[str, object], tuple[str, int]]] = [
            ("POST", "reject", reviewer, {"feedback": "Add an agenda"}, ("TENTATIVE", 1)),
            ("POST", "submit", owner, {}, ("TENTATIVE", 2)),
            ("POST", "approve", reviewer, {}, ("CONFIRMED", 3)),
            ("PATCH", "", owner, {"location": "Hall C"}, ("CONFIRMED", 4)),
            ("PATCH", "", owner, {"online_url": "https://meet.example.com/x"}, ("CONFIRMED", 5)),
            ("PATCH", "", owner, {"capacity": 50, "tags": ["x"]}, ("CONFIRMED", 5)),
            ("POST", "cancel", owner, {}, ("CANCELLED", 6)),
        ]
        for method, action, headers, body, expected in steps:
            target = f"{API}/{event.id}" + (f"/{action}" if action else "")
            await call(client, method, target, headers, **body)
            assert await shown(client, path) == {uid(event): expected}, action

    async def test_a_patch_that_changes_nothing_keeps_the_revision(
        self, client, session, manager, auth_as
    ):
        event = await create_event(session, owner=manager, location="Hall A")
        owner = await auth_as(manager)
        path = await feed_path(client, owner)

        await call(client, "PATCH", f"{API}/{event.id}", owner, location="Hall A")

        assert await shown(client, path) == {uid(event): ("CONFIRMED", 0)}


class TestWhatIsShown:
    async def test_waitlisted_is_absent_until_promoted(
        self, client, session, manager, user, auth_as
    ):
        event = await create_event(session, owner=manager, capacity=1)
        first = await create_user(session, role=UserRole.AUTHENTICATED)
        first_headers, registrant = await auth_as(first), await auth_as(user)
        await call(client, "POST", f"{API}/{event.id}/registrations", first_headers)
        await call(client, "POST", f"{API}/{event.id}/registrations", registrant)
        path = await feed_path(client, registrant)
        assert await shown(client, path) == {}

        await call(client, "DELETE", f"{API}/{event.id}/registrations/me", first_headers)

        assert await shown(client, path) == {uid(event): ("CONFIRMED", 0)}
        # A seat got by promotion was a seat: leaving it shows the event CANCELLED.
        await call(client, "DELETE", f"{API}/{event.id}/registrations/me", registrant)
        assert await shown(client, path) == {uid(event): ("CANCELLED", 1)}

    async def test_a_cancelled_place_in_line_is_never_shown(
        self, client, session, manager, user, auth_as
    ):
        event = await create_event(session, owner=manager, capacity=1)
        await register(session, event, await create_user(session, role=UserRole.AUTHENTICATED))
        registrant = await auth_as(user)
        await call(client, "POST", f"{API}/{event.id}/registrations", registrant)
        await call(client, "DELETE", f"{API}/{event.id}/registrations/me", registrant)

        assert await shown(client, await feed_path(client, registrant)) == {}

    async def test_a_managers_created_events_by_status(self, client, session, manager, auth_as):
        made = {
            status: await create_event(session, owner=manager, status=status)
            for status in EventStatus
        }
        other = await create_user(session, role=UserRole.MANAGER)
        await create_event(session, owner=other)  # another manager's: not shown

        path = await feed_path(client, await auth_as(manager))

        assert await shown(client, path) == {
            uid(made[EventStatus.PENDING]): ("TENTATIVE", 0),
            uid(made[EventStatus.REJECTED]): ("TENTATIVE", 0),
            uid(made[EventStatus.PUBLISHED]): ("CONFIRMED", 0),
            uid(made[EventStatus.CANCELLED]): ("CANCELLED", 0),
        }

    async def test_a_demoted_creator_keeps_only_registrations(
        self, client, session, manager, auth_as
    ):
        await create_event(session, owner=manager)
        path = await feed_path(client, await auth_as(manager))
        manager.role = UserRole.AUTHENTICATED
        session.add(manager)
        await session.flush()

        assert await shown(client, path) == {}

    async def test_a_creator_who_left_their_own_event_still_sees_it(
        self, client, session, manager, auth_as
    ):
        event = await create_event(session, owner=manager)
        owner = await auth_as(manager)
        await call(client, "POST", f"{API}/{event.id}/registrations", owner)
        await call(client, "DELETE", f"{API}/{event.id}/registrations/me", owner)

        assert await shown(client, await feed_path(client, owner)) == {uid(event): ("CONFIRMED", 1)}

    async def test_events_ended_90_days_ago_are_absent(
        self, client, session, manager, user, auth_as, moving_clock: Clock
    ):
        event = await create_event(session, owner=manager)
        registrant = await auth_as(user)
        await call(client, "POST", f"{API}/{event.id}/registrations", registrant)
        path = await feed_path(client, registrant)
        ended = event.ends_at

        moving_clock.at = ended + timedelta(days=90) - timedelta(seconds=1)
        assert await shown(client, path) == {uid(event): ("CONFIRMED", 0)}
        moving_clock.at = ended + timedelta(days=90)
        assert await shown(client, path) == {}

    async def test_a_managers_event_ended_90_days_ago_is_absent(
        self, client, session, manager, auth_as, moving_clock: Clock
    ):
        event = await create_event(session, owner=manager, status=EventStatus.CANCELLED)
        path = await feed_path(client, await auth_as(manager))

        moving_clock.at = event.ends_at + timedelta(days=89)
        assert await shown(client, path) == {uid(event): ("CANCELLED", 0)}
        moving_clock.at = event.ends_at + timedelta(days=90)
        assert await shown(client, path) == {}

    @pytest.mark.parametrize("days", [30, 3])
    async def test_a_cancelled_registration_shows_for_calendar_feed_cancelled_days(
        self, client, session, manager, user, auth_as, moving_clock: Clock, monkeypatch, days
    ):
        monkeypatch.setattr(settings, "CALENDAR_FEED_CANCELLED_DAYS", days)
        event = await create_event(session, owner=manager)
        registrant = await auth_as(user)
        await call(client, "POST", f"{API}/{event.id}/registrations", registrant)
        left = moving_clock.advance(minutes=1)
        await call(client, "DELETE", f"{API}/{event.id}/registrations/me", registrant)
        path = await feed_path(client, registrant)

        moving_clock.at = left + timedelta(days=days) - timedelta(seconds=1)
        assert await shown(client, path) == {uid(event): ("CANCELLED", 1)}
        moving_clock.at = left + timedelta(days=days)
        assert await shown(client, path) == {}

    async def test_a_cancelled_events_registrants_see_it_for_as_long(
        self, client, session, manager, user, auth_as, moving_clock: Clock
    ):
        event = await create_event(session, owner=manager)
        registrant = await auth_as(user)
        await call(client, "POST", f"{API}/{event.id}/registrations", registrant)
        cancelled = moving_clock.advance(minutes=1)
        await call(client, "POST", f"{API}/{event.id}/cancel", await auth_as(manager))
        path = await feed_path(client, registrant)

        moving_clock.at = cancelled + timedelta(days=29)
        assert await shown(client, path) == {uid(event): ("CANCELLED", 2)}
        moving_clock.at = cancelled + timedelta(days=30)
        assert await shown(client, path) == {}

    async def test_only_the_owners_registrations(self, client, session, manager, user, auth_as):
        mine, theirs = (
            await create_event(session, owner=manager),
            await create_event(session, owner=manager),
        )
        other: User = await create_user(session, role=UserRole.AUTHENTICATED)
        await register(session, mine, user)
        await register(session, theirs, other)

        path = await feed_path(client, await auth_as(user))

        assert await shown(client, path) == {uid(mine): ("CONFIRMED", 0)}


class TestTheVevent:
    async def test_fields_agree_with_calendar_ics(self, client, session, manager, user, auth_as):
        starts = datetime(2099, 3, 14, 8, 30, tzinfo=UTC)
        event = await create_event(
            session,
            owner=manager,
            title="Compiler lecture",
            description="Parsing, the fun way.",
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
            timezone="Europe/Berlin",
            location="Hall A",
            online_url="https://meet.example.com/hall-a",
            tags=["compilers"],
        )
        await register(session, event, user)
        path = await feed_path(client, await auth_as(user))

        calendar = await read_feed(client, path)
        single = await client.get(f"{API}/{event.id}/calendar.ics")

        [item] = calendar.events
        [alone] = icalendar_events(single)
        assert str(item["UID"]) == str(alone["UID"]) == f"{event.id}@testserver"
        assert (item.start, item.end) == (alone.start, alone.end)
        assert (item.start, item.end) == (starts, starts + timedelta(hours=2))
        assert isinstance(item.start, datetime)
        assert str(item.start.tzinfo) == "UTC"
        assert b"DTSTART:20990314T083000Z" in (await client.get(path)).content
        assert str(item["X-EM-TIMEZONE"]) == str(alone["X-EM-TIMEZONE"]) == "Europe/Berlin"
        for name in ("SUMMARY", "DESCRIPTION", "LOCATION", "URL", "STATUS", "SEQUENCE"):
            assert str(item[name]) == str(alone[name]), name
        assert str(item["LOCATION"]) == "Hall A"
        assert str(item["URL"]) == "https://meet.example.com/hall-a"
        assert item.categories == alone.categories == ["WORKSHOP", "compilers"]
        assert item.DTSTAMP == item.LAST_MODIFIED

    async def test_the_calendar_properties(self, client, user, auth_as):
        path = await feed_path(client, await auth_as(user))

        response = await client.get(path)

        assert response.status_code == 200
        assert response.content.splitlines() == [
            b"BEGIN:VCALENDAR",
            b"VERSION:2.0",
            b"PRODID:-//event-manager//events//EN",
            b"METHOD:PUBLISH",
            b"X-WR-CALNAME:event-manager: my events",
            b"REFRESH-INTERVAL;VALUE=DURATION:PT1H",
            b"X-PUBLISHED-TTL:PT1H",
            b"END:VCALENDAR",
        ]


def icalendar_events(response: httpx.Response) -> list[icalendar.Event]:
    assert response.status_code == 200, response.text
    return list(icalendar.Calendar.from_ical(response.content).events)
