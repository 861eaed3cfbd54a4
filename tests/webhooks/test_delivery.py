"""Deliveries end to end (WH-1): committed outbox rows, real pgqueuer workers, a real receiver on
127.0.0.1, signatures checked with the Standard Webhooks reference verifier."""

import asyncio
import json
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col
from standardwebhooks import Webhook as Verifier

from api import clock
from api.audit.models import AuditAction, AuditLog
from api.config import settings
from api.notifications.models import Notification, NotificationKind
from api.outbox.models import DomainEventType, OutboxEvent, OutboxEventPublic
from api.webhooks import service as webhook_service
from api.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from tests.support import Mailbox, free_port
from tests.webhooks.conftest import Committed, WorkerStarter
from tests.webhooks.receiver import Received, Receiver, Reply, wait_for


async def deliveries_of(committed: Committed, webhook: Webhook) -> list[WebhookDelivery]:
    await committed.session.commit()  # a fresh snapshot
    found = await committed.session.scalars(
        select(WebhookDelivery)
        .where(col(WebhookDelivery.webhook_id) == webhook.id)
        .order_by(col(WebhookDelivery.event_id))
        .execution_options(populate_existing=True)
    )
    return list(found.all())


async def settled(committed: Committed, webhook: Webhook, count: int = 1) -> list[WebhookDelivery]:
    """The webhook's deliveries once `count` of them are no longer PENDING."""
    deadline = time.monotonic() + 20
    while True:
        found = await deliveries_of(committed, webhook)
        if sum(d.status != DeliveryStatus.PENDING for d in found) >= count:
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)


async def reloaded(committed: Committed, webhook: Webhook) -> Webhook:
    await committed.session.commit()
    await committed.session.refresh(webhook)
    return webhook


def verified(request: Received, secret: str) -> object:
    return Verifier(secret).verify(request.body, request.headers)


@pytest.mark.security("WH-1")
@pytest.mark.usefixtures("worker")
async def test_a_domain_event_arrives_signed_within_five_seconds(
    committed: Committed, receiver: Receiver
) -> None:
    owner = await committed.owner()
    webhook = await committed.webhook(owner, receiver.url("/hook"))
    started = time.monotonic()

    event_id = await committed.publish(DomainEventType.USER_CREATED, id="u-1", role="ADMIN")

    await wait_for(lambda: receiver.to("/hook"), 5)
    [request] = receiver.to("/hook")
    assert request.at - started < 5
    event = await committed.session.get(OutboxEvent, event_id)
    assert event is not None
    assert verified(request, webhook.secret) == {
        "id": event_id,
        "type": "user.created",
        "occurred_at": OutboxEventPublic.model_validate(event).model_dump(mode="json")[
            "occurred_at"
        ],
        "data": {"id": "u-1", "role": "ADMIN"},
    }
    assert b", " not in request.body
    assert b": " not in request.body
    assert request.headers["content-type"] == "application/json"
    [delivery] = await settled(committed, webhook)
    assert request.headers["webhook-id"] == str(delivery.id)
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 10
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.event_type == "user.created"
    assert [(a["status_code"], a["error"], a["response_body"]) for a in delivery.attempts] == [
        (200, None, "ok")
    ]


@pytest.mark.security("WH-1")
@pytest.mark.usefixtures("worker")
async def test_a_retry_keeps_its_webhook_id(
    committed: Committed, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_SCHEDULE", "0.3,0.3")
    receiver.script["/flaky"] = [Reply(500, body=b"busy"), Reply(200)]
    owner = await committed.owner()
    webhook = await committed.webhook(owner, receiver.url("/flaky"), failure_count=1)

    await committed.publish()

    [delivery] = await settled(committed, webhook)
    first, second = receiver.to("/flaky")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(delivery.id)
    assert verified(first, webhook.secret) == verified(second, webhook.secret)
    assert second.at - first.at >= 0.3
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert [(a["status_code"], a["response_body"]) for a in delivery.attempts] == [
        (500, "busy"),
        (200, "ok"),
    ]
    # A success resets the count of consecutive failures.
    assert (await reloaded(committed, webhook)).failure_count == 0


@pytest.mark.security("WH-1")
@pytest.mark.usefixtures("worker")
async def test_during_rotation_both_secrets_verify_new_first(
    committed: Committed, receiver: Receiver
) -> None:
    owner = await committed.owner()
    webhook = await committed.webhook(owner, receiver.url("/rotated"))
    old = webhook.secret
    new = await webhook_service.rotate_secret(committed.session, actor=owner, webhook=webhook)
    await committed.session.commit()

    await committed.publish()

    await wait_for(lambda: receiver.to("/rotated"))
    [request] = receiver.to("/rotated")
    assert verified(request, new) == verified(request, old)
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert Verifier(new).verify(
        request.body, {**request.headers, "webhook-signature": signatures[0]}
    )
    # Once the overlap is over, only the new secret signs.
    webhook = await reloaded(committed, webhook)
    webhook.previous_secret_expires_at = clock.now() - timedelta(seconds=1)
    committed.session.add(webhook)
    await committed.session.commit()
    await committed.publish()
    await wait_for(lambda: len(receiver.to("/rotated")) == 2)
    later = receiver.to("/rotated")[1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    assert verified(later, new)


@pytest.mark.security("WH-1")
@pytest.mark.usefixtures("worker")
async def test_a_410_disables_the_webhook_and_tells_its_owner(
    committed: Committed, receiver: Receiver, mailbox: Mailbox
) -> None:
    receiver.script["/gone"] = [Reply(410, body=b"gone")]
    owner = await committed.owner()
    webhook = await committed.webhook(owner, receiver.url("/gone"))

    await committed.publish()

    [delivery] = await settled(committed, webhook)
    assert delivery.status == DeliveryStatus.FAILED
    assert len(delivery.attempts) == 1
    webhook = await reloaded(committed, webhook)
    assert (webhook.is_active, webhook.disabled_reason) == (False, "GONE")
    assert webhook.disabled_at is not None
    notices = await committed.session.scalars(
        select(Notification).where(col(Notification.user_id) == owner.id)
    )
    [notice] = notices.all()
    assert notice.kind == NotificationKind.WEBHOOK_DISABLED
    assert notice.data == {"webhook_id": str(webhook.id), "url": webhook.url, "reason": "GONE"}
    assert notice.title == "Your webhook was disabled"
    entries = await committed.session.scalars(
        select(AuditLog).where(col(AuditLog.target_id) == webhook.id)
    )
    [entry] = entries.all()
    assert (entry.action, entry.actor_id, entry.target_type, entry.reason) == (
        AuditAction.WEBHOOK_DISABLED,
        None,
        "webhook",
        "GONE",
    )
    assert webhook.secret not in json.dumps([entry.before, entry.after])
    await wait_for(lambda: mailbox.to(owner.email))
    assert mailbox.to(owner.email)[0]["Subject"] == "Your webhook was disabled"
    # A disabled webhook hears of nothing more.
    await committed.publish()
    await asyncio.sleep(1)
    assert len(receiver.to("/gone")) == 1


@pytest.mark.security("WH-1")
@pytest.mark.usefixtures("worker", "mailbox")
async def test_consecutive_failed_deliveries_disable_it(
    committed: Committed, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_SCHEDULE", "")
    monkeypatch.setattr(settings, "WEBHOOK_DISABLE_AFTER_FAILURES", 2)
    owner = await committed.owner()
    webhook = await committed.webhook(owner, receiver.url("/down"))
    receiver.script["/down"] = [Reply(500)]

    await committed.publish()
    await settled(committed, webhook, 1)
    assert (await reloaded(committed, webhook)).failure_count == 1
    receiver.script["/down"] = [Reply(204)]
    await committed.publish()
    await settled(committed, webhook, 2)
    assert (await reloaded(committed, webhook)).failure_count == 0
    receiver.script["/down"] = [Reply(503)]
    await committed.publish()
    await settled(committed, webhook, 3)
    await committed.publish()
    found = await settled(committed, webhook, 4)

    assert [d.status for d in found] == ["FAILED", "SUCCEEDED", "FAILED", "FAILED"]
    webhook = await reloaded(committed, webhook)
    assert (webhook.is_active, webhook.failure_count, webhook.disabled_reason) == (
        False,
        2,
        "CONSECUTIVE_FAILURES",
    )


@pytest.mark.security("SSRF-1")
@pytest.mark.usefixtures("worker")
async def test_a_redirect_is_not_followed(
    committed: Committed, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_SCHEDULE", "")
    receiver.script["/moved"] = [Reply(302, headers=(("location", receiver.url("/target")),))]
    owner = await committed.owner()
    webhook = await committed.webhook(owner, receiver.url("/moved"))

    await committed.publish()

    [delivery] = await settled(committed, webhook)
    assert delivery.status == DeliveryStatus.FAILED
    assert [a["status_code"] for a in delivery.attempts] == [302]
    await asyncio.sleep(0.5)
    assert receiver.to("/target") == []


@pytest.mark.security("WH-1")
async def test_two_workers_deliver_each_delivery_once(
    committed: Committed, receiver: Receiver, start_worker: WorkerStarter
) -> None:
    owner = await committed.owner()
    hooks = [await committed.webhook(owner, receiver.url(f"/w{i}")) for i in range(2)]
    await start_worker()
    await start_worker()

    for _ in range(15):
        await committed.publish()

    await wait_for(lambda: len(receiver.requests) >= 30, 30)
    await asyncio.sleep(1.5)  # anything sent twice would arrive by now
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert len(ids) == len(set(ids)) == 30
    for hook in hooks:
        found = await settled(committed, hook, 15)
        assert len(found) == 15
        assert {d.status for d in found} == {DeliveryStatus.SUCCEEDED}
        assert [len(d.attempts) for d in found] == [1] * 15
        assert {str(d.id) for d in found} <= set(ids)


SLOW_RECEIVER_BOUND_SECONDS = 2.0


@pytest.mark.usefixtures("worker")
async def test_a_slow_receiver_does_not_hold_up_another(
    committed: Committed, receiver: Receiver
) -> None:
    """Another webhook's delivery arrives within SLOW_RECEIVER_BOUND_SECONDS while a receiver
    takes 6 s to answer."""
    receiver.script["/slow"] = [Reply(200, delay=6)]
    owner = await committed.owner()
    slow = await committed.webhook(owner, receiver.url("/slow"))
    await committed.webhook(owner, receiver.url("/fast"))
    await committed.publish()
    await wait_for(lambda: receiver.to("/slow"), 5)
    started = time.monotonic()

    await committed.publish()

    await wait_for(lambda: len(receiver.to("/fast")) == 2, 5)
    assert receiver.to("/fast")[1].at - started < SLOW_RECEIVER_BOUND_SECONDS
    # The slow one is still answering its first delivery.
    assert [d.status for d in await deliveries_of(committed, slow)][0] == "PENDING"


@pytest.mark.security("WH-1")
@pytest.mark.usefixtures("worker")
async def test_the_test_ping_and_a_replay_keep_one_webhook_id(
    committed: Committed, receiver: Receiver
) -> None:
    owner = await committed.owner()
    # Inactive: a test is sent whatever is_active says, and never counted.
    webhook = await committed.webhook(owner, receiver.url("/ping"), is_active=False)
    receiver.script["/ping"] = [Reply(500), Reply(200)]

    ping = await webhook_service.send_test(committed.session, webhook=webhook)
    await committed.session.commit()
    committed.events.append(ping.event_id)

    [done] = await settled(committed, webhook)
    assert done.status == DeliveryStatus.FAILED
    assert len(done.attempts) == 1
    [request] = receiver.to("/ping")
    assert verified(request, webhook.secret) == {
        **json.loads(request.body),
        "type": "webhook.test",
        "data": {"webhook_id": str(webhook.id)},
    }
    assert (await reloaded(committed, webhook)).failure_count == 0

    await webhook_service.replay(committed.session, found=done)
    await committed.session.commit()
    await wait_for(lambda: len(receiver.to("/ping")) == 2)
    [replayed] = await settled(committed, webhook)
    assert replayed.status == DeliveryStatus.SUCCEEDED
    first, second = receiver.to("/ping")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(done.id)
    assert verified(second, webhook.secret)


@pytest.mark.usefixtures("worker")
async def test_a_managers_webhook_hears_only_of_their_own_events(
    committed: Committed, receiver: Receiver
) -> None:
    manager = await committed.owner(
        role=__import__("api.users.models").users.models.UserRole.MANAGER
    )
    webhook = await committed.webhook(
        manager, receiver.url("/mine"), event_types=[DomainEventType.EVENT_PUBLISHED]
    )
    other = uuid.uuid4()

    await committed.publish(DomainEventType.EVENT_PUBLISHED, id="e-2", created_by=str(other))
    mine = await committed.publish(
        DomainEventType.EVENT_PUBLISHED, id="e-1", created_by=str(manager.id)
    )

    await wait_for(lambda: receiver.to("/mine"))
    await asyncio.sleep(0.5)
    [request] = receiver.to("/mine")
    assert json.loads(request.body)["id"] == mine
    assert [d.event_id for d in await deliveries_of(committed, webhook)] == [mine]


@pytest.mark.usefixtures("worker")
async def test_timeouts_and_refused_connections_are_failed_attempts(
    committed: Committed, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_SCHEDULE", "")
    monkeypatch.setattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 0.5)
    receiver.script["/late"] = [Reply(200, delay=2)]
    owner = await committed.owner()
    late = await committed.webhook(owner, receiver.url("/late"))
    closed = await committed.webhook(owner, f"http://127.0.0.1:{free_port()}/none")

    await committed.publish()

    [timed_out] = await settled(committed, late)
    [refused] = await settled(committed, closed)
    assert [(a["error"], a["status_code"]) for a in timed_out.attempts] == [("TIMEOUT", None)]
    assert timed_out.attempts[0]["duration_ms"] < 1500
    assert [(a["error"], a["status_code"]) for a in refused.attempts] == [
        ("CONNECTION_ERROR", None)
    ]
