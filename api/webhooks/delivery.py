"""From outbox rows to webhook deliveries, and each attempt as its own queued job.

- A trigger on outbox_event queues a WEBHOOK_DISPATCH job (payload: the outbox id) in the
  writing transaction whenever an active webhook hears of the row's type.
- dispatch() makes one delivery per matching active webhook (the owner's role and activity read
  now); the unique (webhook_id, event_id) pair makes that exactly once, however many workers
  run it; and queues a WEBHOOK_ATTEMPT job per new delivery.
- attempt() sends once and records it; a failure queues the next attempt after the retry
  schedule (+0-10 % jitter), or ends the delivery FAILED. Jobs of different deliveries run
  concurrently (up to ATTEMPT_CONCURRENCY across workers), so one slow receiver holds up
  nobody else.
"""

import random
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.audit import service as audit_service
from api.audit.models import AuditAction
from api.config import settings
from api.db import get_sessionmaker
from api.events.models import Event
from api.mail.service import queries_for
from api.notifications import service as notification_service
from api.notifications.models import NotificationKind
from api.outbox.models import DomainEventType, OutboxEvent, OutboxEventPublic
from api.users.models import User, UserRole
from api.webhooks import sender
from api.webhooks.models import (
    DeliveryAttempt,
    DeliveryStatus,
    DisabledReason,
    Webhook,
    WebhookDelivery,
)
from api.webhooks.service import TARGET_TYPE, described, manager_may_hear

WEBHOOK_DISPATCH = "webhook_dispatch"
WEBHOOK_ATTEMPT = "webhook_attempt"
CLEANUP_DELIVERIES = "cleanup_webhook_deliveries"
# Attempts in flight at once, across all workers.
ATTEMPT_CONCURRENCY = 20
JITTER = 0.1


async def enqueue_attempts(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID], delay: timedelta | None = None
) -> None:
    """Queue one attempt job per delivery, in the caller's transaction."""
    if not delivery_ids:
        return
    queries = await queries_for(session)
    count = len(delivery_ids)
    await queries.enqueue(
        [WEBHOOK_ATTEMPT] * count,
        [str(delivery_id).encode() for delivery_id in delivery_ids],
        [0] * count,
        [delay] * count,
    )


async def _event_creator(session: AsyncSession, event: OutboxEvent) -> str | None:
    """The creator of the event a domain event is about (a manager hears of those only)."""
    if event.type.startswith("event."):
        creator = event.data.get("created_by")
        return str(creator) if creator else None
    event_id = event.data.get("event_id")
    if not event_id:
        return None
    found = await session.scalar(select(col(Event.created_by)).where(col(Event.id) == event_id))
    return str(found) if found else None


async def dispatch_event(session: AsyncSession, outbox_id: int) -> list[uuid.UUID]:
    """Make the deliveries of one outbox row and queue their first attempts; the ids of the
    deliveries made now (none when another run made them already)."""
    event = await session.get(OutboxEvent, outbox_id)
    if event is None or event.type == DomainEventType.WEBHOOK_TEST:
        return []
    rows = await session.execute(
        select(col(Webhook.id), col(Webhook.owner_id), col(User.role))
        .join(User, col(User.id) == col(Webhook.owner_id))
        .where(
            col(Webhook.is_active),
            col(Webhook.event_types).contains([str(event.type)]),
            col(User.is_active),
            col(User.role).in_([UserRole.MANAGER, UserRole.ADMIN]),
        )
        .order_by(col(Webhook.id))
    )
    targets: list[uuid.UUID] = []
    creator: str | None = None
    creator_known = False
    for webhook_id, owner_id, role in rows:
        if role is UserRole.ADMIN:
            targets.append(webhook_id)
            continue
        if not manager_may_hear(event.type):
            continue
        if not creator_known:
            creator, creator_known = await _event_creator(session, event), True
        if creator == str(owner_id):
            targets.append(webhook_id)
    if not targets:
        return []
    payload = OutboxEventPublic.model_validate(event).model_dump(mode="json")
    now = clock.now()
    statement = (
        pg_insert(WebhookDelivery)
        .values(
            [
                {
                    "id": uuid.uuid4(),
                    "webhook_id": webhook_id,
                    "event_id": outbox_id,
                    "event_type": str(event.type),
                    "status": DeliveryStatus.PENDING.value,
                    "payload": payload,
                    "created_at": now,
                    "next_attempt_at": now,
                    "attempts": [],
                    "counted": True,
                }
                for webhook_id in targets
            ]
        )
        .on_conflict_do_nothing(constraint="uq_webhook_delivery_webhook_event")
        .returning(col(WebhookDelivery.id))
    )
    made = list((await session.scalars(statement)).all())
    await enqueue_attempts(session, made)
    return made


async def dispatch(outbox_id: int) -> None:
    async with get_sessionmaker()() as session, session.begin():
        await dispatch_event(session, outbox_id)


def _next_delay(tried: int) -> timedelta | None:
    """The wait before the next attempt after `tried` attempts; None: that was the last."""
    delays = settings.webhook_retry_delays
    if tried > len(delays):
        return None
    return timedelta(seconds=delays[tried - 1] * (1 + random.uniform(0, JITTER)))  # noqa: S311


async def disable(session: AsyncSession, webhook_id: uuid.UUID, reason: DisabledReason) -> None:
    """Turn a webhook off for `reason`: its pending deliveries fail, its owner hears of it."""
    webhook = await session.scalar(
        select(Webhook).where(col(Webhook.id) == webhook_id).with_for_update()
    )
    if webhook is None or not webhook.is_active:
        return
    before = described(webhook)
    now = clock.now()
    webhook.is_active = False
    webhook.disabled_at = now
    webhook.disabled_reason = reason
    webhook.updated_at = now
    session.add(webhook)
    await session.execute(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.webhook_id) == webhook_id,
            col(WebhookDelivery.status) == DeliveryStatus.PENDING,
            col(WebhookDelivery.counted),
        )
        .values(status=DeliveryStatus.FAILED, next_attempt_at=None)
    )
    await session.flush()
    await audit_service.record(
        session,
        actor_id=None,
        action=AuditAction.WEBHOOK_DISABLED,
        target_type=TARGET_TYPE,
        target_id=webhook.id,
        before=before,
        after={**described(webhook), "disabled_reason": reason.value},
        reason=reason.value,
    )
    owner = await session.get(User, webhook.owner_id)
    if owner is not None:
        await notification_service.notify(
            session,
            owner,
            NotificationKind.WEBHOOK_DISABLED,
            webhook_id=webhook.id,
            url=webhook.url,
            reason=reason.value,
        )


async def _load(delivery_id: uuid.UUID) -> sender.Outgoing | None:
    """What to send for a pending delivery; None when there is nothing to do."""
    async with get_sessionmaker()() as session, session.begin():
        row = (
            await session.execute(
                select(WebhookDelivery, Webhook)
                .join(Webhook, col(Webhook.id) == col(WebhookDelivery.webhook_id))
                .where(col(WebhookDelivery.id) == delivery_id)
            )
        ).first()
        if row is None:
            return None
        found, webhook = row
        if found.status != DeliveryStatus.PENDING:
            return None
        secrets = [webhook.secret]
        expires = webhook.previous_secret_expires_at
        if webhook.previous_secret and expires is not None and expires > clock.now():
            secrets.append(webhook.previous_secret)
        return sender.Outgoing(
            url=webhook.url,
            delivery_id=str(found.id),
            payload=found.payload,
            secrets=tuple(secrets),
        )


async def record_attempt(
    session: AsyncSession, delivery_id: uuid.UUID, attempt: DeliveryAttempt
) -> None:
    """Keep one attempt's outcome and decide what follows it."""
    found = await session.scalar(
        select(WebhookDelivery).where(col(WebhookDelivery.id) == delivery_id).with_for_update()
    )
    if found is None:
        return
    attempts: list[dict[str, Any]] = [*found.attempts, attempt.model_dump(mode="json")]
    found.attempts = attempts
    session.add(found)
    if found.status != DeliveryStatus.PENDING:  # the webhook was disabled meanwhile
        await session.flush()
        return
    succeeded = attempt.status_code is not None and 200 <= attempt.status_code < 300
    found.next_attempt_at = None
    if succeeded:
        found.status = DeliveryStatus.SUCCEEDED
        await session.flush()
        if found.counted:
            await session.execute(
                update(Webhook)
                .where(col(Webhook.id) == found.webhook_id, col(Webhook.failure_count) != 0)
                .values(failure_count=0)
            )
        return
    if not found.counted:
        found.status = DeliveryStatus.FAILED
        await session.flush()
        return
    if attempt.status_code == 410:
        found.status = DeliveryStatus.FAILED
        await session.flush()
        await disable(session, found.webhook_id, DisabledReason.GONE)
        return
    delay = _next_delay(len(attempts))
    if delay is not None:
        found.next_attempt_at = clock.now() + delay
        await session.flush()
        await enqueue_attempts(session, [found.id], delay)
        return
    found.status = DeliveryStatus.FAILED
    await session.flush()
    failures = await session.scalar(
        update(Webhook)
        .where(col(Webhook.id) == found.webhook_id)
        .values(failure_count=col(Webhook.failure_count) + 1)
        .returning(col(Webhook.failure_count))
    )
    if failures is not None and failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES:
        await disable(session, found.webhook_id, DisabledReason.CONSECUTIVE_FAILURES)


async def attempt(delivery_id: uuid.UUID) -> None:
    """One attempt of a delivery (a job): no transaction is held while the receiver answers."""
    outgoing = await _load(delivery_id)
    if outgoing is None:
        return
    outcome = await sender.send(outgoing)
    async with get_sessionmaker()() as session, session.begin():
        await record_attempt(session, delivery_id, outcome)


async def delete_old_deliveries(session: AsyncSession) -> None:
    """Deliveries are kept WEBHOOK_DELIVERY_RETENTION_DAYS (their payloads name people)."""
    cutoff = clock.now() - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    await session.execute(delete(WebhookDelivery).where(col(WebhookDelivery.created_at) < cutoff))
