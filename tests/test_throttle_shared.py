"""SCALE-1 for the auth throttle, on real `event-manager serve` processes and the real Redis.

With RATE_LIMIT_STORAGE_URL on Redis, every worker of every server draws on one budget per
client. A Redis that is down or black-holed leaves the throttled routes answering as without a
throttle, each within a bound, logged and counted, and the other routes untouched; once it is back
the budget holds again. memory:// with several workers is warned of at start.

Each test counts under client addresses of its own (X-Forwarded-For from 127.0.0.1, the trusted
proxy by default), so that no two tests share a budget, and deletes the keys it wrote in Redis.
Nothing is written to the database: unknown accounts only.
"""

import asyncio
import ipaddress
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any

import coredis
import httpx
import pytest

from api.config import settings
from tests.support import ServerProcess, run_cli_server, samples
from tests.test_reliability import FaultProxy

pytestmark = pytest.mark.security("SCALE-1")

REDIS_URL = "redis://127.0.0.1:6379/0"
LIMIT = 4
SERVE = ("--no-migrate", "--no-worker")
NOBODY = "nobody-shared-throttle@example.com"
LOGIN = "/api/v1/auth/login"
WRONG_LOGIN = {"data": {"username": NOBODY, "password": "not a passphrase"}}
# Each throttled route, a request that changes nothing, and its answer without a throttle.
THROTTLED: dict[str, tuple[dict[str, Any], int, Any]] = {
    LOGIN: (WRONG_LOGIN, 400, {"detail": "LOGIN_BAD_CREDENTIALS"}),
    "/api/v1/auth/register": ({"json": {"email": "not an address", "password": "x"}}, 422, None),
    "/api/v1/auth/request-verify-token": ({"json": {"email": NOBODY}}, 202, None),
    "/api/v1/auth/forgot-password": ({"json": {"email": NOBODY}}, 202, None),
}
# A throttled request waits on a black-holed Redis RATE_LIMIT_STORAGE_TIMEOUT_SECONDS (the
# default, 0.5 s) at most; the rest is the request's own work on a busy machine.
ANSWER_BOUND_SECONDS = settings.RATE_LIMIT_STORAGE_TIMEOUT_SECONDS + 2.5
STORAGE_ERRORS = "event_manager_rate_limit_storage_errors_total"


def new_client_address() -> str:
    """A documentation address (2001:db8::/32) no other test uses."""
    return str(ipaddress.IPv6Address((0x20010DB8 << 96) | uuid.uuid4().int >> 64))


def from_client(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def throttle_keys(address: str) -> list[str]:
    """The keys the throttle keeps in Redis for `address`."""
    redis = coredis.Redis.from_url(REDIS_URL, decode_responses=True)
    return [key async for key in redis.scan_iter(match=f"LIMITS:LIMITER/*/{address}/*")]


async def forget(address: str) -> None:
    keys = await throttle_keys(address)
    if keys:
        await coredis.Redis.from_url(REDIS_URL).delete(tuple(keys))
    assert await throttle_keys(address) == []


@pytest.fixture
async def client_address() -> AsyncIterator[str]:
    address = new_client_address()
    yield address
    await forget(address)


async def post(base_url: str, path: str, address: str, request: dict[str, Any]) -> httpx.Response:
    """One request on a connection of its own: the kernel hands it to any worker."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.post(path, headers=from_client(address), **request)


def log_records(server: ServerProcess) -> list[dict[str, Any]]:
    lines = server.log().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture(scope="module")
def redis_servers() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers of two workers each on one Redis."""
    env = {
        "AUTH_RATE_LIMIT": f"{LIMIT}/minute",
        "RATE_LIMIT_STORAGE_URL": REDIS_URL,
        # Far beyond any answer of the local Redis, even on a busy machine: no request is let
        # through unchecked (the storage error counter stays 0), so the counts are exact.
        "RATE_LIMIT_STORAGE_TIMEOUT_SECONDS": "10",
    }
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(run_cli_server(env, "--workers", "2", *SERVE)) for _ in range(2)
        )
        yield first, second


@pytest.mark.security("AUTH-4")
async def test_every_worker_of_two_servers_draws_on_one_budget(
    redis_servers: tuple[ServerProcess, ServerProcess], client_address: str
) -> None:
    bases = [server.base_url for server in redis_servers]
    # Three budgets' worth at once, half to each server, each on a connection of its own.
    burst = await asyncio.gather(
        *(post(bases[i % 2], LOGIN, client_address, WRONG_LOGIN) for i in range(3 * LIMIT))
    )
    statuses = sorted(response.status_code for response in burst)
    assert statuses == [400] * LIMIT + [429] * (2 * LIMIT)
    for response in burst:
        expected = "LOGIN_BAD_CREDENTIALS" if response.status_code == 400 else "TOO_MANY_REQUESTS"
        assert response.json() == {"detail": expected}
        if response.status_code == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= 60
    for base in bases:
        assert (await post(base, LOGIN, client_address, WRONG_LOGIN)).status_code == 429
        assert await storage_errors(base) == 0
    # The counts are in Redis, not in any process.
    assert len(await throttle_keys(client_address)) == 1


async def test_another_client_keeps_its_own_budget(
    redis_servers: tuple[ServerProcess, ServerProcess], client_address: str
) -> None:
    spent = new_client_address()
    first, second = bases = [server.base_url for server in redis_servers]
    try:
        answers = [await post(first, LOGIN, spent, WRONG_LOGIN) for _ in range(LIMIT)]
        assert [answer.status_code for answer in answers] == [400] * LIMIT
        assert (await post(second, LOGIN, spent, WRONG_LOGIN)).status_code == 429
        answers = [
            await post(bases[i % 2], LOGIN, client_address, WRONG_LOGIN) for i in range(LIMIT)
        ]
        assert [answer.status_code for answer in answers] == [400] * LIMIT
    finally:
        await forget(spent)


@pytest.fixture(scope="module")
def redis_proxy() -> Iterator[FaultProxy]:
    """The test's Redis behind a proxy that can refuse or black-hole it."""
    proxy = FaultProxy(REDIS_URL)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def proxied_server(redis_proxy: FaultProxy) -> Iterator[ServerProcess]:
    env = {"AUTH_RATE_LIMIT": f"{LIMIT}/minute", "RATE_LIMIT_STORAGE_URL": redis_proxy.url}
    with run_cli_server(env, "--workers", "2", *SERVE) as server:
        yield server


async def answers_as_without_a_throttle(base_url: str, address: str) -> int:
    """Each throttled route twice, spent budget or not: the answer it gives unthrottled, within
    ANSWER_BOUND_SECONDS; then the unthrottled routes. The throttled requests made."""
    made = 0
    for path, (request, status, body) in THROTTLED.items():
        for _ in range(2):
            started = time.monotonic()
            response = await post(base_url, path, address, request)
            assert time.monotonic() - started < ANSWER_BOUND_SECONDS, path
            assert response.status_code == status, (path, response.text)
            if body is not None:
                assert response.json() == body
            made += 1
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        assert (await client.get("/ready")).json() == {"status": "ok"}
        assert (await client.get("/api/v1/events")).status_code == 200
    return made


async def storage_errors(base_url: str) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return samples((await client.get("/metrics")).text)[STORAGE_ERRORS]


async def spend_the_budget(base_url: str, address: str) -> None:
    """Logins until a 429: the throttle counts in Redis. A first call of a worker that takes
    over the timeout on a busy machine goes through unchecked, hence no exact count here."""
    for _ in range(LIMIT + 10):
        if (await post(base_url, LOGIN, address, WRONG_LOGIN)).status_code == 429:
            return
    raise AssertionError("no 429: the throttle does not count")


def warnings_by_kind(server: ServerProcess) -> Counter[str]:
    return Counter(
        record["error"]
        for record in log_records(server)
        if record["event"] == "rate_limit_storage_unavailable"
    )


async def test_an_unreachable_redis_lets_the_throttled_routes_answer(
    redis_proxy: FaultProxy, proxied_server: ServerProcess, client_address: str
) -> None:
    base = proxied_server.base_url
    await spend_the_budget(base, client_address)
    errors_before, warnings_before = await storage_errors(base), warnings_by_kind(proxied_server)
    made: Counter[str] = Counter()
    try:
        redis_proxy.refuse()  # Redis down: connections refused
        made["ConnectionError"] = await answers_as_without_a_throttle(base, client_address)
        redis_proxy.black_hole()  # Redis accepts connections and never answers
        made["TimeoutError"] = await answers_as_without_a_throttle(base, client_address)
        # Every worker's count, added up by the scrape (serve's multiprocess metrics).
        assert await storage_errors(base) - errors_before == made.total()
        assert warnings_by_kind(proxied_server) - warnings_before == made
    finally:
        redis_proxy.forward()
    # Back: the spent budget holds again, without a restart.
    await spend_the_budget(base, client_address)
    assert "RATE_LIMIT_STORAGE_URL is memory://" not in proxied_server.log()


@pytest.mark.parametrize(("workers", "warned"), [(2, True), (1, False)])
def test_serve_warns_of_a_memory_throttle_counted_per_worker(workers: int, warned: bool) -> None:
    env = {"AUTH_RATE_LIMIT": f"{LIMIT}/minute", "RATE_LIMIT_STORAGE_URL": "memory://"}
    with run_cli_server(env, "--workers", str(workers), *SERVE) as server:
        assert httpx.get(f"{server.base_url}/ready", timeout=10).status_code == 200
        text = server.log()
        records = log_records(server)
    line = (
        "Warning: RATE_LIMIT_STORAGE_URL is memory://, so each of the 2 worker processes counts "
        "AUTH_RATE_LIMIT on its own: a client gets up to 2 times the limit."
    )
    assert (line in text) is warned, text
    warnings = [
        (record["level"], record["logger"], record["workers"], record["storage"])
        for record in records
        if record["event"] == "rate_limit_per_process"
    ]
    assert warnings == ([("warning", "api.cli", 2, "memory://")] if warned else [])
