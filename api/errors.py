"""Domain errors and the one place that maps them (and infrastructure failures) to HTTP.
api.openapi shows them in the OpenAPI document."""

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg
import structlog
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = "5"


def _detail(code: str, reason: str | None, extra: Mapping[str, Any]) -> str | dict[str, Any]:
    """The `detail` of an error body: the bare code, or the code with its reason and extras."""
    if reason is None and not extra:
        return code
    return {"code": code, "reason": reason, **extra}


class AppError(Exception):
    """A domain error with a stable UPPER_SNAKE code; services raise these, never HTTPException.

    The OpenAPI document shows each error a route lists (api.openapi.error_responses) as an
    example: its docstring's first line as the summary, and the body it is sent with, built
    from `example_reason` and `example_extra` (the reason and extra fields it is raised with;
    None and none: it is sent as the bare code)."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "BAD_REQUEST"
    example_reason: ClassVar[str | None] = None
    example_extra: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, code: str | None = None, reason: str | None = None, **extra: Any) -> None:
        self.code = code or self.code
        self.reason = reason
        self.extra = extra
        super().__init__(self.code)

    @property
    def detail(self) -> str | dict[str, Any]:
        return _detail(self.code, self.reason, self.extra)

    @classmethod
    def example_detail(cls) -> str | dict[str, Any]:
        """The `detail` this error is sent with, as the OpenAPI document shows it."""
        return _detail(cls.code, cls.example_reason, cls.example_extra)

    @property
    def headers(self) -> dict[str, str] | None:
        """Response headers the error carries, beside its body."""
        return None


class NotFound(AppError):
    """Nothing with this id, or nothing the caller may see."""

    status_code = status.HTTP_404_NOT_FOUND
    code = "NOT_FOUND"


class Forbidden(AppError):
    """The caller's role may not do this."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "FORBIDDEN"


class InsufficientScope(Forbidden):
    """An API token calling a route its scopes do not cover (`required_scope`), or one that
    only a login token may call (`required_scope` null)."""

    code = "INSUFFICIENT_SCOPE"

    def __init__(self, required_scope: str | None) -> None:
        reason = (
            f"This API token lacks the scope {required_scope}"
            if required_scope
            else "This route needs a login token: API tokens may not call it"
        )
        super().__init__(reason=reason, required_scope=required_scope)


class Conflict(AppError):
    """The resource's state does not allow this now."""

    status_code = status.HTTP_409_CONFLICT
    code = "CONFLICT"


class Unprocessable(AppError):
    """A payload that is well-formed but breaks a domain rule checked by a service (422, with
    its code beside FastAPI's validation 422)."""

    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
    code = "UNPROCESSABLE"


class Unauthorized(AppError):
    """No valid token where one is needed; answered with WWW-Authenticate: Bearer."""

    status_code = status.HTTP_401_UNAUTHORIZED
    code = "UNAUTHORIZED"

    @property
    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class PreconditionFailed(AppError):
    """If-Match named no current version of the resource; answered with its current ETag."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    code = "PRECONDITION_FAILED"

    def __init__(self, *, etag: str) -> None:
        super().__init__()
        self.etag = etag

    @property
    def headers(self) -> dict[str, str] | None:
        return {"ETag": self.etag}


class RequestTooLarge(AppError):
    """The body is over 1 MiB."""

    status_code = status.HTTP_413_CONTENT_TOO_LARGE
    code = "REQUEST_TOO_LARGE"


class TooManyRequests(AppError):
    """Past AUTH_RATE_LIMIT for this client IP; Retry-After says when to retry."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "TOO_MANY_REQUESTS"

    def __init__(self, *, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)}


class ServiceUnavailable(AppError):
    """The database does not answer; retry after Retry-After seconds."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "SERVICE_UNAVAILABLE"


def invalid_body(errors: Sequence[Any]) -> RequestValidationError:
    """Body errors found after parsing (a merged PATCH), in FastAPI's 422 shape."""
    return RequestValidationError(
        [{**error, "loc": ("body", *error.get("loc", ()))} for error in errors]
    )


_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    # "sorry, too many clients already" / "too many connections for role" (53300): the server
    # is up but takes no more connections, which passes like any outage.
    asyncpg.TooManyConnectionsError,
    ConnectionError,
    asyncio.TimeoutError,
    OSError,
)


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether `exc` or an exception it was raised from or during is one of `kinds`."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return _caused_by(exc, _UNAVAILABLE)


# Text PostgreSQL cannot store: NUL characters (22021), \u0000 in jsonb (22P05).
_UNSTORABLE_TEXT = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)


def is_unstorable_text(exc: BaseException) -> bool:
    return _caused_by(exc, _UNSTORABLE_TEXT)


async def _app_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def service_unavailable_response(rid: str) -> JSONResponse:
    """503 SERVICE_UNAVAILABLE, with the request id and Retry-After."""
    return JSONResponse(
        {"detail": ServiceUnavailable.code, "request_id": rid},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def unexpected_error_response(exc: Exception, rid: str) -> JSONResponse:
    """An exception no route handled: 422 for text PostgreSQL cannot store, 503 when the
    database is unreachable, else a logged 500. Never a stack trace or SQL to the client."""
    if is_unstorable_text(exc):
        return JSONResponse(
            {
                "detail": [
                    {
                        "type": "string_unicode",
                        "loc": ["request"],
                        "msg": "Text must not contain NUL (\\u0000) characters",
                        "input": None,
                    }
                ]
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    if is_database_unavailable(exc):
        log.warning("database_unavailable", error=repr(exc), request_id=rid)
        return service_unavailable_response(rid)
    log.error("unhandled_error", request_id=rid, exc_info=exc)
    return JSONResponse(
        {"detail": "INTERNAL_ERROR", "request_id": rid},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


class UnhandledErrorMiddleware:
    """Answers what no exception handler took, inside the middleware stack.

    Starlette's own `Exception` handler runs in its outermost layer and re-raises after
    answering: uvicorn then logs a traceback, drops the keep-alive connection and the answer
    misses the X-Request-ID header. Here the client gets the response and keeps its connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            rid = str(scope.get("state", {}).get("request_id", "-"))
            await unexpected_error_response(exc, rid)(scope, receive, send)


# What FastAPI answers (400) for a body it cannot decode, such as invalid UTF-8.
UNPARSABLE_BODY = "There was an error parsing the body"


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 body, also when the echoed input cannot be encoded as UTF-8."""
    assert isinstance(exc, RequestValidationError)
    try:
        return await request_validation_exception_handler(request, exc)
    except UnicodeEncodeError:
        # The echoed input holds an unpaired surrogate ("\ud800" in the request's JSON), which
        # UTF-8 cannot encode: escape it rather than fail with a 500.
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")


def _unparsable_body() -> RequestValidationError:
    """A payload that is not JSON text is a payload validation error: FastAPI's 422 shape."""
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body",),
                "msg": "Body is not valid JSON text",
                "input": None,
            }
        ]
    )


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette/FastAPI HTTPExceptions (fastapi-users raises these) in the API's shapes."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.detail == UNPARSABLE_BODY:
        return await _validation_error_handler(request, _unparsable_body())
    detail = exc.detail
    if detail == HTTPStatus(exc.status_code).phrase:
        # fastapi-users' bare "Unauthorized"/"Forbidden": the API's codes are UPPER_SNAKE.
        detail = detail.upper().replace(" ", "_")
    headers = dict(exc.headers or {})
    if exc.status_code == status.HTTP_401_UNAUTHORIZED:
        headers["WWW-Authenticate"] = "Bearer"
    return await http_exception_handler(
        request, HTTPException(exc.status_code, detail=detail, headers=headers or None)
    )


# What a caller's credentials would have been refused with before its body was read (see
# register_error_handlers); None: nothing.
RefusalBeforeBody = Callable[[Request], Awaitable["AppError | None"]]


def register_error_handlers(
    app: FastAPI, *, refusal_before_body: RefusalBeforeBody | None = None
) -> None:
    """The handlers. FastAPI rejects a body that is not JSON before any dependency runs:
    `refusal_before_body` then gives the answer the authentication would have given first."""

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        unparsable = any(error.get("type") == "json_invalid" for error in exc.errors())
        if unparsable and refusal_before_body is not None:
            refusal = await refusal_before_body(request)
            if refusal is not None:
                return await _app_error_handler(request, refusal)
        return await _validation_error_handler(request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.detail == UNPARSABLE_BODY:
            return await validation_error(request, _unparsable_body())
        return await _http_error_handler(request, exc)

    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
