"""EVENT_REMINDER (API.md, Notifications; API-attendees.md, Reminders): REMINDER_HOURS before the
start (24 by default), to confirmed registrants, each offset once per start time.

The clock is frozen (tests/reminders/conftest.py) years ahead of real time, so events other
tests leave behind have long started and are never due here.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

import api.clock
from api import worker
from api.config import settings
from api.events.models import Event, EventStatus
from api.mail.service import SEND_EMAIL
from api.notifications.models import Notification, NotificationKind
from api.registrations.models import RegistrationStatus
from api.reminders import service as reminder_service
from api.reminders.models import EventReminder
from api.reminders.service import send_due_reminders
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, queued_mail, register
from tests.reminders.conftest import NOW, delete_committed

LOCATION = "Room 101"


def subject(title: str, hours: int = 24) -> str:
    return f"Reminder: {title} starts within {hours} hour{'s' * (hours != 1)}"


async def marked(session: AsyncSession, event: Event) -> list[tuple[int, datetime, datetime]]:
    """The reminders of `event` counted as sent: (hours_before, starts_at, sent_at)."""
    rows = await session.scalars(
        select(EventReminder).where(col(EventReminder.event_id) == event.id)
    )
    return sorted((r.hours_before, r.starts_at, r.sent_at) for r in rows)


async def event_at(
    session: AsyncSession,
    owner: User,
    title: str,
    starts_in: timedelta,
    status: EventStatus = EventStatus.PUBLISHED,
) -> Event:
    starts_at = NOW + starts_in
    return await create_event(
        session,
        owner=owner,
        status=status,
        title=title,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        location=LOCATION,
    )


async def move(
    client: httpx.AsyncClient, event: Event, starts_at: datetime, headers: dict[str, str]
) -> httpx.Response:
    """PATCH the event to start at `starts_at`, two hours long."""
    return await client.patch(
        f"/api/v1/events/{event.id}",
        json={
            "starts_at": starts_at.isoformat(),
            "ends_at": (starts_at + timedelta(hours=2)).isoformat(),
        },
        headers=headers,
    )


async def reminders(session: AsyncSession) -> list[tuple[uuid.UUID, str, str, dict[str, Any]]]:
    """The EVENT_REMINDER notices stored in-app: (user_id, title, body, data)."""
    rows = await session.scalars(
        select(Notification).where(col(Notification.kind) == NotificationKind.EVENT_REMINDER)
    )
    return sorted((n.user_id, n.title, n.body, n.data) for n in rows)


async def mail_summary(session: AsyncSession) -> list[tuple[str, str]]:
    return [(mail.to, mail.subject) for mail in await queued_mail(session)]


# --- in the test's transaction ----------------------------------------------------------------


@pytest.mark.usefixtures("frozen")
class TestSendDueReminders:
    async def test_reminds_confirmed_registrants_of_due_published_events(self, session, manager):
        due = await event_at(session, manager, "Due soon", timedelta(hours=3))
        not_yet = await event_at(session, manager, "Day after", timedelta(hours=30))
        started = await event_at(session, manager, "Running now", timedelta(hours=-1))
        pending = await event_at(
            session, manager, "Awaiting review", timedelta(hours=3), EventStatus.PENDING
        )
        cancelled = await event_at(
            session, manager, "Called off", timedelta(hours=3), EventStatus.CANCELLED
        )
        confirmed = await create_user(session)
        waitlisted = await create_user(session)
        withdrawn = await create_user(session)
        elsewhere = await create_user(session)
        await register(session, due, confirmed, RegistrationStatus.CONFIRMED)
        await register(session, due, waitlisted, RegistrationStatus.WAITLISTED)
        await register(session, due, withdrawn, RegistrationStatus.CANCELLED)
        for other in (not_yet, started, pending, cancelled):
            await register(session, other, elsewhere, RegistrationStatus.CONFIRMED)

        reminded = await send_due_reminders(session)

        assert reminded == 1
        assert await mail_summary(session) == [(confirmed.email, subject("Due soon"))]
        assert await reminders(session) == [
            (
                confirmed.id,
                subject("Due soon"),
                '"Due soon" starts Tue 04 Mar 2031, 12:00 to 14:00 (UTC), at Room 101.',
                {"event_id": str(due.id), "hours_before": 24},
            )
        ]
        assert await marked(session, due) == [(24, due.starts_at, NOW)]
        for event in (not_yet, started, pending, cancelled):
            assert await marked(session, event) == []

    async def test_every_confirmed_registrant_of_every_due_event(self, session, manager):
        first = await event_at(session, manager, "First talk", timedelta(hours=1))
        second = await event_at(session, manager, "Second talk", timedelta(hours=24))
        ada, bob = await create_user(session), await create_user(session)
        await register(session, first, ada, RegistrationStatus.CONFIRMED)
        await register(session, first, bob, RegistrationStatus.CONFIRMED)
        await register(session, second, ada, RegistrationStatus.CONFIRMED)

        reminded = await send_due_reminders(session)

        assert reminded == 2
        assert sorted(await mail_summary(session)) == sorted(
            [
                (ada.email, subject("First talk")),
                (bob.email, subject("First talk")),
                (ada.email, subject("Second talk")),
            ]
        )
        assert sorted((user_id, title) for user_id, title, _, _ in await reminders(session)) == (
            sorted(
                [
                    (ada.id, subject("First talk")),
                    (bob.id, subject("First talk")),
                    (ada.id, subject("Second talk")),
                ]
            )
        )

    async def test_due_event_without_confirmed_registrants_is_marked(self, session, manager):
        empty = await event_at(session, manager, "Nobody came", timedelta(hours=2))

        reminded = await send_due_reminders(session)

        assert reminded == 1
        assert await mail_summary(session) == []
        assert await reminders(session) == []
        assert await marked(session, empty) == [(24, empty.starts_at, NOW)]

    async def test_second_run_sends_nothing(self, session, manager, user):
        due = await event_at(session, manager, "Due soon", timedelta(hours=3))
        await register(session, due, user, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 1

        reminded = await send_due_reminders(session)

        assert reminded == 0
        assert await mail_summary(session) == [(user.email, subject("Due soon"))]
        assert [row[0] for row in await reminders(session)] == [user.id]
        assert await marked(session, due) == [(24, due.starts_at, NOW)]

    async def test_event_becomes_due_as_time_passes(self, session, manager, user, frozen):
        later = await event_at(session, manager, "Day after", timedelta(hours=30))
        await register(session, later, user, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 0
        assert await mail_summary(session) == []

        frozen.advance(hours=7)  # now 23 h before the start
        reminded = await send_due_reminders(session)

        assert reminded == 1
        assert await mail_summary(session) == [(user.email, subject("Day after"))]
        assert [row[0] for row in await reminders(session)] == [user.id]
        assert await marked(session, later) == [(24, later.starts_at, NOW + timedelta(hours=7))]

    async def test_exactly_24_hours_ahead_is_due(self, session, manager, user):
        edge = await event_at(session, manager, "On the edge", timedelta(hours=24))
        beyond = await event_at(session, manager, "Just beyond", timedelta(hours=24, seconds=1))
        await register(session, edge, user, RegistrationStatus.CONFIRMED)
        await register(session, beyond, user, RegistrationStatus.CONFIRMED)

        reminded = await send_due_reminders(session)

        assert reminded == 1
        assert await mail_summary(session) == [(user.email, subject("On the edge"))]


@pytest.mark.usefixtures("frozen")
class TestManyDueEvents:
    async def test_all_reminded_in_one_run_a_round_at_a_time(
        self, session, manager, user, monkeypatch
    ):
        monkeypatch.setattr(reminder_service, "EVENTS_PER_ROUND", 2)
        titles = [f"Talk {n}" for n in range(5)]
        for n, title in enumerate(titles):
            event = await event_at(session, manager, title, timedelta(hours=1 + n))
            await register(session, event, user, RegistrationStatus.CONFIRMED)

        assert await send_due_reminders(session) == 5
        assert await send_due_reminders(session) == 0

        assert await mail_summary(session) == [(user.email, subject(t)) for t in titles]


@pytest.mark.usefixtures("frozen")
class TestRescheduleResetsReminder:
    async def test_new_start_time_is_reminded_again(self, client, session, manager, user, auth_as):
        event = await event_at(session, manager, "Moved talk", timedelta(hours=3))
        await register(session, event, user, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 1
        starts_at = NOW + timedelta(hours=5)

        response = await move(client, event, starts_at, await auth_as(manager))

        assert response.status_code == 200
        assert await send_due_reminders(session) == 1
        assert await marked(session, event) == [
            (24, NOW + timedelta(hours=3), NOW),
            (24, starts_at, NOW),
        ]
        assert await mail_summary(session) == [
            (user.email, subject("Moved talk")),
            (user.email, "Event changed: Moved talk"),
            (user.email, subject("Moved talk")),
        ]
        assert [body for _, _, body, _ in await reminders(session)] == sorted(
            [
                '"Moved talk" starts Tue 04 Mar 2031, 12:00 to 14:00 (UTC), at Room 101.',
                '"Moved talk" starts Tue 04 Mar 2031, 14:00 to 16:00 (UTC), at Room 101.',
            ]
        )

    async def test_moved_beyond_24_hours_waits(self, client, session, manager, user, auth_as):
        event = await event_at(session, manager, "Postponed talk", timedelta(hours=3))
        await register(session, event, user, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 1
        starts_at = NOW + timedelta(days=3)

        response = await move(client, event, starts_at, await auth_as(manager))

        assert response.status_code == 200
        assert await send_due_reminders(session) == 0
        assert await marked(session, event) == [(24, NOW + timedelta(hours=3), NOW)]

    async def test_other_edits_keep_the_reminder(self, client, session, manager, user, auth_as):
        event = await event_at(session, manager, "Stable talk", timedelta(hours=3))
        await register(session, event, user, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 1

        response = await client.patch(
            f"/api/v1/events/{event.id}",
            json={"description": "Now with an agenda."},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert await marked(session, event) == [(24, event.starts_at, NOW)]
        assert await send_due_reminders(session) == 0
        assert await mail_summary(session) == [(user.email, subject("Stable talk"))]


async def sent_offsets(session: AsyncSession) -> list[tuple[uuid.UUID, str, Any]]:
    """The reminders stored in-app as (user_id, title, hours_before), oldest first."""
    rows = await session.scalars(
        select(Notification)
        .where(col(Notification.kind) == NotificationKind.EVENT_REMINDER)
        .order_by(col(Notification.created_at), col(Notification.id))
    )
    return [(n.user_id, n.title, n.data["hours_before"]) for n in rows]


@pytest.mark.usefixtures("frozen", "two_offsets")
class TestTwoOffsets:
    """REMINDER_HOURS=24,2."""

    async def test_each_offset_sent_once(self, session, manager, user, frozen):
        event = await event_at(session, manager, "Long day", timedelta(hours=30))
        await register(session, event, user, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 0

        frozen.advance(hours=6)  # 24 h before the start
        assert await send_due_reminders(session) == 1
        assert await send_due_reminders(session) == 0
        frozen.advance(hours=21, minutes=59)  # 2 h 1 min before: not yet
        assert await send_due_reminders(session) == 0
        frozen.advance(minutes=1)  # 2 h before
        assert await send_due_reminders(session) == 1
        frozen.advance(minutes=5)
        assert await send_due_reminders(session) == 0

        assert await sent_offsets(session) == [
            (user.id, subject("Long day", 24), 24),
            (user.id, subject("Long day", 2), 2),
        ]
        assert await mail_summary(session) == [
            (user.email, subject("Long day", 24)),
            (user.email, subject("Long day", 2)),
        ]
        starts_at = NOW + timedelta(hours=30)
        assert await marked(session, event) == [
            (2, starts_at, NOW + timedelta(hours=28)),
            (24, starts_at, NOW + timedelta(hours=6)),
        ]

    async def test_only_the_smallest_when_both_are_due(self, session, manager, user):
        event = await event_at(session, manager, "Last minute", timedelta(hours=1))
        await register(session, event, user, RegistrationStatus.CONFIRMED)

        assert await send_due_reminders(session) == 1
        assert await send_due_reminders(session) == 0

        assert await sent_offsets(session) == [(user.id, subject("Last minute", 2), 2)]
        assert await mail_summary(session) == [(user.email, subject("Last minute", 2))]
        assert await marked(session, event) == [(2, event.starts_at, NOW)]

    async def test_the_larger_never_follows_the_smaller(self, session, manager, user, frozen):
        """The 24-hour reminder, skipped, counts as sent: it never goes after the 2-hour one."""
        event = await event_at(session, manager, "Last minute", timedelta(hours=1))
        await register(session, event, user, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 1

        for _ in range(11):
            frozen.advance(minutes=5)
            assert await send_due_reminders(session) == 0

        assert await sent_offsets(session) == [(user.id, subject("Last minute", 2), 2)]

    async def test_new_start_time_rearms_each_offset(
        self, client, session, manager, user, auth_as, frozen
    ):
        event = await event_at(session, manager, "Moving target", timedelta(hours=3))
        await register(session, event, user, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 1  # 24
        frozen.advance(hours=1, minutes=30)
        assert await send_due_reminders(session) == 1  # 2
        moved_to = NOW + timedelta(hours=10)

        response = await move(client, event, moved_to, await auth_as(manager))

        assert response.status_code == 200
        frozen.advance(minutes=5)  # the job's next run
        assert await send_due_reminders(session) == 1  # 24 again, for the new time
        assert await send_due_reminders(session) == 0
        frozen.advance(hours=6, minutes=25)  # 2 h before the new time
        assert await send_due_reminders(session) == 1  # 2 again
        assert [hours for _, _, hours in await sent_offsets(session)] == [24, 2, 24, 2]
        assert await mail_summary(session) == [
            (user.email, subject("Moving target", 24)),
            (user.email, subject("Moving target", 2)),
            (user.email, "Event changed: Moving target"),
            (user.email, subject("Moving target", 24)),
            (user.email, subject("Moving target", 2)),
        ]
        old = NOW + timedelta(hours=3)
        assert await marked(session, event) == [
            (2, old, NOW + timedelta(hours=1, minutes=30)),
            (2, moved_to, NOW + timedelta(hours=8)),
            (24, old, NOW),
            (24, moved_to, NOW + timedelta(hours=1, minutes=35)),
        ]

    async def test_an_offset_added_later_does_not_follow_a_smaller_one(
        self, session, manager, user, monkeypatch
    ):
        event = await event_at(session, manager, "Soon", timedelta(hours=3))
        await register(session, event, user, RegistrationStatus.CONFIRMED)
        monkeypatch.setattr(settings, "REMINDER_HOURS", "24")
        assert await send_due_reminders(session) == 1

        monkeypatch.setattr(settings, "REMINDER_HOURS", "24,48")
        assert await send_due_reminders(session) == 0

        assert await sent_offsets(session) == [(user.id, subject("Soon", 24), 24)]


# --- against committed data: two workers, and the worker's job ----------------------------------

LATER = datetime(2032, 6, 1, 9, 0, tzinfo=UTC)  # apart from NOW: no other test's event is due


@dataclass
class Committed:
    prefix: str
    event_id: uuid.UUID
    confirmed: list[User]


@pytest.fixture
async def committed_event(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Committed]:
    """A committed published event 3 h ahead with two confirmed registrants and a waitlisted one."""
    monkeypatch.setattr(api.clock, "now", lambda: LATER)
    prefix = f"remind-{uuid.uuid4().hex[:10]}"
    async with AsyncSession(engine, expire_on_commit=False) as session:
        owner = await create_user(
            session, role=UserRole.MANAGER, email=f"{prefix}-owner@example.com"
        )
        starts_at = LATER + timedelta(hours=3)
        event = await create_event(
            session,
            owner=owner,
            title=f"Committed {prefix}",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
        )
        confirmed = [
            await create_user(session, email=f"{prefix}-confirmed-{i}@example.com")
            for i in range(2)
        ]
        waitlisted = await create_user(session, email=f"{prefix}-waitlisted@example.com")
        for person in confirmed:
            await register(session, event, person, RegistrationStatus.CONFIRMED)
        await register(session, event, waitlisted, RegistrationStatus.WAITLISTED)
        await session.commit()
    try:
        yield Committed(prefix=prefix, event_id=event.id, confirmed=confirmed)
    finally:
        await delete_committed(engine, prefix, event.id)


async def committed_outcome(
    engine: AsyncEngine, world: Committed
) -> tuple[list[str], list[uuid.UUID], datetime | None]:
    """(reminder mail jobs' recipients, reminded user ids, when the event's 24-hour reminder
    was marked sent)."""
    async with AsyncSession(engine) as session:
        jobs = await session.scalars(
            text(
                "SELECT convert_from(payload, 'UTF8')::jsonb ->> 'to' FROM pgqueuer"
                " WHERE entrypoint = :e AND convert_from(payload, 'UTF8')::jsonb ->> 'to' LIKE :p"
                " AND convert_from(payload, 'UTF8')::jsonb ->> 'subject' = :s"
            ),
            {"e": SEND_EMAIL, "p": f"{world.prefix}-%", "s": subject(f"Committed {world.prefix}")},
        )
        reminded = await session.scalars(
            select(col(Notification.user_id)).where(
                col(Notification.kind) == NotificationKind.EVENT_REMINDER,
                col(Notification.user_id).in_([u.id for u in world.confirmed]),
            )
        )
        sent_at = await session.scalar(
            select(col(EventReminder.sent_at)).where(
                col(EventReminder.event_id) == world.event_id,
                col(EventReminder.hours_before) == 24,
            )
        )
        return sorted(jobs.all()), sorted(reminded.all()), sent_at


class TestConcurrentReminderRuns:
    async def test_two_workers_remind_each_registrant_once(self, engine, committed_event):
        first_holds_lock = asyncio.Event()
        second_done = asyncio.Event()

        async def first() -> int:
            async with AsyncSession(engine) as session:
                reminded = await send_due_reminders(session)
                first_holds_lock.set()
                await second_done.wait()  # the event row stays locked until this commit
                await session.commit()
                return reminded

        async def second() -> int:
            await first_holds_lock.wait()
            try:
                async with AsyncSession(engine) as session:
                    # A worker that waited for the lock instead of skipping fails here, not hangs.
                    await session.execute(text("SET LOCAL lock_timeout = '5s'"))
                    reminded = await send_due_reminders(session)
                    await session.commit()
                    return reminded
            finally:
                second_done.set()

        first_count, second_count = await asyncio.gather(first(), second())

        assert (first_count, second_count) == (1, 0)
        jobs, reminded, sent_at = await committed_outcome(engine, committed_event)
        assert jobs == sorted(u.email for u in committed_event.confirmed)
        assert reminded == sorted(u.id for u in committed_event.confirmed)
        assert sent_at == LATER

    async def test_rolled_back_run_leaves_the_event_due(self, engine, committed_event):
        async with AsyncSession(engine) as session:
            assert await send_due_reminders(session) == 1
            await session.rollback()

        assert await committed_outcome(engine, committed_event) == ([], [], None)
        async with AsyncSession(engine) as session:
            assert await send_due_reminders(session) == 1
            await session.commit()
        jobs, reminded, sent_at = await committed_outcome(engine, committed_event)
        assert jobs == sorted(u.email for u in committed_event.confirmed)
        assert reminded == sorted(u.id for u in committed_event.confirmed)
        assert sent_at == LATER


class TestSendEventRemindersJob:
    async def test_job_run_twice_reminds_once(self, engine, committed_event):
        await worker.send_event_reminders(None)  # type: ignore[arg-type]
        await worker.send_event_reminders(None)  # type: ignore[arg-type]

        jobs, reminded, sent_at = await committed_outcome(engine, committed_event)
        assert jobs == sorted(u.email for u in committed_event.confirmed)
        assert reminded == sorted(u.id for u in committed_event.confirmed)
        assert sent_at == LATER

    async def test_schedule_enqueues_the_job_every_five_minutes(self, engine):
        queue = worker.build_queue(None)
        schedules = {
            str(key.entrypoint): (key.expression, executor.parameters.func)
            for key, executor in queue.sm.registry.items()
        }
        expression, enqueue = schedules["enqueue_event_reminders"]
        assert expression == "*/5 * * * *"
        assert worker.SEND_REMINDERS in queue.qm.entrypoint_registry
        count = text("SELECT coalesce(max(id), 0), count(*) FROM pgqueuer WHERE entrypoint = :e")
        async with AsyncSession(engine) as session:
            last_id, before = (await session.execute(count, {"e": worker.SEND_REMINDERS})).one()

        await enqueue(None)  # type: ignore[arg-type, call-arg]

        async with AsyncSession(engine) as session:
            try:
                _, after = (await session.execute(count, {"e": worker.SEND_REMINDERS})).one()
                assert after == before + 1
            finally:
                await session.execute(
                    text("DELETE FROM pgqueuer WHERE entrypoint = :e AND id > :id"),
                    {"e": worker.SEND_REMINDERS, "id": last_id},
                )
                await session.commit()
