"""Plain async builders for test data, written straight to the test session."""

import secrets
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api import clock
from api.audit.models import AuditLog
from api.events.models import Event, EventStatus, EventType
from api.mail import sender
from api.mail.service import SEND_EMAIL, OutgoingMail
from api.registrations import checkin
from api.registrations.models import Registration, RegistrationStatus
from api.reminders.models import EventReminder
from api.series.models import Series
from api.tokens.models import (
    SHOWN_PREFIX_LENGTH,
    ApiToken,
    Scope,
    hash_api_token,
    new_token,
)
from api.users.models import AccessToken, User, UserRole, hash_token
from api.users.passwords import password_helper

DEFAULT_PASSWORD = "a perfectly fine passphrase"
# What API.md lists for a public profile, and for a user shown to its owner, managers and admins.
PUBLIC_FIELDS = frozenset(
    {
        "id",
        "nickname",
        "first_name",
        "last_name",
        "bio",
        "profile_picture_url",
        "linkedin_profile_url",
        "github_profile_url",
        "is_professional",
    }
)
OWNER_FIELDS = PUBLIC_FIELDS | {
    "email",
    "role",
    "is_verified",
    "is_active",
    "professional_status_updated_at",
    "is_locked",
    "last_login_at",
    "created_at",
    "updated_at",
}


async def create_user(
    session: AsyncSession,
    *,
    role: UserRole = UserRole.AUTHENTICATED,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    is_verified: bool | None = None,
    **fields: Any,
) -> User:
    suffix = uuid.uuid4().hex[:10]
    user = User(
        email=email or f"{role.value.lower()}-{suffix}@example.com",
        hashed_password=password_helper.hash(password),
        nickname=fields.pop("nickname", f"{role.value.lower()[:4]}_{suffix}"),
        role=role,
        is_verified=role is not UserRole.ANONYMOUS if is_verified is None else is_verified,
        is_superuser=role is UserRole.ADMIN,
        **fields,
    )
    session.add(user)
    await session.flush()
    return user


async def token_headers(session: AsyncSession, user: User) -> dict[str, str]:
    token = secrets.token_urlsafe()
    session.add(AccessToken(token=hash_token(token), user_id=user.id))
    await session.flush()
    return {"Authorization": f"Bearer {token}"}


async def api_token_headers(
    session: AsyncSession,
    user: User,
    scopes: Iterable[Scope] = tuple(Scope),
    *,
    expires_at: datetime | None = None,
    last_used_at: datetime | None = None,
) -> dict[str, str]:
    """Bearer headers with an API token of `user` holding `scopes` (default: every scope)."""
    token = new_token()
    session.add(
        ApiToken(
            user_id=user.id,
            name="test token",
            scopes=list(scopes),
            expires_at=expires_at or clock.now() + timedelta(days=30),
            token_hash=hash_api_token(token),
            token_prefix=token[:SHOWN_PREFIX_LENGTH],
            last_used_at=last_used_at,
        )
    )
    await session.flush()
    return {"Authorization": f"Bearer {token}"}


async def queued_mail(session: AsyncSession) -> list[OutgoingMail]:
    """Mail jobs queued in the test's transaction, oldest first."""
    rows = await session.execute(
        text("SELECT payload FROM pgqueuer WHERE entrypoint = :e ORDER BY id"), {"e": SEND_EMAIL}
    )
    return [OutgoingMail.model_validate_json(bytes(payload)) for (payload,) in rows]


async def deliver_queued_mail(session: AsyncSession) -> int:
    """Send every queued mail with the worker's own job function (real SMTP), then dequeue it.

    The jobs live in the test's uncommitted transaction, invisible to a separate worker; the
    worker's dequeue, retry and durability are tested against committed data in test_worker.py.
    """
    rows = (
        await session.execute(
            text("SELECT id, payload FROM pgqueuer WHERE entrypoint = :e ORDER BY id"),
            {"e": SEND_EMAIL},
        )
    ).all()
    for _, payload in rows:
        await sender.send(OutgoingMail.model_validate_json(bytes(payload)))
    await session.execute(text("DELETE FROM pgqueuer WHERE entrypoint = :e"), {"e": SEND_EMAIL})
    return len(rows)


async def reload(session: AsyncSession, user: User) -> User:
    await session.refresh(user)
    return user


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.scalars(select(User).where(col(User.email).ilike(email)))).first()


def event_times(days: float = 7, hours: float = 2) -> tuple[datetime, datetime]:
    """A start `days` from now and an end `hours` later."""
    starts_at = clock.now() + timedelta(days=days)
    return starts_at, starts_at + timedelta(hours=hours)


def event_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /events body (JSON-ready)."""
    starts_at, ends_at = event_times()
    body: dict[str, Any] = {
        "title": "Mock interviews with ACME engineers",
        "description": "Practice a technical interview and get feedback.",
        "event_type": EventType.MOCK_INTERVIEW.value,
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
        "timezone": "Europe/Berlin",
        "location": "ACME HQ, Berlin",
        "capacity": 20,
        "tags": ["interviews", "career"],
    }
    return {**body, **overrides}


async def create_event(
    session: AsyncSession,
    *,
    owner: User,
    status: EventStatus = EventStatus.PUBLISHED,
    **fields: Any,
) -> Event:
    """An event written straight to the database (no notices), PUBLISHED unless told."""
    starts_at, ends_at = event_times()
    values: dict[str, Any] = {
        "title": f"Workshop {uuid.uuid4().hex[:6]}",
        "event_type": EventType.WORKSHOP,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "location": "Room 101",
        "capacity": 10,
        "tags": [],
        **fields,
    }
    event = Event(created_by=owner.id, status=status, **values)
    if status is EventStatus.PUBLISHED:
        event.published_at = clock.now()
    session.add(event)
    await session.flush()
    return event


async def register(
    session: AsyncSession, event: Event, user: User, status: RegistrationStatus | None = None
) -> Registration:
    """A live registration written straight to the database, keeping the event's counters."""
    if status is None:
        full = event.capacity is not None and event.registered_count >= event.capacity
        status = RegistrationStatus.WAITLISTED if full else RegistrationStatus.CONFIRMED
    registration = Registration(event_id=event.id, user_id=user.id, status=status)
    if status is RegistrationStatus.CONFIRMED:
        registration.checkin_code = checkin.generate()
        registration.confirmed_at = clock.now()
        event.registered_count += 1
    elif status is RegistrationStatus.WAITLISTED:
        event.waitlist_count += 1
    elif status is RegistrationStatus.OFFERED:
        # An open offer, as the waitlist makes it: the seat held for offer_hours.
        registration.offer_expires_at = min(
            clock.now() + timedelta(hours=event.offer_hours), event.starts_at
        )
        event.registered_count += 1
        event.offered_count += 1
    session.add_all([event, registration])
    await session.flush()
    return registration


async def delete_mail_to(session: AsyncSession, prefix: str) -> None:
    """Delete the committed mail jobs (and their log rows) addressed to emails under `prefix`."""
    jobs = await session.execute(
        text(
            "DELETE FROM pgqueuer WHERE entrypoint = :entrypoint"
            " AND lower(convert_from(payload, 'UTF8')::jsonb ->> 'to') LIKE :pattern"
            " RETURNING id"
        ),
        {"entrypoint": SEND_EMAIL, "pattern": f"{prefix}%"},
    )
    job_ids = [job_id for (job_id,) in jobs]
    await session.execute(
        text("DELETE FROM pgqueuer_log WHERE job_id = ANY(:ids)"), {"ids": job_ids}
    )


@asynccontextmanager
async def committed_accounts(engine: AsyncEngine, name: str) -> AsyncIterator[str]:
    """A unique lower-case email prefix for accounts a test commits (a real server must see
    them); afterwards those accounts go, with their mail jobs and the audit entries they made."""
    prefix = f"{name}-{uuid.uuid4().hex[:10]}-"
    try:
        yield prefix
    finally:
        async with AsyncSession(engine) as session:
            await delete_mail_to(session, prefix)
            ids = select(col(User.id)).where(func.lower(User.email).like(f"{prefix}%"))
            await session.execute(delete(AuditLog).where(col(AuditLog.actor_id).in_(ids)))
            await session.execute(delete(User).where(func.lower(User.email).like(f"{prefix}%")))
            await session.commit()


def event_view(event: Event) -> dict[str, Any]:
    """What API.md says an event looks like, built from its row (datetimes as datetimes)."""
    return {
        "id": str(event.id),
        "title": event.title,
        "description": event.description,
        "event_type": str(event.event_type),
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "timezone": event.timezone,
        "location": event.location,
        "online_url": event.online_url,
        "capacity": event.capacity,
        "registration_deadline": event.registration_deadline,
        "requirements": event.requirements,
        "tags": event.tags,
        "waitlist_mode": str(event.waitlist_mode),
        "offer_hours": event.offer_hours,
        "status": str(event.status),
        "created_by": str(event.created_by) if event.created_by else None,
        "reviewed_by": str(event.reviewed_by) if event.reviewed_by else None,
        "review_feedback": event.review_feedback,
        "cancellation_reason": event.cancellation_reason,
        "series_id": str(event.series_id) if event.series_id else None,
        "registered_count": event.registered_count,
        "waitlist_count": event.waitlist_count,
        "offered_count": event.offered_count,
        "spots_left": None if event.capacity is None else event.capacity - event.registered_count,
        "created_at": event.created_at,
        "updated_at": event.updated_at,
        "published_at": event.published_at,
        "cancelled_at": event.cancelled_at,
    }


async def create_series(
    session: AsyncSession,
    *,
    owner: User,
    status: EventStatus = EventStatus.PUBLISHED,
    count: int = 2,
    **fields: Any,
) -> tuple[Series, list[Event]]:
    """A weekly series of `count` occurrences written straight to the database (no notices),
    PUBLISHED unless told; its occurrences soonest first."""
    series = Series(
        rrule=f"FREQ=WEEKLY;COUNT={count}",
        timezone=fields.get("timezone", "UTC"),
        status=status,
        created_by=owner.id,
    )
    if status is EventStatus.PUBLISHED:
        series.published_at = clock.now()
    session.add(series)
    await session.flush()
    starts_at, ends_at = event_times()
    occurrences = [
        await create_event(
            session,
            owner=owner,
            status=status,
            series_id=series.id,
            **{
                "starts_at": starts_at + timedelta(weeks=n),
                "ends_at": ends_at + timedelta(weeks=n),
                **fields,
            },
        )
        for n in range(count)
    ]
    return series, occurrences


async def reminded_at(session: AsyncSession, event: Event) -> datetime | None:
    """When the event's latest reminder round went out (any offset, any start time), if any."""
    latest: datetime | None = await session.scalar(
        select(func.max(EventReminder.sent_at)).where(col(EventReminder.event_id) == event.id)
    )
    return latest
