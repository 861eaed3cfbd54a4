"""What the event workflow tells whom: an event as mails describe it, the announcements to its
reviewers, its creator and its registrants, and the reminders the day before."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.events.models import Event, EventPublic, EventStatus
from api.notifications.models import NotificationKind
from api.notifications.service import announce, notify_all
from api.outbox.models import DomainEventType
from api.registrations.models import ACTIVE_REGISTRATION, Registration, RegistrationStatus
from api.users.models import STAFF_ROLES, User


def event_summary(event: Event) -> dict[str, Any]:
    """What mails say about an event: its title, local time, place and address."""
    zone = ZoneInfo(event.timezone)
    starts, ends = event.starts_at.astimezone(zone), event.ends_at.astimezone(zone)
    end_format = "%H:%M" if starts.date() == ends.date() else "%a %d %b %Y, %H:%M"
    return {
        "id": str(event.id),
        "title": event.title,
        "when": f"{starts:%a %d %b %Y, %H:%M} to {ends.strftime(end_format)} ({event.timezone})",
        "where": event.location or event.online_url,
        "timezone": event.timezone,
        "url": f"{settings.PUBLIC_BASE_URL.rstrip('/')}/api/v1/events/{event.id}",
    }


async def _public(session: AsyncSession, event: Event) -> EventPublic:
    """The event as GET /events/{id} shows it after the change (flushed first: updated_at)."""
    await session.flush()
    return EventPublic.model_validate(event)


async def _announce_to_reviewers(
    session: AsyncSession, event: Event, event_type: DomainEventType, *, submitter: User
) -> None:
    reviewers = await session.scalars(
        select(User).where(
            col(User.role).in_(STAFF_ROLES),
            col(User.is_active).is_(True),
            col(User.id) != submitter.id,
        )
    )
    await announce(
        session,
        event_type,
        await _public(session, event),
        notify=reviewers.all(),
        kind=NotificationKind.EVENT_SUBMITTED,
        event=event_summary(event),
    )


async def _announce_to_creator(
    session: AsyncSession,
    event: Event,
    event_type: DomainEventType,
    kind: NotificationKind,
    **context: Any,
) -> None:
    creator = await session.get(User, event.created_by) if event.created_by else None
    await announce(
        session,
        event_type,
        await _public(session, event),
        notify=[] if creator is None else [creator],
        kind=kind,
        event=event_summary(event),
        **context,
    )


async def _registrants(
    session: AsyncSession,
    event: Event,
    statuses: Sequence[RegistrationStatus] = ACTIVE_REGISTRATION,
) -> Sequence[User]:
    users = await session.scalars(
        select(User)
        .join(Registration, col(Registration.user_id) == col(User.id))
        .where(
            col(Registration.event_id) == event.id,
            col(Registration.status).in_(statuses),
        )
    )
    return users.all()


# --- reminders ---------------------------------------------------------------------------------

REMINDER_AHEAD = timedelta(hours=24)


async def send_due_reminders(session: AsyncSession) -> int:
    """Remind confirmed registrants of published events starting within 24 hours; once each.

    The events are locked (SKIP LOCKED: a second worker passes them by) and marked in the same
    transaction that queues the notices, so a crash before the commit leaves them due again.
    """
    now = clock.now()
    events = (
        await session.scalars(
            select(Event)
            .where(
                col(Event.status) == EventStatus.PUBLISHED,
                col(Event.reminder_sent_at).is_(None),
                col(Event.starts_at) > now,
                col(Event.starts_at) <= now + REMINDER_AHEAD,
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    for event in events:
        confirmed = await _registrants(session, event, [RegistrationStatus.CONFIRMED])
        await notify_all(
            session, confirmed, NotificationKind.EVENT_REMINDER, event=event_summary(event)
        )
        event.reminder_sent_at = now
        session.add(event)
    await session.flush()
    return len(events)
