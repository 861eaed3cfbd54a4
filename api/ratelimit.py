"""Per-client-IP throttle on the unauthenticated auth endpoints (AUTH_RATE_LIMIT).

The counts live where RATE_LIMIT_STORAGE_URL says: memory:// counts in each process on its own,
redis://... once for every worker and replica on that Redis. The client is the address uvicorn
resolved, the X-Forwarded-For of a trusted proxy (FORWARDED_ALLOW_IPS) included.

A storage that fails or does not answer within RATE_LIMIT_STORAGE_TIMEOUT_SECONDS lets the
request through (fail open): an outage of the throttle's store must not lock everyone out of
logging in. Each such request is logged (`rate_limit_storage_unavailable`) and counted
(STORAGE_ERRORS).
"""

import asyncio
import math
import time

import structlog
from fastapi import Request
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from prometheus_client import Counter

from api.config import settings
from api.errors import TooManyRequests

log = structlog.get_logger(__name__)

THROTTLED_PATHS = frozenset(
    {
        "/api/v1/auth/login",
        "/api/v1/auth/register",
        "/api/v1/auth/request-verify-token",
        "/api/v1/auth/forgot-password",
    }
)

# Served by api.metrics (a floor above this module), like its own series.
STORAGE_ERRORS = Counter(
    "event_manager_rate_limit_storage_errors",
    "Throttled requests let through unchecked: the rate limit storage failed or timed out",
    registry=None,
)

_limiter: MovingWindowRateLimiter | None = None


def _get_limiter() -> MovingWindowRateLimiter:
    # Built at the first throttled request, in the process and event loop that serve it: a
    # Redis client is not carried across worker processes or loops.
    global _limiter
    if _limiter is None:
        storage = storage_from_string(f"async+{settings.RATE_LIMIT_STORAGE_URL}")
        _limiter = MovingWindowRateLimiter(storage)
    return _limiter


def reset() -> None:
    """Forget this process's storage: memory:// counts start again (the tests' reset)."""
    global _limiter
    _limiter = None


async def throttle_auth(request: Request) -> None:
    if not settings.rate_limit_enabled or request.url.path not in THROTTLED_PATHS:
        return
    limit = parse(settings.AUTH_RATE_LIMIT)
    client = request.client.host if request.client else "unknown"
    limiter = _get_limiter()
    try:
        async with asyncio.timeout(settings.RATE_LIMIT_STORAGE_TIMEOUT_SECONDS):
            if await limiter.hit(limit, request.url.path, client):
                return
            reset_at, _ = await limiter.get_window_stats(limit, request.url.path, client)
    except Exception as error:  # noqa: BLE001 - whatever the storage raised: fail open
        STORAGE_ERRORS.inc()
        log.warning("rate_limit_storage_unavailable", error=type(error).__name__)
        return
    raise TooManyRequests(retry_after=max(1, math.ceil(reset_at - time.time())))
