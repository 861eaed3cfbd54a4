"""Every table model, for Alembic's autogenerate and the tests."""

from api.audit.models import AuditLog
from api.events.models import Event, Registration
from api.notifications.models import Notification, NotificationPreference
from api.tokens.models import ApiToken
from api.users.models import AccessToken, User

__all__ = [
    "AccessToken",
    "ApiToken",
    "AuditLog",
    "Event",
    "Notification",
    "NotificationPreference",
    "Registration",
    "User",
]
