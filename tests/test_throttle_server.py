"""AUTH-4 in the real service: the per-IP throttle is configured by AUTH_RATE_LIMIT alone.

One worker (the throttle counts per process), a limit of 3 a minute: each throttled route
answers its fourth request from this client with 429 and Retry-After, the other routes never.
Nothing is written: unknown addresses only.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.leaks import LeakScanner
from tests.support import ServerProcess, run_server

pytestmark = pytest.mark.security("AUTH-4")

LIMIT = 3
NOBODY = "nobody-throttle@example.com"
THROTTLED: dict[str, dict[str, Any]] = {
    "/api/v1/auth/login": {"data": {"username": NOBODY, "password": "not a passphrase"}},
    "/api/v1/auth/register": {"json": {"email": "not an address", "password": "x"}},
    "/api/v1/auth/request-verify-token": {"json": {"email": NOBODY}},
    "/api/v1/auth/forgot-password": {"json": {"email": NOBODY}},
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with run_server({"AUTH_RATE_LIMIT": f"{LIMIT}/minute"}, workers=1) as process:
        yield process


async def test_each_throttled_route_answers_429_with_retry_after(server: ServerProcess) -> None:
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=10, event_hooks=LeakScanner().hooks
    ) as client:
        for path, request in THROTTLED.items():
            allowed = [(await client.post(path, **request)).status_code for _ in range(LIMIT)]
            assert 429 not in allowed, (path, allowed)
            throttled = await client.post(path, **request)
            assert throttled.status_code == 429, (path, throttled.text)
            assert throttled.json() == {"detail": "TOO_MANY_REQUESTS"}
            assert 1 <= int(throttled.headers["Retry-After"]) <= 60
        # Routes outside the throttle keep answering.
        for _ in range(2 * LIMIT):
            bad_token = await client.post("/api/v1/auth/verify", json={"token": "not-a-token"})
            assert bad_token.status_code == 400
            assert (await client.get("/api/v1/events")).status_code == 200
