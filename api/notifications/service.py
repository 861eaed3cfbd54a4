"""The one place where changes are made known: notices to users (stored in-app and emailed, as
each user chose) and domain events for integrations (outbox rows, API-integrations.md).

All of it happens in the caller's transaction: a change, its notices and its outbox rows commit
together or not at all. A change that integrations hear of calls announce(), which writes its
outbox row and, when the change also tells people, raises the notices in the same call.
Verification and password-reset mails are not notices: they go out through api.mail directly,
whatever the preferences.
"""

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from jinja2 import Environment, StrictUndefined
from pydantic import BaseModel
from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.db import shown_columns
from api.errors import NotFound
from api.mail.service import (
    SUBJECTS,
    Attachment,
    OutgoingMail,
    enqueue_mails,
    local_time,
    render,
    subject,
)
from api.notifications.models import (
    ChannelSettings,
    ChannelUpdate,
    Notification,
    NotificationKind,
    NotificationPreference,
    NotificationPublic,
)
from api.outbox import service as outbox_service
from api.outbox.models import DomainEventType
from api.pagination import PageParams, Total, bounded_count, paginate_rows
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
    NotificationKind.EVENT_REMINDER: "event_reminder",
    NotificationKind.REGISTRATION_CONFIRMED: "registration_confirmed",
    NotificationKind.WAITLIST_PROMOTED: "waitlist_promoted",
    NotificationKind.WAITLIST_OFFER: "waitlist_offer",
    NotificationKind.WAITLIST_OFFER_EXPIRED: "waitlist_offer_expired",
    NotificationKind.CONNECTION_REQUESTED: "connection_requested",
    NotificationKind.CONNECTION_ACCEPTED: "connection_accepted",
    NotificationKind.WEBHOOK_DISABLED: "webhook_disabled",
}

# The in-app text; the title is the mail's subject.
_text = Environment(undefined=StrictUndefined, autoescape=False)
_text.filters["local_time"] = local_time
BODIES = {
    kind: _text.from_string(source)
    for kind, source in {
        NotificationKind.EVENT_SUBMITTED: (
            '"{{ event.title }}" ({{ event.when }}) awaits approval.'
        ),
        NotificationKind.EVENT_APPROVED: '"{{ event.title }}" is approved and published.',
        NotificationKind.EVENT_REJECTED: (
            '"{{ event.title }}" was not approved. Feedback: {{ feedback }}'
        ),
        NotificationKind.EVENT_UPDATED: (
            '"{{ event.title }}" is now {{ event.when }}, at {{ event.where }}.'
        ),
        NotificationKind.EVENT_CANCELLED: (
            '"{{ event.title }}" ({{ event.when }}) is cancelled.'
            "{% if reason %} Reason: {{ reason }}{% endif %}"
        ),
        NotificationKind.EVENT_REMINDER: (
            '"{{ event.title }}" starts {{ event.when }}, at {{ event.where }}.'
        ),
        NotificationKind.REGISTRATION_CONFIRMED: (
            "{% if waitlist_position %}You are number {{ waitlist_position }} on the waitlist of "
            '"{{ event.title }}".{% else %}Your seat at "{{ event.title }}" is confirmed.'
            "{% endif %}"
        ),
        NotificationKind.WAITLIST_PROMOTED: (
            'A seat freed up: your place at "{{ event.title }}" ({{ event.when }}) is confirmed.'
        ),
        NotificationKind.WAITLIST_OFFER: (
            'A seat at "{{ event.title }}" ({{ event.when }}) is offered to you until '
            "{{ offer_expires_at | local_time(event.timezone) }}: accept or decline it by then."
        ),
        NotificationKind.WAITLIST_OFFER_EXPIRED: (
            'Your seat offer for "{{ event.title }}" ({{ event.when }}) expired. While '
            "registration is open, you may register again, at the end of the line."
        ),
        # `other` names the other party (a mapping: not part of the notice's data).
        NotificationKind.CONNECTION_REQUESTED: (
            '{{ other.name }} (@{{ other.nickname }}) met you at "{{ event.title }}" and would '
            "like to connect. Accept to share your emails."
        ),
        NotificationKind.CONNECTION_ACCEPTED: (
            "{{ other.name }} (@{{ other.nickname }}) accepted your connection request from "
            '"{{ event.title }}": you now see each other\'s emails.'
        ),
        NotificationKind.PRO_STATUS_CHANGED: (
            "Your professional status is now: "
            '{{ "professional" if is_professional else "not professional" }}.'
            "{% if reason %} Reason: {{ reason }}{% endif %}"
        ),
        NotificationKind.ROLE_CHANGED: (
            "Your role changed from {{ old_role }} to {{ new_role }}."
            "{% if reason %} Reason: {{ reason }}{% endif %}"
        ),
        NotificationKind.ACCOUNT_LOCKED: (
            "Your account was locked after {{ attempts }} failed sign-in attempts"
            "{% if until %} until {{ until }} UTC{% endif %}."
        ),
        NotificationKind.WEBHOOK_DISABLED: (
            "Your webhook to {{ url }} was disabled: {{ 'the receiver answered 410 Gone' if "
            "reason == 'GONE' else 'its deliveries failed too many times in a row' }}. "
            "Fix the receiver, then set is_active to true."
        ),
    }.items()
}


class NotificationNotFound(NotFound):
    """No notification of the caller has this id."""

    code = "NOTIFICATION_NOT_FOUND"


def _data(context: dict[str, Any]) -> dict[str, Any]:
    """What the notice links to (`event_id`) and its plain details, as JSON values; no nulls.
    A notice about a whole series describes it as its `event` without an `id`, and names it by
    its `series_id` detail."""
    data: dict[str, Any] = {}
    for key, value in context.items():
        if key == "event":
            if "id" in value:
                data["event_id"] = value["id"]
        elif isinstance(value, datetime):
            data[key] = value.isoformat()
        elif isinstance(value, uuid.UUID):
            data[key] = str(value)
        elif isinstance(value, str | int | float | bool):  # None: nothing to say
            data[key] = value
    return data


async def channels_for(
    session: AsyncSession, user_ids: Sequence[uuid.UUID], kind: NotificationKind
) -> dict[uuid.UUID, ChannelSettings]:
    """Each user's channels for `kind` (both on unless they said otherwise)."""
    rows = await session.scalars(
        select(NotificationPreference).where(
            col(NotificationPreference.user_id).in_(user_ids),
            col(NotificationPreference.kind) == kind,
        )
    )
    chosen = {row.user_id: ChannelSettings(email=row.email, in_app=row.in_app) for row in rows}
    return {user_id: chosen.get(user_id, ChannelSettings()) for user_id in user_ids}


async def notify_all(
    session: AsyncSession,
    users: Iterable[User],
    kind: NotificationKind,
    *,
    channels: Mapping[uuid.UUID, ChannelSettings] | None = None,
    mail_context: Mapping[uuid.UUID, Mapping[str, Any]] | None = None,
    attachments: Sequence[Attachment] = (),
    **context: Any,
) -> None:
    """Raise one notice of `kind` for each of `users`, in the caller's transaction.

    `channels`: what channels_for() answered, when the caller asked it before taking a lock
    (one round trip fewer while the lock is held). `mail_context`: more context for each user's
    mail alone, by user id (a personal link's token is mailed, never stored in-app).
    `attachments`: files sent with every mail.
    """
    recipients = list(users)
    if not recipients:
        return
    if channels is None:
        channels = await channels_for(session, [user.id for user in recipients], kind)
    template = TEMPLATES[kind]
    title = subject(template, context)
    body = BODIES[kind].render(context)
    data = _data(context)
    session.add_all(
        Notification(user_id=user.id, kind=kind, title=title, body=body, data=data)
        for user in recipients
        if channels[user.id].in_app
    )
    await enqueue_mails(
        session,
        [
            render(
                template,
                user.email,
                attachments=attachments,
                name=user.display_name,
                **context,
                **(mail_context or {}).get(user.id, {}),
            )
            for user in recipients
            if channels[user.id].email
        ],
    )


async def notify_each(
    session: AsyncSession,
    kind: NotificationKind,
    notices: Sequence[tuple[User, Mapping[str, Any]]],
) -> None:
    """Raise one notice of `kind` per (user, context): each with its own details (as the
    registration it is about), in one statement for the inbox and one for the mail."""
    if not notices:
        return
    channels = await channels_for(session, [user.id for user, _ in notices], kind)
    template = TEMPLATES[kind]
    inbox: list[Notification] = []
    mails: list[OutgoingMail] = []
    for user, context in notices:
        if channels[user.id].in_app:
            title = SUBJECTS[template].format(title=context.get("event", {}).get("title", ""))
            body = BODIES[kind].render(context)
            inbox.append(
                Notification(
                    user_id=user.id, kind=kind, title=title, body=body, data=_data(dict(context))
                )
            )
        if channels[user.id].email:
            mails.append(render(template, user.email, name=user.display_name, **context))
    session.add_all(inbox)
    await enqueue_mails(session, mails)


async def notify(
    session: AsyncSession,
    user: User,
    kind: NotificationKind,
    *,
    channels: Mapping[uuid.UUID, ChannelSettings] | None = None,
    **context: Any,
) -> None:
    await notify_all(session, [user], kind, channels=channels, **context)


# What a domain event's `data` is: a public model (dumped as JSON) or a ready JSON object.
Payload = BaseModel | dict[str, Any]


async def announce(
    session: AsyncSession,
    event_type: DomainEventType,
    data: Payload | Sequence[Payload],
    *,
    notify: Iterable[User] = (),
    kind: NotificationKind | None = None,
    channels: Mapping[uuid.UUID, ChannelSettings] | None = None,
    **context: Any,
) -> None:
    """Make one domain change known, in the caller's transaction: one outbox row of
    `event_type` per item of `data` (one payload, or a list of them for a change to many
    resources, inserted together in one statement), and, with `kind`, the notice of that kind
    to each of `notify` (as notify_all()).

    Call it after the change is flushed (the resource's row lock taken), with `data` as the
    resource's public model shows it after the change: of two changes to one resource, the
    later one then gets the larger outbox id. Nothing is published unless the caller commits.
    """
    payloads = list(data) if isinstance(data, Sequence) else [data]
    for payload in payloads:
        await outbox_service.record(session, event_type, payload)
    if kind is not None:
        await notify_all(session, notify, kind, channels=channels, **context)


# --- the inbox --------------------------------------------------------------------------------


# The inbox only shows notices: Core rows of exactly the columns shown, no ORM instances.
PUBLIC_COLUMNS = shown_columns(Notification, NotificationPublic)


async def list_notifications(
    session: AsyncSession, *, user: User, params: PageParams, unread: bool | None
) -> tuple[Sequence[Row[Any]], Total, int]:
    """A page of the user's notices (rows of NotificationPublic's columns), newest first, its
    total, and the unread count."""
    statement = select(*PUBLIC_COLUMNS).where(col(Notification.user_id) == user.id)
    if unread is not None:
        statement = statement.where(col(Notification.read_at).is_(None) == unread)
    ordered = statement.order_by(col(Notification.created_at).desc(), col(Notification.id).desc())
    unread_count = (
        select(func.count())
        .where(col(Notification.user_id) == user.id, col(Notification.read_at).is_(None))
        .scalar_subquery()
    )
    count, unread_total = await bounded_count(session, ordered, unread_count)
    items, total = await paginate_rows(session, ordered, params, count=count)
    return items, total, unread_total


async def mark_read(
    session: AsyncSession, *, user: User, notification_id: uuid.UUID
) -> Notification:
    notification = await session.get(Notification, notification_id)
    if notification is None or notification.user_id != user.id:
        raise NotificationNotFound()
    if notification.read_at is None:
        notification.read_at = clock.now()
        session.add(notification)
        await session.flush()
    return notification


async def mark_all_read(session: AsyncSession, *, user: User) -> None:
    await session.execute(
        update(Notification)
        .where(col(Notification.user_id) == user.id, col(Notification.read_at).is_(None))
        .values(read_at=clock.now())
    )


# --- preferences ------------------------------------------------------------------------------


async def get_preferences(
    session: AsyncSession, *, user: User
) -> dict[NotificationKind, ChannelSettings]:
    """Every kind, with the user's choice or the default (both channels on)."""
    rows = await session.scalars(
        select(NotificationPreference).where(col(NotificationPreference.user_id) == user.id)
    )
    chosen = {row.kind: ChannelSettings(email=row.email, in_app=row.in_app) for row in rows}
    return {kind: chosen.get(kind, ChannelSettings()) for kind in NotificationKind}


async def update_preferences(
    session: AsyncSession, *, user: User, changes: dict[NotificationKind, ChannelUpdate]
) -> dict[NotificationKind, ChannelSettings]:
    current = await get_preferences(session, user=user)
    for kind, change in changes.items():
        current[kind] = current[kind].model_copy(update=change.model_dump(exclude_none=True))
    if changes:
        statement = pg_insert(NotificationPreference).values(
            [{"user_id": user.id, "kind": kind, **current[kind].model_dump()} for kind in changes]
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["user_id", "kind"],
                set_={"email": statement.excluded.email, "in_app": statement.excluded.in_app},
            )
        )
    return current
