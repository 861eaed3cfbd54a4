"""The one place where notices to users are raised.

Today every notice is an email through the durable mail queue; in-app storage and per-user
preferences plug in here without touching the callers.
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.mail.service import enqueue_email
from api.notifications.models import NotificationKind
from api.users.models import User

TEMPLATES = {
    NotificationKind.ROLE_CHANGED: "role_changed",
    NotificationKind.PRO_STATUS_CHANGED: "professional_status_changed",
    NotificationKind.ACCOUNT_LOCKED: "account_locked",
}


async def notify(session: AsyncSession, user: User, kind: NotificationKind, **context: Any) -> None:
    await enqueue_email(session, TEMPLATES[kind], to=user.email, name=user.display_name, **context)
