"""Reminders before an event starts: REMINDER_HOURS ahead, to its CONFIRMED registrants, each
offset once per start time; the mail carries the event's calendar file and a "can't come" link.
"""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, exists, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.events.calendar import CONTENT_TYPE, calendar_filename, event_calendar
from api.events.models import Event, EventStatus
from api.events.notices import event_summary
from api.mail.service import Attachment
from api.notifications.models import NotificationKind
from api.notifications.service import notify_all
from api.registrations.models import Registration, RegistrationStatus
from api.reminders import cant_come
from api.reminders.models import EventReminder
from api.users.models import User

KIND = NotificationKind.EVENT_REMINDER


# Events claimed per statement: bounds each statement's parameters and each round's memory.
EVENTS_PER_ROUND = 500


def smallest_due_offset(starts_at: datetime, now: datetime, offsets: Sequence[int]) -> int:
    """The smallest of `offsets` (hours, smallest first) whose time has come for an event at
    `starts_at`, which the caller knows to be within the largest."""
    return next(hours for hours in offsets if starts_at <= now + timedelta(hours=hours))


async def _claim_due_events(
    session: AsyncSession, now: datetime, offsets: Sequence[int]
) -> tuple[list[tuple[Event, int]], int]:
    """Lock up to EVENTS_PER_ROUND published, not yet started events whose smallest due offset
    has not gone out for their current start time, and mark it sent. Returns the events claimed
    with that offset, and how many events were looked at.

    Only the smallest due offset is ever considered: as time passes it can only shrink, so a
    larger one left unsent never goes after it (it counts as sent), and a new start time, having
    no marks, is due again. SKIP LOCKED: a second worker passes over the events the first holds.
    The insert decides: the primary key takes each (event, start, offset) once, so a worker
    whose select saw the event before another's commit still sends nothing twice.
    """
    # smallest_due_offset(), in SQL.
    smallest_due = case(
        *(
            (col(Event.starts_at) <= now + timedelta(hours=hours), literal(hours))
            for hours in offsets
        )
    )
    already_sent = exists().where(
        col(EventReminder.event_id) == col(Event.id),
        col(EventReminder.starts_at) == col(Event.starts_at),
        col(EventReminder.hours_before) == smallest_due,
    )
    events = (
        await session.scalars(
            select(Event)
            .where(
                col(Event.status) == EventStatus.PUBLISHED,
                col(Event.starts_at) > now,
                col(Event.starts_at) <= now + timedelta(hours=offsets[-1]),
                ~already_sent,
            )
            .order_by(col(Event.starts_at), col(Event.id))
            .limit(EVENTS_PER_ROUND)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not events:
        return [], 0
    due = {event.id: smallest_due_offset(event.starts_at, now, offsets) for event in events}
    marked = await session.scalars(
        pg_insert(EventReminder)
        .values(
            [
                {
                    "event_id": event.id,
                    "starts_at": event.starts_at,
                    "hours_before": due[event.id],
                    "sent_at": now,
                }
                for event in events
            ]
        )
        .on_conflict_do_nothing()
        .returning(col(EventReminder.event_id))
    )
    claimed = set(marked.all())
    return [(event, due[event.id]) for event in events if event.id in claimed], len(events)


async def _confirmed_registrations(
    session: AsyncSession, event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[Registration, User]]]:
    """The CONFIRMED registrations of every event, with their users, in one statement."""
    rows = await session.execute(
        select(Registration, User)
        .join(User, col(User.id) == col(Registration.user_id))
        .where(
            col(Registration.event_id).in_(event_ids),
            col(Registration.status) == RegistrationStatus.CONFIRMED,
        )
        .order_by(col(Registration.seq))
    )
    by_event: dict[uuid.UUID, list[tuple[Registration, User]]] = defaultdict(list)
    for registration, user in rows.tuples():
        by_event[registration.event_id].append((registration, user))
    return by_event


def calendar_attachment(event: Event) -> Attachment:
    """The event's calendar file as GET /events/{id}/calendar.ics serves it."""
    return Attachment(
        filename=calendar_filename(event), content_type=CONTENT_TYPE, content=event_calendar(event)
    )


async def send_due_reminders(session: AsyncSession) -> int:
    """Remind the CONFIRMED registrants of each event whose next REMINDER_HOURS offset has come;
    the number of events reminded.

    Each offset goes once per start time (a new start time is reminded again); when several are
    due at once (an event published or moved late) only the smallest goes. The events are locked
    and marked in the transaction that queues the notices, so a crash before the commit leaves
    them due again.
    """
    now = clock.now()
    reminded = 0
    while True:
        claimed, looked_at = await _claim_due_events(session, now, settings.reminder_hours)
        await _remind(session, claimed)
        reminded += len(claimed)
        if looked_at < EVENTS_PER_ROUND:
            return reminded


async def _remind(session: AsyncSession, claimed: Sequence[tuple[Event, int]]) -> None:
    """Notify each claimed event's CONFIRMED registrants (one notice each), with the event's
    calendar file and a can't-come link of their own in the mail."""
    if not claimed:
        return
    registrations = await _confirmed_registrations(session, [event.id for event, _ in claimed])
    for event, hours_before in claimed:
        rows = registrations.get(event.id)
        if not rows:
            continue
        links: dict[uuid.UUID, dict[str, Any]] = {
            user.id: {
                "cant_come_url": cant_come.link(
                    cant_come.issue_token(
                        registration, starts_at=event.starts_at, hours_before=hours_before
                    )
                )
            }
            for registration, user in rows
        }
        await notify_all(
            session,
            [user for _, user in rows],
            KIND,
            mail_context=links,
            attachments=[calendar_attachment(event)],
            event=event_summary(event),
            hours_before=hours_before,
        )
    await session.flush()
