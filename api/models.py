"""Every table model, for Alembic's autogenerate and the tests."""

from api.audit.models import AuditLog
from api.events.models import Event
from api.feeds.models import CalendarFeed
from api.idempotency.models import IdempotencyKey
from api.networking.models import Connection, DirectoryMember
from api.notifications.models import Notification, NotificationPreference
from api.outbox.models import OutboxEvent
from api.registrations.models import Registration
from api.reminders.models import EventReminder
from api.series.models import Series
from api.testing.models import ClockSetting
from api.tokens.models import ApiToken
from api.users.models import AccessToken, User
from api.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "AccessToken",
    "ApiToken",
    "AuditLog",
    "CalendarFeed",
    "ClockSetting",
    "Connection",
    "DirectoryMember",
    "Event",
    "EventReminder",
    "IdempotencyKey",
    "Notification",
    "NotificationPreference",
    "OutboxEvent",
    "Registration",
    "Series",
    "User",
    "Webhook",
    "WebhookDelivery",
]
