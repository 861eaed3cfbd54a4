"""One middleware for what every request leaves behind: its id, its access line, its metrics.

The route template is only known once the app has routed, so the middleware reads it from the
scope after the answer, once, for both the access line and the metrics: FastAPI leaves the matched
route's effective context (with the include prefix) in `scope["fastapi"]`, and a route of the app
itself in `scope["route"]`. Walking the routes again per request, as a separate instrumentator and
access logger did, cost more than the routing itself.
"""

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.config import settings
from api.metrics import HttpMetrics

REQUEST_ID_HEADER = b"x-request-id"
# A caller's id is kept when it is short and plain (no spaces or control characters to forge
# log lines with); anything else is replaced by a fresh one.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
ACCESS_LOGGER = "api.access"

_UNRESOLVED: Any = object()


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID when it is plain, else a new one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            candidate: str = value.decode("latin-1")
            if VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def fixed_headers() -> list[tuple[bytes, bytes]]:
    """The headers API.md puts on every answer: nosniff, and HSTS when the service is public
    over https (a browser then never tries it over plain http for a year)."""
    headers = [(b"x-content-type-options", b"nosniff")]
    if settings.PUBLIC_BASE_URL.startswith("https://"):
        headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    return headers


class ObservabilityMiddleware:
    """Gives each request an id (the caller's X-Request-ID when it is plain, else a new one),
    returns it as X-Request-ID with the `fixed_headers`, binds it to every log line of the
    request, writes the access line (method, route template, status, duration, client) and counts
    the request in `http_metrics`.

    Outermost in the stack, so that every answer carries these headers, the 500s and 503s of
    UnhandledErrorMiddleware and the 413s of BodySizeLimitMiddleware too."""

    def __init__(self, app: ASGIApp, *, http_metrics: HttpMetrics) -> None:
        self.app = app
        self.http_metrics = http_metrics
        self._fixed_headers = fixed_headers()
        self._replaced = {REQUEST_ID_HEADER, *(name for name, _ in self._fixed_headers)}
        # Resolved at the first request: logging is configured by the lifespan, which runs after
        # the middleware stack is built. None when INFO lines are filtered out anyway.
        self._access_info: Callable[..., Any] | None = _UNRESOLVED
        # Plain Starlette routes (/docs, /openapi.json) leave only their endpoint in the scope.
        self._plain_routes: dict[Any, str | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        id_header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))
        scope.setdefault("state", {})["request_id"] = request_id  # for api.errors' bodies
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500  # what the client gets when nothing was sent, as the server answers then

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *(
                        header
                        for header in message.get("headers", ())
                        if header[0].lower() not in self._replaced
                    ),
                    id_header,
                    *self._fixed_headers,
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = self.route_of(scope)
            self.http_metrics.observe(route, scope["path"], scope["method"], status, seconds)
            info = self._access_info
            if info is _UNRESOLVED:
                info = self._access_info = _access_info()
            if info is not None:
                info(
                    "request",
                    method=scope["method"],
                    # The template (/api/v1/events/{event_id}), not the path: no ids or addresses.
                    route=route,
                    status=status,
                    duration_ms=round(seconds * 1000, 2),
                    # As uvicorn resolved it: a trusted proxy's X-Forwarded-For included.
                    client=client[0] if (client := scope.get("client")) else None,
                )
            structlog.contextvars.unbind_contextvars("request_id")

    def route_of(self, scope: Scope) -> str | None:
        """The template of the route that answered; None when none matched (404, a redirect to
        the path with(out) its trailing slash, a body refused before routing)."""
        fastapi_scope = scope.get("fastapi")
        if fastapi_scope is not None:
            context = fastapi_scope.get("effective_route_context")
            if context is not None:
                path_format: str = context.path_format
                return path_format
        route = scope.get("route")
        if route is not None:
            return getattr(route, "path_format", None)
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return None
        try:
            return self._plain_routes[endpoint]
        except KeyError:
            return self._plain_route(scope, endpoint)

    def _plain_route(self, scope: Scope, endpoint: Any) -> str | None:
        # Read from the app's routes at the first miss; an endpoint found nowhere (a mounted
        # app's) is remembered as None rather than looked up again.
        found = {
            route.endpoint: route.path_format
            for route in getattr(scope.get("app"), "routes", ())
            if isinstance(route, Route)
        }
        self._plain_routes = {**self._plain_routes, **found}
        return self._plain_routes.setdefault(endpoint, None)


def _access_info() -> Callable[..., Any] | None:
    logger = structlog.get_logger(ACCESS_LOGGER).bind()
    return logger.info if logger.is_enabled_for(logging.INFO) else None
