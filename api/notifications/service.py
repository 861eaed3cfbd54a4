"""The one place where notices to users are raised.

Today every notice is an email through the durable mail queue; in-app storage and per-user
preferences plug in here without touching the callers.
"""

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.mail.service import enqueue_mails, render
from api.notifications.models import NotificationKind
from api.users.models import User

TEMPLATES = {
    NotificationKind.ROLE_CHANGED: "role_changed",
    NotificationKind.PRO_STATUS_CHANGED: "professional_status_changed",
    NotificationKind.ACCOUNT_LOCKED: "account_locked",
    NotificationKind.EVENT_SUBMITTED: "event_submitted",
    NotificationKind.EVENT_APPROVED: "event_approved",
    NotificationKind.EVENT_REJECTED: "event_rejected",
    NotificationKind.EVENT_UPDATED: "event_updated",
    NotificationKind.EVENT_CANCELLED: "event_cancelled",
    NotificationKind.REGISTRATION_CONFIRMED: "registration_confirmed",
    NotificationKind.WAITLIST_PROMOTED: "waitlist_promoted",
}


async def notify_all(
    session: AsyncSession, users: Iterable[User], kind: NotificationKind, **context: Any
) -> None:
    """Raise one notice for each of `users`, in the caller's transaction."""
    template = TEMPLATES[kind]
    await enqueue_mails(
        session,
        [render(template, user.email, name=user.display_name, **context) for user in users],
    )


async def notify(session: AsyncSession, user: User, kind: NotificationKind, **context: Any) -> None:
    await notify_all(session, [user], kind, **context)
