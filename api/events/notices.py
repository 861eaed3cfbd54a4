"""What the event workflow tells whom: an event as mails describe it, and the announcements to
its reviewers, its creator and its registrants (the reminders before the start: api.reminders)."""

import uuid
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.events.calendar import event_url
from api.events.models import Event, EventPublic
from api.notifications.models import NotificationKind
from api.notifications.service import announce
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
        "url": event_url(event),
    }


async def _public(session: AsyncSession, event: Event) -> EventPublic:
    """The event as GET /events/{id} shows it after the change (flushed first: updated_at)."""
    await session.flush()
    return EventPublic.model_validate(event)


async def reviewers(session: AsyncSession, *, submitter: User) -> Sequence[User]:
    """Who hears that something awaits approval: every active manager and admin but the one
    who submitted it."""
    staff = await session.scalars(
        select(User).where(
            col(User.role).in_(STAFF_ROLES),
            col(User.is_active).is_(True),
            col(User.id) != submitter.id,
        )
    )
    return staff.all()


async def _announce_to_reviewers(
    session: AsyncSession, event: Event, event_type: DomainEventType, *, submitter: User
) -> None:
    await announce(
        session,
        event_type,
        await _public(session, event),
        notify=await reviewers(session, submitter=submitter),
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


async def registrants_by_event(
    session: AsyncSession, events: Sequence[Event]
) -> dict[uuid.UUID, list[User]]:
    """The users holding a live registration of each of `events`, by event id, in one query."""
    rows = await session.execute(
        select(col(Registration.event_id), User)
        .join(Registration, col(Registration.user_id) == col(User.id))
        .where(
            col(Registration.event_id).in_([event.id for event in events]),
            col(Registration.status).in_(ACTIVE_REGISTRATION),
        )
    )
    by_event: dict[uuid.UUID, list[User]] = {}
    for event_id, user in rows:
        by_event.setdefault(event_id, []).append(user)
    return by_event
