"""SCALE-1: X-Forwarded-For and X-Forwarded-Proto count only from a trusted proxy
(FORWARDED_ALLOW_IPS), in real `event-manager serve` processes that the test reaches from
127.0.0.1.

Trusted (the default, 127.0.0.1): the forwarded address is the client the throttle counts and the
access log shows, and the forwarded scheme is that of the pagination links. Untrusted (a proxy
address that is not the test's): a spoofed X-Forwarded-For, new on every request, escapes nothing;
the log shows the peer and the links stay http.
"""

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api.events.models import Event
from api.users.models import UserRole
from tests.factories import committed_accounts, create_event, create_user
from tests.support import ServerProcess, run_cli_server

pytestmark = pytest.mark.security("SCALE-1")

LIMIT = 3
UNTRUSTED_PROXY = "192.0.2.10"
# One worker, so that the default memory:// throttle counts exactly; INFO for the access lines.
SERVE = ("--workers", "1", "--no-migrate", "--no-worker")
ENV = {"AUTH_RATE_LIMIT": f"{LIMIT}/minute", "LOG_LEVEL": "INFO"}
LOGIN = "/api/v1/auth/login"
WRONG_LOGIN = {"username": "nobody-forwarded@example.com", "password": "not a passphrase"}


@pytest.fixture(scope="module")
def trusting_server() -> Iterator[ServerProcess]:
    with run_cli_server(ENV, *SERVE) as server:  # FORWARDED_ALLOW_IPS left at its default
        yield server


@pytest.fixture(scope="module")
def distrusting_server() -> Iterator[ServerProcess]:
    with run_cli_server({**ENV, "FORWARDED_ALLOW_IPS": UNTRUSTED_PROXY}, *SERVE) as server:
        yield server


@pytest.fixture(scope="module")
async def two_events(engine: AsyncEngine) -> AsyncIterator[None]:
    """Two committed published events: a list of one per page has a next page."""
    async with committed_accounts(engine, "forwarded") as prefix:
        async with AsyncSession(engine) as session:
            owner = await create_user(
                session, role=UserRole.MANAGER, email=f"{prefix}owner@example.com"
            )
            events = [await create_event(session, owner=owner) for _ in range(2)]
            ids = [event.id for event in events]
            await session.commit()
        try:
            yield
        finally:
            async with AsyncSession(engine) as session:
                await session.execute(delete(Event).where(col(Event.id).in_(ids)))
                await session.commit()


def spoofed_address() -> str:
    return f"203.0.113.{uuid.uuid4().int % 254 + 1}"


def access_line(server: ServerProcess, request_id: str) -> dict[str, Any]:
    records: list[dict[str, Any]] = [
        json.loads(text) for text in server.log().splitlines() if text.startswith("{")
    ]
    [line] = [r for r in records if r.get("request_id") == request_id and r["event"] == "request"]
    return line


async def logins(client: httpx.AsyncClient, forwarded_for: str, count: int) -> list[int]:
    headers = {"X-Forwarded-For": forwarded_for}
    return [
        (await client.post(LOGIN, data=WRONG_LOGIN, headers=headers)).status_code
        for _ in range(count)
    ]


@pytest.mark.security("AUTH-4")
async def test_a_trusted_proxy_gives_each_client_its_own_budget(
    trusting_server: ServerProcess,
) -> None:
    first, second = "198.51.100.7", "198.51.100.8"
    async with httpx.AsyncClient(base_url=trusting_server.base_url, timeout=10) as client:
        assert await logins(client, first, LIMIT + 1) == [400] * LIMIT + [429]
        assert await logins(client, second, LIMIT + 1) == [400] * LIMIT + [429]
        # The proxy's own address (no header) was never counted.
        assert (await client.post(LOGIN, data=WRONG_LOGIN)).status_code == 400


def test_a_trusted_proxy_names_the_client_in_the_access_log(
    trusting_server: ServerProcess,
) -> None:
    request_id = f"forwarded-{uuid.uuid4().hex}"
    headers = {"X-Request-ID": request_id, "X-Forwarded-For": "198.51.100.9, 10.0.0.2"}
    response = httpx.get(f"{trusting_server.base_url}/health", headers=headers, timeout=10)
    assert response.status_code == 200
    # A client may send an X-Forwarded-For of its own, which the proxy extends: the address the
    # trusted proxy appended, the last, is the client.
    assert access_line(trusting_server, request_id)["client"] == "10.0.0.2"


@pytest.mark.usefixtures("two_events")
def test_a_trusted_proxy_makes_the_page_links_https(trusting_server: ServerProcess) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.10"}
    url = f"{trusting_server.base_url}/api/v1/events?page=1&size=1"
    links = httpx.get(url, headers=headers, timeout=10).json()["links"]
    host = trusting_server.base_url.removeprefix("http://")
    assert links["self"] == f"https://{host}/api/v1/events?page=1&size=1"
    assert links["next"] == f"https://{host}/api/v1/events?page=2&size=1"
    assert all(link.startswith(f"https://{host}/") for link in links.values() if link)


@pytest.mark.security("AUTH-4")
async def test_a_spoofed_forwarded_for_does_not_escape_the_throttle(
    distrusting_server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=distrusting_server.base_url, timeout=10) as client:
        statuses = [(await logins(client, spoofed_address(), 1))[0] for _ in range(LIMIT + 1)]
    assert statuses == [400] * LIMIT + [429]


def test_a_spoofed_forwarded_for_is_not_logged_as_the_client(
    distrusting_server: ServerProcess,
) -> None:
    request_id = f"spoofed-{uuid.uuid4().hex}"
    headers = {"X-Request-ID": request_id, "X-Forwarded-For": spoofed_address()}
    response = httpx.get(f"{distrusting_server.base_url}/health", headers=headers, timeout=10)
    assert response.status_code == 200
    assert access_line(distrusting_server, request_id)["client"] == "127.0.0.1"


@pytest.mark.usefixtures("two_events")
def test_a_spoofed_forwarded_proto_leaves_the_links_http(
    distrusting_server: ServerProcess,
) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": spoofed_address()}
    url = f"{distrusting_server.base_url}/api/v1/events?page=1&size=1"
    links = httpx.get(url, headers=headers, timeout=10).json()["links"]
    base = distrusting_server.base_url
    assert links["self"] == f"{base}/api/v1/events?page=1&size=1"
    assert links["next"] == f"{base}/api/v1/events?page=2&size=1"
    assert all(link.startswith(f"{base}/") for link in links.values() if link)
