"""The personal data export: one document of every record the service keeps about a user.

Built from the public models the API already shows (no second schema layer): the user as its
owner sees it, registrations as GET /users/me/registrations shows them, events, notifications,
audit entries and connections as their routes do.
"""

from datetime import datetime
from typing import Literal

from sqlmodel import Field, SQLModel

from api.audit.models import AuditLogPublic
from api.events.models import EventPublic
from api.examples import examples
from api.exports import examples as export_examples
from api.networking.models import ConnectionPublic, ExportedDirectoryMembership
from api.notifications.models import ChannelSettings, NotificationKind, NotificationPublic
from api.registrations.models import OwnRegistration
from api.series.models import SeriesPublic
from api.tokens.models import ApiTokenPublic
from api.users.models import UserRead
from api.webhooks.models import WebhookPublic

FORMAT_VERSION: Literal[1] = 1


class ExportedPreference(ChannelSettings):
    """The user's setting for one kind of notification (the default where never changed)."""

    model_config = examples(export_examples.PREFERENCE)

    kind: NotificationKind


class PersonalDataExport(SQLModel):
    model_config = examples(export_examples.EXPORT)

    format_version: Literal[1] = FORMAT_VERSION
    exported_at: datetime
    user: UserRead
    registrations: list[OwnRegistration] = Field(
        description="every registration, cancelled ones too, newest first, with its event"
    )
    events_created: list[EventPublic]
    series_created: list[SeriesPublic] = Field(description="the user's recurring series")
    notifications: list[NotificationPublic]
    notification_preferences: list[ExportedPreference]
    audit_entries: list[AuditLogPublic] = Field(
        description="entries where the user is the actor or the target, oldest first"
    )
    api_tokens: list[ApiTokenPublic] = Field(
        description="the user's API tokens, newest first (never the token itself)"
    )
    webhooks: list[WebhookPublic] = Field(
        description="the user's webhooks, newest first (never a signing secret)"
    )
    connections: list[ConnectionPublic] = Field(
        description="the user's connections, accepted and pending, made and received, newest "
        "first; the other party's email once accepted"
    )
    directory_memberships: list[ExportedDirectoryMembership] = Field(
        description="the event directories the user is in, newest first"
    )
