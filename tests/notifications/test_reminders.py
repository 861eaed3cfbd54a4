"""EVENT_REMINDER (API.md, Notifications): 24 h before the start, to confirmed registrants, once.

The clock is frozen years ahead of real time, so events other tests leave behind have long
started and are never due here.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

import api.clock
from api import worker
from api.events.models import Event, EventStatus
from api.events.notices import send_due_reminders
from api.mail.service import SEND_EMAIL
from api.notifications.models import Notification, NotificationKind
from api.registrations.models import RegistrationStatus
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, delete_mail_to, queued_mail, register

NOW = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)  # a Tuesday
LOCATION = "Room 101"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(NOW)
    monkeypatch.setattr(api.clock, "now", lambda: clock.now)
    return clock


def subject(title: str) -> str:
    return f"Reminder: {title} starts within 24 hours"


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
                {"event_id": str(due.id)},
            )
        ]
        for event in (due, not_yet, started, pending, cancelled):
            await session.refresh(event)
        assert due.reminder_sent_at == NOW
        assert [e.reminder_sent_at for e in (not_yet, started, pending, cancelled)] == [None] * 4

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
        await session.refresh(empty)
        assert empty.reminder_sent_at == NOW

    async def test_second_run_sends_nothing(self, session, manager, user):
        due = await event_at(session, manager, "Due soon", timedelta(hours=3))
        await register(session, due, user, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 1

        reminded = await send_due_reminders(session)

        assert reminded == 0
        assert await mail_summary(session) == [(user.email, subject("Due soon"))]
        assert [row[0] for row in await reminders(session)] == [user.id]
        await session.refresh(due)
        assert due.reminder_sent_at == NOW

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
        await session.refresh(later)
        assert later.reminder_sent_at == NOW + timedelta(hours=7)

    async def test_exactly_24_hours_ahead_is_due(self, session, manager, user):
        edge = await event_at(session, manager, "On the edge", timedelta(hours=24))
        beyond = await event_at(session, manager, "Just beyond", timedelta(hours=24, seconds=1))
        await register(session, edge, user, RegistrationStatus.CONFIRMED)
        await register(session, beyond, user, RegistrationStatus.CONFIRMED)

        reminded = await send_due_reminders(session)

        assert reminded == 1
        assert await mail_summary(session) == [(user.email, subject("On the edge"))]


@pytest.mark.usefixtures("frozen")
class TestRescheduleResetsReminder:
    async def test_new_start_time_is_reminded_again(self, client, session, manager, user, auth_as):
        event = await event_at(session, manager, "Moved talk", timedelta(hours=3))
        await register(session, event, user, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 1
        starts_at = NOW + timedelta(hours=5)

        response = await move(client, event, starts_at, await auth_as(manager))

        assert response.status_code == 200
        await session.refresh(event)
        assert event.reminder_sent_at is None
        assert await send_due_reminders(session) == 1
        await session.refresh(event)
        assert event.reminder_sent_at == NOW
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
        await session.refresh(event)
        assert event.reminder_sent_at is None

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
        await session.refresh(event)
        assert event.reminder_sent_at == NOW
        assert await send_due_reminders(session) == 0
        assert await mail_summary(session) == [(user.email, subject("Stable talk"))]


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
        async with AsyncSession(engine) as session:
            await delete_mail_to(session, prefix)
            await session.execute(delete(Event).where(col(Event.id) == event.id))
            await session.execute(delete(User).where(col(User.email).like(f"{prefix}-%")))
            await session.commit()


async def committed_outcome(
    engine: AsyncEngine, world: Committed
) -> tuple[list[str], list[uuid.UUID], datetime | None]:
    """(reminder mail jobs' recipients, reminded user ids, the event's reminder_sent_at)."""
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
            select(col(Event.reminder_sent_at)).where(col(Event.id) == world.event_id)
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
