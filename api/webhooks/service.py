"""Webhooks and their delivery log: the rules of the /webhooks routes, in the caller's
transaction. Sending lives in api.webhooks.delivery."""

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.audit import service as audit_service
from api.audit.models import AuditAction
from api.errors import Conflict, NotFound, invalid_body
from api.outbox import service as outbox_service
from api.outbox.models import DomainEventType, OutboxEventPublic
from api.pagination import PageParams, Total, paginate
from api.users.models import User, UserRole
from api.webhooks import ssrf
from api.webhooks.models import (
    MANAGER_PREFIXES,
    DeliveryStatus,
    Webhook,
    WebhookCreate,
    WebhookDelivery,
    WebhookTestData,
    WebhookUpdate,
    new_secret,
)

MAX_WEBHOOKS_PER_OWNER = 20
TARGET_TYPE = "webhook"
# How long the secret before a rotation still co-signs.
ROTATION_OVERLAP = timedelta(hours=24)
NEWEST_FIRST = (col(Webhook.created_at).desc(), col(Webhook.id).desc())
DELIVERIES_NEWEST_FIRST = (col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc())
_USER = sa.table("user", sa.column("id"))


class WebhookNotFound(NotFound):
    """No webhook the caller may manage has this id (another manager's too)."""

    code = "WEBHOOK_NOT_FOUND"


class DeliveryNotFound(NotFound):
    """The webhook has no delivery with this id."""

    code = "DELIVERY_NOT_FOUND"


class WebhookLimitReached(Conflict):
    """The owner holds the most webhooks allowed (20): delete one first."""

    code = "WEBHOOK_LIMIT_REACHED"
    example_reason = f"An owner holds at most {MAX_WEBHOOKS_PER_OWNER} webhooks: delete one first"


class DeliveryPending(Conflict):
    """The delivery is still being tried: replay it once it has succeeded or failed."""

    code = "DELIVERY_PENDING"
    example_reason = "The delivery is still being tried"


def described(webhook: Webhook) -> dict[str, Any]:
    """What an audit entry keeps of a webhook: never a secret."""
    return {
        "owner_id": webhook.owner_id,
        "url": webhook.url,
        "description": webhook.description,
        "event_types": [str(t) for t in webhook.event_types],
        "is_active": webhook.is_active,
    }


def manager_may_hear(event_type: str) -> bool:
    return event_type.startswith(MANAGER_PREFIXES)


def _check_event_types(owner_role: UserRole, event_types: Sequence[str]) -> None:
    """A MANAGER's webhook hears of events and registrations only: 422 on event_types."""
    if owner_role is UserRole.ADMIN:
        return
    refused = [t for t in event_types if not manager_may_hear(t)]
    if refused:
        raise invalid_body(
            [
                {
                    "type": "value_error",
                    "loc": ("event_types",),
                    "msg": "A manager's webhook may only hear of event.* and registration.* "
                    f"types, not {', '.join(str(t) for t in refused)}",
                    "input": [str(t) for t in event_types],
                }
            ]
        )


async def create_webhook(
    session: AsyncSession, *, owner: User, webhook_in: WebhookCreate
) -> tuple[Webhook, str]:
    """A new webhook of `owner`, and its secret (shown only in this answer)."""
    _check_event_types(owner.role, webhook_in.event_types)
    await ssrf.check_url(webhook_in.url)
    # The owner's row, locked: two creations take turns, so the limit holds under concurrency.
    await session.execute(
        select(_USER.c.id).where(_USER.c.id == owner.id).with_for_update(key_share=True)
    )
    held = await session.scalar(
        select(func.count()).select_from(Webhook).where(col(Webhook.owner_id) == owner.id)
    )
    if (held or 0) >= MAX_WEBHOOKS_PER_OWNER:
        raise WebhookLimitReached(
            reason=f"An owner holds at most {MAX_WEBHOOKS_PER_OWNER} webhooks: delete one first"
        )
    secret = new_secret()
    webhook = Webhook(
        owner_id=owner.id,
        url=webhook_in.url,
        description=webhook_in.description,
        event_types=list(webhook_in.event_types),
        is_active=webhook_in.is_active,
        secret=secret,
    )
    session.add(webhook)
    await session.flush()
    await audit_service.record(
        session,
        actor_id=owner.id,
        action=AuditAction.WEBHOOK_CREATED,
        target_type=TARGET_TYPE,
        target_id=webhook.id,
        after=described(webhook),
    )
    return webhook, secret


async def list_webhooks(
    session: AsyncSession,
    *,
    viewer: User,
    params: PageParams,
    is_active: bool | None,
    owner_id: uuid.UUID | None,
) -> tuple[Sequence[Webhook], Total]:
    """A page of webhooks, newest first: a manager's own, or (an admin) everyone's."""
    statement = select(Webhook).order_by(*NEWEST_FIRST)
    if viewer.role is not UserRole.ADMIN:
        statement = statement.where(col(Webhook.owner_id) == viewer.id)
    if owner_id is not None:
        statement = statement.where(col(Webhook.owner_id) == owner_id)
    if is_active is not None:
        statement = statement.where(col(Webhook.is_active) == is_active)
    return await paginate(session, statement, params)


async def get_webhook(session: AsyncSession, *, viewer: User, webhook_id: uuid.UUID) -> Webhook:
    """The webhook, if the viewer owns it or is an admin; otherwise not found."""
    webhook = await session.get(Webhook, webhook_id)
    if webhook is None or (viewer.role is not UserRole.ADMIN and webhook.owner_id != viewer.id):
        raise WebhookNotFound()
    return webhook


async def _lock(session: AsyncSession, webhook: Webhook) -> None:
    await session.execute(
        select(col(Webhook.id)).where(col(Webhook.id) == webhook.id).with_for_update()
    )
    await session.refresh(webhook)


async def _owner_role(session: AsyncSession, webhook: Webhook) -> UserRole:
    role = await session.scalar(select(col(User.role)).where(col(User.id) == webhook.owner_id))
    return role or UserRole.AUTHENTICATED


async def update_webhook(
    session: AsyncSession, *, actor: User, webhook: Webhook, webhook_in: WebhookUpdate
) -> Webhook:
    changes = webhook_in.model_dump(exclude_unset=True)
    for key in ("url", "event_types", "is_active"):
        if key in changes and changes[key] is None:
            raise invalid_body(
                [{"type": "missing", "loc": (key,), "msg": "may not be null", "input": None}]
            )
    if "event_types" in changes:
        _check_event_types(await _owner_role(session, webhook), changes["event_types"])
    if "url" in changes:
        await ssrf.check_url(changes["url"])
    await _lock(session, webhook)
    before = described(webhook)
    for key, value in changes.items():
        setattr(webhook, key, value)
    if changes.get("is_active") is True:
        webhook.failure_count = 0
        webhook.disabled_at = None
        webhook.disabled_reason = None
    webhook.updated_at = clock.now()
    session.add(webhook)
    await session.flush()
    await audit_service.record(
        session,
        actor_id=actor.id,
        action=AuditAction.WEBHOOK_UPDATED,
        target_type=TARGET_TYPE,
        target_id=webhook.id,
        before=before,
        after=described(webhook),
    )
    return webhook


async def delete_webhook(session: AsyncSession, *, actor: User, webhook: Webhook) -> None:
    """Delete a webhook; its deliveries go with it (and their jobs find nothing to send)."""
    await audit_service.record(
        session,
        actor_id=actor.id,
        action=AuditAction.WEBHOOK_DELETED,
        target_type=TARGET_TYPE,
        target_id=webhook.id,
        before=described(webhook),
    )
    await session.delete(webhook)
    await session.flush()


async def rotate_secret(session: AsyncSession, *, actor: User, webhook: Webhook) -> str:
    """A new secret; the one it replaces co-signs for ROTATION_OVERLAP."""
    await _lock(session, webhook)
    secret = new_secret()
    now = clock.now()
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_expires_at = now + ROTATION_OVERLAP
    webhook.secret = secret
    webhook.updated_at = now
    session.add(webhook)
    await session.flush()
    await audit_service.record(
        session,
        actor_id=actor.id,
        action=AuditAction.WEBHOOK_SECRET_ROTATED,
        target_type=TARGET_TYPE,
        target_id=webhook.id,
        after={"previous_secret_expires_at": webhook.previous_secret_expires_at},
    )
    return secret


async def send_test(session: AsyncSession, *, webhook: Webhook) -> WebhookDelivery:
    """A `webhook.test` outbox row and its one delivery to this webhook, tried once now."""
    from api.webhooks import delivery  # the sender imports this module

    event = await outbox_service.record(
        session, DomainEventType.WEBHOOK_TEST, WebhookTestData(webhook_id=webhook.id)
    )
    await session.flush()
    payload = OutboxEventPublic.model_validate(event).model_dump(mode="json")
    found = WebhookDelivery(
        webhook_id=webhook.id,
        event_id=payload["id"],
        event_type=DomainEventType.WEBHOOK_TEST,
        payload=payload,
        next_attempt_at=clock.now(),
        counted=False,
    )
    session.add(found)
    await session.flush()
    await delivery.enqueue_attempts(session, [found.id])
    return found


async def list_deliveries(
    session: AsyncSession,
    *,
    webhook: Webhook,
    params: PageParams,
    status: DeliveryStatus | None,
    event_type: DomainEventType | None,
) -> tuple[Sequence[WebhookDelivery], Total]:
    statement = (
        select(WebhookDelivery)
        .where(col(WebhookDelivery.webhook_id) == webhook.id)
        .order_by(*DELIVERIES_NEWEST_FIRST)
    )
    if status is not None:
        statement = statement.where(col(WebhookDelivery.status) == status)
    if event_type is not None:
        statement = statement.where(col(WebhookDelivery.event_type) == event_type)
    return await paginate(session, statement, params)


async def get_delivery(
    session: AsyncSession, *, webhook: Webhook, delivery_id: uuid.UUID
) -> WebhookDelivery:
    found = await session.get(WebhookDelivery, delivery_id)
    if found is None or found.webhook_id != webhook.id:
        raise DeliveryNotFound()
    return found


async def replay(session: AsyncSession, *, found: WebhookDelivery) -> WebhookDelivery:
    """Send a finished delivery again, once, with its own webhook-id; 409 while it is pending."""
    from api.webhooks import delivery

    await session.execute(
        select(col(WebhookDelivery.id)).where(col(WebhookDelivery.id) == found.id).with_for_update()
    )
    await session.refresh(found)
    if found.status == DeliveryStatus.PENDING:
        raise DeliveryPending(reason="The delivery is still being tried")
    found.status = DeliveryStatus.PENDING
    found.next_attempt_at = clock.now()
    found.counted = False
    session.add(found)
    await session.flush()
    await delivery.enqueue_attempts(session, [found.id])
    return found
