"""Gathering a user's personal data for the export (read only).

The export is a list of sections, each filled by one query over one table: a new kind of
personal record is one more Section (tests/exports walks the metadata so that none is missed).
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from api import clock
from api.audit.models import AuditLog, AuditLogPublic
from api.events.models import Event, EventPublic
from api.exports.models import ExportedPreference, PersonalDataExport
from api.networking import connections as connection_service
from api.networking import service as directory_service
from api.networking.models import ConnectionPublic, ExportedDirectoryMembership
from api.notifications import service as notification_service
from api.notifications.models import Notification, NotificationPublic
from api.registrations import queries as registration_queries
from api.registrations.models import OwnRegistration
from api.series import queries as series_queries
from api.series.models import SeriesPublic
from api.tokens import service as token_service
from api.tokens.models import ApiTokenPublic
from api.users.models import User, UserRead
from api.webhooks.models import Webhook, WebhookPublic

Loader = Callable[[AsyncSession, User], Awaitable[Sequence[SQLModel]]]


@dataclass(frozen=True)
class Section:
    name: str  # its key in the export
    source: str | None  # the table its records come from; None while nothing is stored
    load: Loader


async def _registrations(session: AsyncSession, user: User) -> list[OwnRegistration]:
    rows = await session.execute(registration_queries.user_registrations_query(user.id))
    return [OwnRegistration.of(*row) for row in rows]


async def _events_created(session: AsyncSession, user: User) -> list[EventPublic]:
    events = await session.scalars(
        select(Event)
        .where(col(Event.created_by) == user.id)
        .order_by(col(Event.created_at), col(Event.id))
    )
    return [EventPublic.model_validate(event) for event in events]


async def _series_created(session: AsyncSession, user: User) -> list[SeriesPublic]:
    return await series_queries.public_series_of(session, created_by=user.id)


async def _notifications(session: AsyncSession, user: User) -> list[NotificationPublic]:
    notifications = await session.scalars(
        select(Notification)
        .where(col(Notification.user_id) == user.id)
        .order_by(col(Notification.created_at).desc(), col(Notification.id))
    )
    return [NotificationPublic.model_validate(notification) for notification in notifications]


async def _preferences(session: AsyncSession, user: User) -> list[ExportedPreference]:
    chosen = await notification_service.get_preferences(session, user=user)
    return [
        ExportedPreference.model_validate(settings, update={"kind": kind})
        for kind, settings in chosen.items()
    ]


async def _audit_entries(session: AsyncSession, user: User) -> list[AuditLogPublic]:
    entries = await session.scalars(
        select(AuditLog)
        .where(or_(col(AuditLog.actor_id) == user.id, col(AuditLog.target_id) == user.id))
        .order_by(col(AuditLog.at), col(AuditLog.id))
    )
    return [AuditLogPublic.model_validate(entry) for entry in entries]


async def _api_tokens(session: AsyncSession, user: User) -> list[ApiTokenPublic]:
    tokens = await token_service.list_all_tokens(session, user_id=user.id)
    return [ApiTokenPublic.model_validate(token) for token in tokens]


async def _webhooks(session: AsyncSession, user: User) -> list[WebhookPublic]:
    """The user's webhooks as the API shows them (never a secret), newest first."""
    webhooks = await session.scalars(
        select(Webhook)
        .where(col(Webhook.owner_id) == user.id)
        .order_by(col(Webhook.created_at).desc(), col(Webhook.id).desc())
    )
    return [WebhookPublic.model_validate(webhook) for webhook in webhooks]


async def _connections(session: AsyncSession, user: User) -> Sequence[ConnectionPublic]:
    return await connection_service.all_connections(session, user_id=user.id)


async def _directory_memberships(
    session: AsyncSession, user: User
) -> Sequence[ExportedDirectoryMembership]:
    return await directory_service.user_memberships(session, user_id=user.id)


SECTIONS: tuple[Section, ...] = (
    Section("registrations", "registration", _registrations),
    Section("events_created", "event", _events_created),
    Section("series_created", "series", _series_created),
    Section("notifications", "notification", _notifications),
    Section("notification_preferences", "notification_preference", _preferences),
    Section("audit_entries", "audit_log", _audit_entries),
    Section("api_tokens", "api_token", _api_tokens),
    Section("webhooks", "webhook", _webhooks),
    Section("connections", "connection", _connections),
    Section("directory_memberships", "directory_member", _directory_memberships),
)


async def export_user_data(session: AsyncSession, *, user: User) -> PersonalDataExport:
    """Every personal record of `user`, one query per section; no secret of any kind."""
    sections = {section.name: await section.load(session, user) for section in SECTIONS}
    return PersonalDataExport.model_validate(
        {"exported_at": clock.now(), "user": UserRead.model_validate(user), **sections}
    )
