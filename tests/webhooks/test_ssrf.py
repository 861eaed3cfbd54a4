"""SSRF-1: webhook targets must resolve, and only to global addresses, at creation and at every
attempt; the attempt connects to the address it checked. Names resolve through a resolver the
test controls; WEBHOOK_ALLOW_PRIVATE_TARGETS is off here (the suite turns it on elsewhere)."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from api.config import Environment, settings
from api.webhooks import service as webhook_service
from api.webhooks import ssrf
from api.webhooks.models import DeliveryStatus, WebhookCreate
from tests.webhooks.conftest import Committed
from tests.webhooks.helpers import BASE, body
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import settled

pytestmark = pytest.mark.security("SSRF-1")

PUBLIC = "93.184.216.34"
NAMES: dict[str, list[str]] = {
    "hooks.example": [PUBLIC],
    "mixed.example": [PUBLIC, "10.0.0.7"],
    "v6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "nowhere.example": [],
}


async def fake_resolve(host: str, _port: int) -> list[str]:
    if host not in NAMES:
        raise OSError(f"{host} does not resolve")
    return NAMES[host]


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
    monkeypatch.setattr(ssrf, "resolve", fake_resolve)


@pytest.mark.usefixtures("strict")
class TestAtCreation:
    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("https://127.0.0.1/h", "resolves to 127.0.0.1, a loopback address"),
            ("https://[::1]/h", "resolves to ::1, a loopback address"),
            ("https://10.1.2.3/h", "resolves to 10.1.2.3, a private address"),
            ("https://172.16.0.1/h", "resolves to 172.16.0.1, a private address"),
            ("https://192.168.1.1/h", "resolves to 192.168.1.1, a private address"),
            ("https://169.254.169.254/latest", "resolves to 169.254.169.254, a link-local address"),
            ("https://[fe80::1]/h", "resolves to fe80::1, a link-local address"),
            ("https://100.64.0.1/h", "resolves to 100.64.0.1, a shared (100.64.0.0/10) address"),
            (
                "https://[::ffff:127.0.0.1]/h",
                "resolves to ::ffff:7f00:1, an IPv6 form of the IPv4 address 127.0.0.1",
            ),
            (
                "https://mapped.example/h",
                "resolves to ::ffff:7f00:1, an IPv6 form of the IPv4 address 127.0.0.1",
            ),
            ("https://224.0.0.1/h", "resolves to 224.0.0.1, a multicast address"),
            ("https://[ff02::1]/h", "resolves to ff02::1, a multicast address"),
            ("https://0.0.0.0/h", "resolves to 0.0.0.0, an unspecified address"),
            ("https://240.0.0.1/h", "resolves to 240.0.0.1, a reserved address"),
            ("https://192.0.2.10/h", "resolves to 192.0.2.10, a documentation address"),
            ("https://[2001:db8::1]/h", "resolves to 2001:db8::1, a documentation address"),
            ("https://mixed.example/h", "resolves to 10.0.0.7, a private address"),
            ("https://nowhere.example/h", "does not resolve"),
            ("https://unknown.example/h", "does not resolve"),
        ],
    )
    async def test_refused(self, client, admin, auth_as, url, reason):
        response = await client.post(BASE, json=body(url=url), headers=await auth_as(admin))

        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail["code"] == "WEBHOOK_URL_NOT_ALLOWED"
        assert detail["reason"].endswith(reason), detail["reason"]

    async def test_plain_http_is_refused_outside_development(self, client, admin, auth_as):
        response = await client.post(
            BASE, json=body(url=f"http://{PUBLIC}/h"), headers=await auth_as(admin)
        )

        assert response.status_code == 422
        assert response.json() == {
            "detail": {"code": "WEBHOOK_URL_NOT_ALLOWED", "reason": "The URL must use https"}
        }

    @pytest.mark.parametrize(
        "url", ["https://hooks.example/h", f"https://{PUBLIC}:8443/h", "https://v6.example/h"]
    )
    async def test_global_targets_are_accepted(self, client, admin, auth_as, url):
        response = await client.post(BASE, json=body(url=url), headers=await auth_as(admin))

        assert response.status_code == 201

    async def test_http_is_accepted_in_development(self, client, admin, auth_as, monkeypatch):
        monkeypatch.setattr(settings, "ENVIRONMENT", Environment.DEVELOPMENT)

        response = await client.post(
            BASE, json=body(url="http://hooks.example/h"), headers=await auth_as(admin)
        )

        assert response.status_code == 201


def resolving_to(*answers: list[str]) -> Callable[[str, int], Awaitable[list[str]]]:
    """A resolver giving each answer in turn (the last one from then on)."""
    calls: list[str] = []

    async def resolve(host: str, _port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    return resolve


@pytest.mark.usefixtures("worker")
async def test_a_rebinding_name_is_refused_at_delivery(
    committed: Committed, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
    monkeypatch.setattr(settings, "ENVIRONMENT", Environment.DEVELOPMENT)  # plain http
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_SCHEDULE", "")
    # Global when the webhook is made, then the receiver's own loopback address.
    monkeypatch.setattr(ssrf, "resolve", resolving_to([PUBLIC], ["127.0.0.1"]))
    owner = await committed.owner()
    webhook, _ = await webhook_service.create_webhook(
        committed.session,
        owner=owner,
        webhook_in=WebhookCreate.model_validate(
            body(url=f"http://rebind.example:{receiver.port}/r", event_types=["user.created"])
        ),
    )
    await committed.session.commit()

    await committed.publish()

    [delivery] = await settled(committed, webhook)
    assert delivery.status == DeliveryStatus.FAILED
    assert [(a["error"], a["status_code"]) for a in delivery.attempts] == [
        ("URL_NOT_ALLOWED", None)
    ]
    await asyncio.sleep(0.3)
    assert receiver.requests == []


@pytest.mark.usefixtures("worker")
async def test_an_attempt_connects_to_the_address_it_checked(
    committed: Committed, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name exists only in the test's resolver: what arrives came to the checked address,
    with the name kept in the Host header."""
    monkeypatch.setattr(ssrf, "resolve", resolving_to(["127.0.0.1"]))
    owner = await committed.owner()
    webhook = await committed.webhook(owner, f"http://pinned.example:{receiver.port}/p")

    await committed.publish()

    [delivery] = await settled(committed, webhook)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    [request] = receiver.to("/p")
    assert request.headers["host"] == f"pinned.example:{receiver.port}"
