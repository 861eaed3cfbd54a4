"""The /webhooks routes: creation (secret shown once), roles and scoping, the limit, filters,
validation, 404s, rotation, the test ping and replays."""

import base64
import uuid
from collections.abc import Sequence

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.audit.models import AuditAction, AuditLog
from api.config import settings
from api.idempotency.middleware import honours_idempotency_key
from api.outbox.models import DomainEventType, OutboxEvent
from api.users.models import User, UserRole
from api.webhooks.models import DeliveryStatus, DisabledReason, Webhook, WebhookDelivery
from api.webhooks.service import MAX_WEBHOOKS_PER_OWNER
from tests.factories import create_user
from tests.leaks import ANONYMOUS, LeakScanner
from tests.webhooks.helpers import BASE, add_webhook, body


async def audit_entries(session: AsyncSession, webhook_id: uuid.UUID) -> Sequence[AuditLog]:
    found = await session.scalars(
        select(AuditLog).where(col(AuditLog.target_id) == webhook_id).order_by(col(AuditLog.at))
    )
    return found.all()


async def attempt_jobs(session: AsyncSession, delivery_id: object) -> int:
    return int(
        await session.scalar(
            text(
                "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'webhook_attempt'"
                " AND convert_from(payload, 'UTF8') = :id"
            ),
            {"id": str(delivery_id)},
        )
        or 0
    )


class TestCreate:
    async def test_a_manager_creates_one_and_sees_its_secret_once(
        self, client, session, manager, auth_as
    ):
        headers = await auth_as(manager)

        response = await client.post(BASE, json=body(), headers=headers)

        assert response.status_code == 201, response.text
        created = response.json()
        secret = created.pop("secret")
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
        assert created == {
            "id": created["id"],
            "owner_id": str(manager.id),
            "url": "http://127.0.0.1:9/hook",
            "description": "Our CRM",
            "event_types": ["event.published", "registration.confirmed"],
            "is_active": True,
            "failure_count": 0,
            "disabled_at": None,
            "disabled_reason": None,
            "created_at": created["created_at"],
            "updated_at": created["updated_at"],
        }
        shown = await client.get(f"{BASE}/{created['id']}", headers=headers)
        assert shown.status_code == 200
        assert shown.json() == created
        listed = await client.get(BASE, headers=headers)
        assert listed.json()["items"] == [created]
        [entry] = await audit_entries(session, uuid.UUID(created["id"]))
        assert (entry.action, entry.actor_id, entry.target_type) == (
            AuditAction.WEBHOOK_CREATED,
            manager.id,
            "webhook",
        )
        assert entry.after == {
            "owner_id": str(manager.id),
            "url": "http://127.0.0.1:9/hook",
            "description": "Our CRM",
            "event_types": ["event.published", "registration.confirmed"],
            "is_active": True,
        }

    async def test_a_manager_may_not_hear_of_users(self, client, manager, auth_as):
        response = await client.post(
            BASE,
            json=body(event_types=["event.created", "user.created"]),
            headers=await auth_as(manager),
        )

        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "event_types"]
        assert "user.created" in error["msg"]

    async def test_an_admin_may_hear_of_anything(self, client, admin, auth_as):
        response = await client.post(
            BASE,
            json=body(event_types=["user.created", "user.deleted"]),
            headers=await auth_as(admin),
        )

        assert response.status_code == 201
        assert response.json()["event_types"] == ["user.created", "user.deleted"]

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("url", "ftp://127.0.0.1/hook"),
            ("url", "not a url"),
            ("url", "http://user:pw@127.0.0.1/hook"),
            ("url", "http://127.0.0.1/" + "a" * 2048),
            ("description", "x" * 501),
            ("event_types", []),
            ("event_types", ["webhook.test"]),
            ("event_types", ["event.created", "event.created"]),
            ("event_types", ["event.exploded"]),
        ],
    )
    async def test_invalid_bodies_are_422(self, client, admin, auth_as, field, value):
        response = await client.post(
            BASE, json=body(**{field: value}), headers=await auth_as(admin)
        )

        assert response.status_code == 422
        assert [error["loc"][:2] for error in response.json()["detail"]] == [["body", field]]

    async def test_the_limit_is_twenty_per_owner(self, client, session, manager, admin, auth_as):
        for _ in range(MAX_WEBHOOKS_PER_OWNER):
            await add_webhook(session, manager.id)

        refused = await client.post(BASE, json=body(), headers=await auth_as(manager))
        another = await client.post(BASE, json=body(), headers=await auth_as(admin))

        assert refused.status_code == 409
        assert refused.json() == {
            "detail": {
                "code": "WEBHOOK_LIMIT_REACHED",
                "reason": "An owner holds at most 20 webhooks: delete one first",
            }
        }
        assert another.status_code == 201
        held = await session.scalar(
            select(func.count()).select_from(Webhook).where(col(Webhook.owner_id) == manager.id)
        )
        assert held == MAX_WEBHOOKS_PER_OWNER

    async def test_users_may_not(self, client, user, auth_as):
        response = await client.post(BASE, json=body(), headers=await auth_as(user))

        assert response.status_code == 403


class TestListAndRead:
    async def test_a_manager_lists_their_own_newest_first(self, client, session, manager, auth_as):
        other = await create_user(session, role=UserRole.MANAGER)
        first = await add_webhook(session, manager.id, created_at=clock.now().replace(year=2025))
        second = await add_webhook(session, manager.id)
        await add_webhook(session, other.id)

        response = await client.get(BASE, headers=await auth_as(manager))

        assert response.status_code == 200
        page = response.json()
        assert [item["id"] for item in page["items"]] == [str(second.id), str(first.id)]
        assert page["total"] == 2
        # Naming another owner shows nothing of theirs.
        theirs = await client.get(
            BASE, params={"owner_id": str(other.id)}, headers=await auth_as(manager)
        )
        assert theirs.json()["items"] == []

    async def test_an_admin_lists_all_with_filters(self, client, session, admin, auth_as):
        owner = await create_user(session, role=UserRole.MANAGER)
        active = await add_webhook(session, owner.id)
        inactive = await add_webhook(session, owner.id, is_active=False)
        headers = await auth_as(admin)

        by_owner = await client.get(BASE, params={"owner_id": str(owner.id)}, headers=headers)
        off = await client.get(
            BASE, params={"owner_id": str(owner.id), "is_active": "false"}, headers=headers
        )
        on = await client.get(
            BASE, params={"owner_id": str(owner.id), "is_active": "true"}, headers=headers
        )

        assert {item["id"] for item in by_owner.json()["items"]} == {
            str(active.id),
            str(inactive.id),
        }
        assert [item["id"] for item in off.json()["items"]] == [str(inactive.id)]
        assert [item["id"] for item in on.json()["items"]] == [str(active.id)]

    @pytest.mark.parametrize(
        ("method", "suffix"),
        [
            ("GET", ""),
            ("PATCH", ""),
            ("DELETE", ""),
            ("POST", "/rotate-secret"),
            ("POST", "/test"),
            ("GET", "/deliveries"),
        ],
    )
    async def test_another_managers_webhook_is_not_found(
        self, client, session, manager, auth_as, method, suffix
    ):
        other = await create_user(session, role=UserRole.MANAGER)
        theirs = await add_webhook(session, other.id)

        response = await client.request(
            method,
            f"{BASE}/{theirs.id}{suffix}",
            json={"description": "mine now"} if method == "PATCH" else None,
            headers=await auth_as(manager),
        )

        assert response.status_code == 404
        assert response.json() == {"detail": "WEBHOOK_NOT_FOUND"}


class TestChange:
    async def test_patch_changes_fields_and_audits(self, client, session, manager, auth_as):
        webhook = await add_webhook(session, manager.id)

        response = await client.patch(
            f"{BASE}/{webhook.id}",
            json={"description": "New", "event_types": ["event.cancelled"]},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert (response.json()["description"], response.json()["event_types"]) == (
            "New",
            ["event.cancelled"],
        )
        [entry] = await audit_entries(session, webhook.id)
        assert entry.action == AuditAction.WEBHOOK_UPDATED
        assert entry.before is not None
        assert entry.after is not None
        assert (entry.before["event_types"], entry.after["event_types"]) == (
            ["event.published"],
            ["event.cancelled"],
        )
        assert "whsec_" not in str(entry.before) + str(entry.after)

    async def test_reactivating_clears_the_failures(self, client, session, manager, auth_as):
        webhook = await add_webhook(
            session,
            manager.id,
            is_active=False,
            failure_count=5,
            disabled_at=clock.now(),
            disabled_reason=DisabledReason.CONSECUTIVE_FAILURES,
        )

        response = await client.patch(
            f"{BASE}/{webhook.id}", json={"is_active": True}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        shown = response.json()
        assert (
            shown["is_active"],
            shown["failure_count"],
            shown["disabled_at"],
            shown["disabled_reason"],
        ) == (True, 0, None, None)

    async def test_a_manager_may_not_widen_to_users(self, client, session, manager, auth_as):
        webhook = await add_webhook(session, manager.id)

        response = await client.patch(
            f"{BASE}/{webhook.id}",
            json={"event_types": ["user.updated"]},
            headers=await auth_as(manager),
        )

        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "event_types"]

    @pytest.mark.parametrize("field", ["url", "event_types", "is_active"])
    async def test_null_is_refused(self, client, session, manager, auth_as, field):
        webhook = await add_webhook(session, manager.id)

        response = await client.patch(
            f"{BASE}/{webhook.id}", json={field: None}, headers=await auth_as(manager)
        )

        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", field]

    async def test_delete_removes_it_and_its_deliveries(self, client, session, admin, auth_as):
        owner = await create_user(session, role=UserRole.MANAGER)
        webhook = await add_webhook(session, owner.id)
        session.add(
            WebhookDelivery(
                webhook_id=webhook.id,
                event_id=1,
                event_type=DomainEventType.EVENT_PUBLISHED,
                payload={},
            )
        )
        await session.flush()
        headers = await auth_as(admin)

        response = await client.delete(f"{BASE}/{webhook.id}", headers=headers)

        assert response.status_code == 204
        assert (await client.get(f"{BASE}/{webhook.id}", headers=headers)).status_code == 404
        left = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(col(WebhookDelivery.webhook_id) == webhook.id)
        )
        assert left == 0
        [entry] = await audit_entries(session, webhook.id)
        assert (entry.action, entry.actor_id) == (AuditAction.WEBHOOK_DELETED, admin.id)

    async def test_rotation_shows_a_new_secret_and_keeps_the_old_for_a_day(
        self, client, session, manager, auth_as
    ):
        webhook = await add_webhook(session, manager.id)
        old = webhook.secret

        response = await client.post(
            f"{BASE}/{webhook.id}/rotate-secret", headers=await auth_as(manager)
        )

        assert response.status_code == 200
        new = response.json()["secret"]
        assert new.startswith("whsec_")
        assert new != old
        await session.refresh(webhook)
        assert (webhook.secret, webhook.previous_secret) == (new, old)
        assert webhook.previous_secret_expires_at is not None
        overlap = webhook.previous_secret_expires_at - clock.now()
        assert 23.9 * 3600 < overlap.total_seconds() <= 24 * 3600
        [entry] = await audit_entries(session, webhook.id)
        assert entry.action == AuditAction.WEBHOOK_SECRET_ROTATED
        assert old not in str(entry.after)
        assert new not in str(entry.after)


class TestDeliveries:
    async def test_the_test_ping_is_a_delivery_from_the_outbox(
        self, client, session, manager, auth_as
    ):
        webhook = await add_webhook(session, manager.id, is_active=False)

        response = await client.post(f"{BASE}/{webhook.id}/test", headers=await auth_as(manager))

        assert response.status_code == 202
        delivery = response.json()
        event = await session.get(OutboxEvent, delivery["event_id"])
        assert event is not None
        assert (event.type, event.data) == ("webhook.test", {"webhook_id": str(webhook.id)})
        assert delivery == {
            "id": delivery["id"],
            "webhook_id": str(webhook.id),
            "event_id": event.id,
            "event_type": "webhook.test",
            "status": "PENDING",
            "payload": {
                "id": event.id,
                "type": "webhook.test",
                "occurred_at": delivery["payload"]["occurred_at"],
                "data": {"webhook_id": str(webhook.id)},
            },
            "created_at": delivery["created_at"],
            "next_attempt_at": delivery["next_attempt_at"],
            "attempts": [],
        }
        assert await attempt_jobs(session, delivery["id"]) == 1

    async def test_list_filters_and_read_one(self, client, session, manager, auth_as):
        webhook = await add_webhook(session, manager.id)
        other = await add_webhook(session, manager.id)
        made = []
        for event_id, (kind, status) in enumerate(
            [
                (DomainEventType.EVENT_PUBLISHED, DeliveryStatus.SUCCEEDED),
                (DomainEventType.EVENT_CANCELLED, DeliveryStatus.FAILED),
                (DomainEventType.EVENT_PUBLISHED, DeliveryStatus.FAILED),
            ],
            start=1,
        ):
            delivery = WebhookDelivery(
                webhook_id=webhook.id,
                event_id=event_id,
                event_type=kind,
                status=status,
                payload={"id": event_id},
                created_at=clock.now().replace(microsecond=event_id),
            )
            session.add(delivery)
            made.append(delivery)
        theirs = WebhookDelivery(
            webhook_id=other.id, event_id=1, event_type=DomainEventType.EVENT_PUBLISHED, payload={}
        )
        session.add(theirs)
        await session.flush()
        headers = await auth_as(manager)
        path = f"{BASE}/{webhook.id}/deliveries"

        everything = await client.get(path, headers=headers)
        failed = await client.get(path, params={"status": "FAILED"}, headers=headers)
        both = await client.get(
            path, params={"status": "FAILED", "event_type": "event.published"}, headers=headers
        )
        one = await client.get(f"{path}/{made[0].id}", headers=headers)
        not_here = await client.get(f"{path}/{theirs.id}", headers=headers)

        assert [d["event_id"] for d in everything.json()["items"]] == [3, 2, 1]
        assert [d["event_id"] for d in failed.json()["items"]] == [3, 2]
        assert [d["event_id"] for d in both.json()["items"]] == [3]
        assert one.status_code == 200
        assert (one.json()["id"], one.json()["status"]) == (str(made[0].id), "SUCCEEDED")
        assert not_here.status_code == 404
        assert not_here.json() == {"detail": "DELIVERY_NOT_FOUND"}

    async def test_replay_sends_a_finished_delivery_once_more(
        self, client, session, manager, auth_as
    ):
        webhook = await add_webhook(session, manager.id)
        delivery = WebhookDelivery(
            webhook_id=webhook.id,
            event_id=7,
            event_type=DomainEventType.EVENT_PUBLISHED,
            status=DeliveryStatus.FAILED,
            payload={"id": 7},
        )
        session.add(delivery)
        await session.flush()
        path = f"{BASE}/{webhook.id}/deliveries/{delivery.id}/replay"
        headers = await auth_as(manager)

        replayed = await client.post(path, headers=headers)
        again = await client.post(path, headers=headers)

        assert replayed.status_code == 202
        assert (replayed.json()["id"], replayed.json()["status"]) == (str(delivery.id), "PENDING")
        assert again.status_code == 409
        assert again.json() == {
            "detail": {"code": "DELIVERY_PENDING", "reason": "The delivery is still being tried"}
        }
        assert await attempt_jobs(session, delivery.id) == 1


@pytest.mark.security("SSRF-1")
async def test_patch_to_a_private_address_is_refused(
    client, session, manager, auth_as, monkeypatch
):
    webhook = await add_webhook(session, manager.id)
    monkeypatch.setattr(settings, "WEBHOOK_ALLOW_PRIVATE_TARGETS", False)

    response = await client.patch(
        f"{BASE}/{webhook.id}",
        json={"url": "https://10.0.0.8/hook"},
        headers=await auth_as(manager),
    )

    assert response.status_code == 422
    assert response.json() == {
        "detail": {
            "code": "WEBHOOK_URL_NOT_ALLOWED",
            "reason": "The host 10.0.0.8 resolves to 10.0.0.8, a private address",
        }
    }


@pytest.mark.security("PRIV-1")
class TestSecretsStayHidden:
    async def test_the_secret_shows_only_in_its_201_and_rotation(
        self, client, session, manager, auth_as
    ):
        headers = await auth_as(manager)
        created = (await client.post(BASE, json=body(), headers=headers)).json()
        secret = created["secret"]
        path = f"{BASE}/{created['id']}"
        ping = await client.post(f"{path}/test", headers=headers)
        rotated = (await client.post(f"{path}/rotate-secret", headers=headers)).json()["secret"]

        answers = [
            await client.get(BASE, headers=headers),
            await client.get(path, headers=headers),
            await client.patch(path, json={"description": "x"}, headers=headers),
            await client.get(f"{path}/deliveries", headers=headers),
            await client.get(f"{path}/deliveries/{ping.json()['id']}", headers=headers),
            await client.get("/api/v1/users/me/export", headers=headers),
            await client.get("/api/v1/audit-log", headers=await auth_as(await _admin(session))),
        ]

        assert [r.status_code for r in answers] == [200] * len(answers)
        assert [r.request.url.path for r in answers if "whsec_" in r.text] == []
        assert secret not in ping.text
        assert rotated != secret

    def test_the_scan_fails_a_secret_outside_its_answers(self):
        secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
        scanner = LeakScanner()

        def answer(method: str, path: str, status: int) -> httpx.Response:
            request = httpx.Request(method, f"http://testserver{path}")
            return httpx.Response(status, json={"secret": secret}, request=request)

        scanner.check(answer("POST", BASE, 201), ANONYMOUS, None)
        scanner.check(answer("POST", f"{BASE}/{uuid.uuid4()}/rotate-secret", 200), ANONYMOUS, None)
        for leaking in (answer("GET", BASE, 200), answer("GET", f"{BASE}/{uuid.uuid4()}", 200)):
            with pytest.raises(AssertionError, match="webhook secret"):
                scanner.check(leaking, ANONYMOUS, None)


async def _admin(session: AsyncSession) -> User:
    return await create_user(session, role=UserRole.ADMIN)


async def test_deleting_the_account_removes_its_webhooks_and_deliveries(
    client, session, manager, auth_as
):
    webhook = await add_webhook(session, manager.id)
    session.add(
        WebhookDelivery(
            webhook_id=webhook.id,
            event_id=3,
            event_type=DomainEventType.EVENT_PUBLISHED,
            payload={},
        )
    )
    await session.flush()
    webhook_id = webhook.id

    response = await client.delete("/api/v1/users/me", headers=await auth_as(manager))

    assert response.status_code == 204
    session.expunge_all()
    assert await session.get(Webhook, webhook_id) is None
    left = await session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(col(WebhookDelivery.webhook_id) == webhook_id)
    )
    assert left == 0


def test_the_openapi_document_describes_each_domain_event(app):
    document = app.openapi()
    schemas = document["components"]["schemas"]

    assert set(document["webhooks"]) == {t.value for t in DomainEventType}
    for name, item in document["webhooks"].items():
        operation = item["post"]
        assert [p["name"] for p in operation["parameters"]] == [
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        ]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        payload = schemas[ref.rsplit("/", 1)[1]]
        assert payload["required"] == ["id", "type", "occurred_at", "data"]
        assert payload["properties"]["type"]["const"] == name
    published = document["webhooks"]["event.published"]["post"]["requestBody"]
    ref = published["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schemas[ref]["properties"]["data"] == {"$ref": "#/components/schemas/EventPublic"}


def test_creation_and_rotation_ignore_idempotency_keys():
    assert not honours_idempotency_key("POST", BASE)
    assert not honours_idempotency_key("POST", f"{BASE}/{uuid.uuid4()}/rotate-secret")
    assert honours_idempotency_key("POST", f"{BASE}/{uuid.uuid4()}/test")
