"""Per-client-IP throttle on the unauthenticated auth endpoints (AUTH_RATE_LIMIT)."""

import math
import time

from fastapi import HTTPException, Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.config import settings
from api.errors import TooManyRequests

THROTTLED_PATHS = frozenset(
    {
        "/api/v1/auth/login",
        "/api/v1/auth/register",
        "/api/v1/auth/request-verify-token",
        "/api/v1/auth/forgot-password",
    }
)

# Counted per process: with several workers the effective limit is a multiple of the setting.
_limiter = MovingWindowRateLimiter(MemoryStorage())


def reset() -> None:
    _limiter.storage.reset()


async def throttle_auth(request: Request) -> None:
    if not settings.rate_limit_enabled or request.url.path not in THROTTLED_PATHS:
        return
    limit = parse(settings.AUTH_RATE_LIMIT)
    client = request.client.host if request.client else "unknown"
    if _limiter.hit(limit, request.url.path, client):
        return
    reset_at, _ = _limiter.get_window_stats(limit, request.url.path, client)
    retry_after = max(1, math.ceil(reset_at - time.time()))
    raise HTTPException(
        status_code=TooManyRequests.status_code,
        detail=TooManyRequests.code,
        headers={"Retry-After": str(retry_after)},
    )
