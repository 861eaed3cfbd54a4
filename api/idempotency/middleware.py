"""Idempotency-Key on POST: the first answer is kept and replayed, the work runs once.

A pure ASGI middleware inside BodySizeLimitMiddleware (the body is already capped) and inside
ObservabilityMiddleware (a replay is logged and gets its own X-Request-ID). A request without
the header, or not a POST under /api/v1, passes through untouched: no body buffering, no
statement. Each statement of its own runs in a short transaction on the app's engine, apart from
the route's session: the claim is visible to every process at once, and it outlives the route's
rollback.
"""

import re
from collections.abc import Callable
from typing import Any

import anyio
import structlog
from fastapi import FastAPI, status
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import clock
from api.db import get_engine
from api.errors import is_database_unavailable, service_unavailable_response
from api.idempotency import service
from api.openapi import RETRY_AFTER, add_error_answer, complete_document
from api.users.auth import user_id_for_token

log = structlog.get_logger(__name__)

# The request's header, and the one a replayed answer carries (exposed to browsers by CORS).
KEY_HEADER_NAME = "Idempotency-Key"
REPLAYED_HEADER_NAME = "Idempotent-Replayed"
HEADER = KEY_HEADER_NAME.lower().encode()
REPLAYED_HEADER = (REPLAYED_HEADER_NAME.lower().encode(), b"true")
API_PREFIX = "/api/v1/"
# POST routes that show a secret (or hand out tokens) ignore the header: a replay would show
# the secret again to whoever holds the key, and the replay cache would keep a copy of it. The
# calendar feed's rotate answers a new secret URL too, so it joins the contract's list.
NOT_HONOURED = re.compile(
    r"/api/v1/(?:auth/.*|users/me/api-tokens|webhooks|webhooks/[^/]+/rotate-secret"
    r"|users/me/calendar-feed/rotate)/?"
)
MAX_KEY_LENGTH = 255
# Headers of a stored answer that belong to one response only: a replay gets its own.
PER_RESPONSE_HEADERS = frozenset({b"x-request-id", b"date", b"server", b"content-length"})
# Claim attempts when the key holder vanishes between our insert and our read (it failed).
CLAIM_ATTEMPTS = 3

KEY_INVALID = "IDEMPOTENCY_KEY_INVALID"
KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
KEY_IN_USE = "IDEMPOTENCY_KEY_IN_USE"
REASONS = {
    KEY_INVALID: "Idempotency-Key must be 1-255 printable ASCII characters (0x21-0x7E), sent once.",
    KEY_REUSED: "This Idempotency-Key was used for another request (method, path, query or body).",
    KEY_IN_USE: "The first request with this Idempotency-Key is still running; retry shortly.",
}


def honours_idempotency_key(method: str, path: str) -> bool:
    """Whether a request (or an OpenAPI path template) takes an Idempotency-Key."""
    return method == "POST" and path.startswith(API_PREFIX) and not NOT_HONOURED.fullmatch(path)


def valid_key(raw: bytes) -> bool:
    return 1 <= len(raw) <= MAX_KEY_LENGTH and all(0x21 <= byte <= 0x7E for byte in raw)


def keeps(status_code: int) -> bool:
    """Answers kept for replay: below 500, but not 401 (no caller) nor 429 (not run)."""
    return status_code < 500 and status_code not in (401, 429)


def _error(code: str, status_code: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"detail": {"code": code, "reason": REASONS[code]}},
        status_code=status_code,
        headers=headers,
    )


def _unavailable(scope: Scope) -> JSONResponse:
    return service_unavailable_response(str(scope.get("state", {}).get("request_id", "-")))


def _is_database_error(exc: Exception) -> bool:
    return isinstance(exc, SQLAlchemyError) or is_database_unavailable(exc)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, token = get_authorization_scheme_param(value.decode("latin-1"))
            return token if scheme.lower() == "bearer" and token else None
    return None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client left before sending it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, engine: Callable[[], AsyncEngine] = get_engine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        keys = [value for name, value in scope["headers"] if name == HEADER]
        token = _bearer_token(scope) if keys else None
        if token is None or not honours_idempotency_key("POST", scope["path"]):
            # No key, a route that ignores it, or no token (the route answers 401 itself).
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except StarletteHTTPException as exc:  # BodySizeLimitMiddleware: a chunked body too big
            await JSONResponse({"detail": exc.detail}, status_code=exc.status_code)(
                scope, receive, send
            )
            return
        if body is None:
            return
        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        fingerprint = service.fingerprint_of(
            scope["method"], scope["path"], scope.get("query_string", b""), body
        )
        try:
            outcome = await self._claim(token, keys, fingerprint)
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            log.warning("idempotency_database_error", step="claim", error=repr(exc))
            await _unavailable(scope)(scope, receive, send)
            return
        if outcome is None:  # no live token: the route answers 401, nothing is kept
            await self.app(scope, replay_body, send)
        elif isinstance(outcome, service.Claim):
            await self._run(outcome, scope, replay_body, send)
        else:
            await self._answer(outcome, fingerprint)(scope, receive, send)

    async def _claim(
        self, token: str, keys: list[bytes], fingerprint: str
    ) -> service.Claim | service.Existing | str | None:
        """The claim, the holder's row, an error code of this mechanism, or None (no caller)."""
        async with self.engine().begin() as connection:
            user_id = await user_id_for_token(connection, token)
            if user_id is None:
                return None
            if len(keys) != 1 or not valid_key(keys[0]):
                return KEY_INVALID
            for _ in range(CLAIM_ATTEMPTS):
                outcome = await service.claim_key(
                    connection,
                    user_id=user_id,
                    key=keys[0].decode("ascii"),
                    fingerprint=fingerprint,
                    now=clock.now(),
                )
                if outcome is not None:
                    return outcome
        return KEY_IN_USE

    @staticmethod
    def _answer(outcome: service.Existing | str, fingerprint: str) -> ASGIApp:
        """What a request answers without running: an error of this mechanism, or a replay."""
        if isinstance(outcome, str):
            code = outcome
        elif outcome.fingerprint != fingerprint:
            code = KEY_REUSED
        elif outcome.status is not None:
            return _replay(outcome)
        else:
            code = KEY_IN_USE
        if code == KEY_IN_USE:
            return _error(code, status.HTTP_409_CONFLICT, {"Retry-After": "1"})
        return _error(code, status.HTTP_422_UNPROCESSABLE_CONTENT)

    async def _run(self, claim: service.Claim, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with the key claimed; keep its answer, or free the key (finally)."""
        start: Message | None = None
        chunks: list[bytes] = []
        complete = False

        async def hold(message: Message) -> None:
            # The answer is held until it is stored, so that a client that has it can replay it.
            nonlocal start, complete
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)
            else:
                await send(message)

        stored = False
        try:
            await self.app(scope, receive, hold)
            if start is not None and complete and keeps(start["status"]):
                stored = await self._store(claim, start, b"".join(chunks))
        finally:
            if not stored:
                await self._free(claim)
        if start is not None:
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(chunks)})

    async def _store(self, claim: service.Claim, start: Message, body: bytes) -> bool:
        headers = [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, value in start.get("headers", ())
            if name.lower() not in PER_RESPONSE_HEADERS
        ]
        try:
            async with self.engine().begin() as connection:
                await service.store_response(
                    connection, claim, status=start["status"], headers=headers, body=body
                )
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            # The work is done and committed: the client still gets its answer.
            log.warning("idempotency_database_error", step="store", error=repr(exc))
            return False
        return True

    async def _free(self, claim: service.Claim) -> None:
        # Shielded: a cancelled request (client gone, shutdown) still gives its key back.
        with anyio.CancelScope(shield=True):
            try:
                async with self.engine().begin() as connection:
                    await service.free_key(connection, claim)
            except Exception as exc:
                if not _is_database_error(exc):
                    raise
                # The lease lapses on its own (service.LEASE): the key is then taken over.
                log.warning("idempotency_database_error", step="free", error=repr(exc))


def _replay(stored: service.Existing) -> ASGIApp:
    body = stored.body or b""
    headers = [
        *(
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in stored.headers or ()
        ),
        (b"content-length", str(len(body)).encode()),
        REPLAYED_HEADER,
    ]

    async def replay(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": stored.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return replay


# --- OpenAPI ---------------------------------------------------------------------------------


# What each of the mechanism's answers means, as the OpenAPI document's examples say it.
SUMMARIES = {
    KEY_INVALID: "The Idempotency-Key header is malformed or sent twice",
    KEY_REUSED: "The key was used before for a different request",
    KEY_IN_USE: "The first request with this key is still running",
}


def _examples(*codes: str) -> dict[str, Any]:
    return {
        code: {
            "summary": SUMMARIES[code],
            "value": {"detail": {"code": code, "reason": REASONS[code]}},
        }
        for code in codes
    }


def document_idempotency(app: FastAPI) -> None:
    """The Idempotency-Key header and its answers (409, 422) on every operation honouring it."""
    parameter = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Makes the request safe to retry: the first answer is kept for "
        "IDEMPOTENCY_KEY_TTL_HOURS per user and replayed (with `Idempotent-Replayed: true`) "
        "to the same request with the same key.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_KEY_LENGTH,
            "pattern": "^[!-~]+$",
        },
    }

    def complete(schema: dict[str, Any]) -> None:
        for path, item in schema["paths"].items():
            operation = item.get("post")
            if operation is None or not honours_idempotency_key("POST", path):
                continue
            operation.setdefault("parameters", []).append(parameter)
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                if code.startswith("2"):
                    response.setdefault("headers", {})["Idempotent-Replayed"] = {
                        "description": "true when the answer is a replay",
                        "schema": {"type": "string", "enum": ["true"]},
                    }
            add_error_answer(responses, "409", _examples(KEY_IN_USE), headers=RETRY_AFTER)
            add_error_answer(responses, "422", _examples(KEY_REUSED, KEY_INVALID))

    complete_document(app, complete)
