"""One webhook attempt over HTTP: signed with standardwebhooks, sent to the address the SSRF
check passed (never re-resolved by the client), redirects not followed, the answer cut short."""

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from standardwebhooks import Webhook as Signer

from api import clock
from api.config import settings
from api.webhooks import ssrf
from api.webhooks.models import RESPONSE_BODY_LIMIT, AttemptError, DeliveryAttempt


@dataclass(frozen=True)
class Outgoing:
    url: str
    delivery_id: str
    payload: dict[str, Any]
    # The signing secrets, newest first (two during a rotation's overlap).
    secrets: tuple[str, ...]


def body_of(payload: dict[str, Any]) -> str:
    """The compact JSON body."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def headers_for(outgoing: Outgoing, body: str, at: datetime) -> dict[str, str]:
    signatures = " ".join(
        Signer(secret).sign(msg_id=outgoing.delivery_id, timestamp=at, data=body)
        for secret in outgoing.secrets
    )
    return {
        "content-type": "application/json",
        "user-agent": "event-manager-webhooks",
        "webhook-id": outgoing.delivery_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


def _pinned(url: str, target: ssrf.Target) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """The URL rewritten to the checked address, the Host header and TLS name it keeps."""
    original = httpx.URL(url)
    pinned = original.copy_with(host=target.address)
    host = original.netloc.decode("ascii")
    extensions: dict[str, Any] = {}
    if target.scheme == "https":
        extensions["sni_hostname"] = target.host
    return pinned, {"host": host}, extensions


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _read_some(response: httpx.Response) -> bytes:
    kept = b""
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= RESPONSE_BODY_LIMIT:
            break
    return kept[:RESPONSE_BODY_LIMIT]


async def send(outgoing: Outgoing) -> DeliveryAttempt:
    """Make one attempt and describe it; never raises for what the receiver does."""
    attempted_at = clock.now()
    started = time.monotonic()

    def done(
        *, status_code: int | None = None, error: AttemptError | None = None, body: bytes = b""
    ) -> DeliveryAttempt:
        return DeliveryAttempt(
            attempted_at=attempted_at,
            status_code=status_code,
            duration_ms=round((time.monotonic() - started) * 1000),
            error=error,
            response_body=body.decode("utf-8", errors="replace") if body else None,
        )

    try:
        target = await ssrf.check_url(outgoing.url)
    except ssrf.WebhookUrlNotAllowed:
        return done(error=AttemptError.URL_NOT_ALLOWED)
    body = body_of(outgoing.payload)
    url, host, extensions = _pinned(outgoing.url, target)
    headers = {**headers_for(outgoing, body, attempted_at), **host}
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    try:
        async with asyncio.timeout(timeout):
            # A client per attempt: no connection (or TLS session) is shared between hosts.
            async with (
                httpx.AsyncClient(
                    timeout=timeout, follow_redirects=False, trust_env=False
                ) as client,
                client.stream(
                    "POST", url, content=body.encode(), headers=headers, extensions=extensions
                ) as response,
            ):
                kept = await _read_some(response)
    except (TimeoutError, httpx.TimeoutException):
        return done(error=AttemptError.TIMEOUT)
    except httpx.TransportError as exc:
        error = AttemptError.TLS_ERROR if _is_tls(exc) else AttemptError.CONNECTION_ERROR
        return done(error=error)
    except ssl.SSLError:
        return done(error=AttemptError.TLS_ERROR)
    return done(status_code=response.status_code, body=kept)
