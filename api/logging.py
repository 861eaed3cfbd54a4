"""Logs: readable lines in development, JSON lines elsewhere, one request id per request.

Everything goes through one stdlib handler with a structlog formatter: our own `structlog` loggers
and the libraries' stdlib loggers (uvicorn, SQLAlchemy, pgqueuer) alike, so every line of a
request carries its `request_id`. Secrets never reach the output: keys that name a password,
token or address are replaced, and email addresses inside any string are masked.
"""

import logging
import logging.config
import re
import sys
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

import structlog
from prometheus_fastapi_instrumentator.routing import get_route_name
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.config import Environment, settings

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is kept when it is short and plain (no spaces or control characters to forge
# log lines with); anything else is replaced by a fresh one.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {
        "password",
        "new_password",
        "current_password",
        "hashed_password",
        "token",
        "access_token",
        "authorization",
        "cookie",
        "secret",
        "secret_key",
        "email",
        "to",
        "username",
    }
)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
BEARER = re.compile(r"(?i)(bearer\s+)\S+")

log = structlog.get_logger("api.access")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return BEARER.sub(rf"\1{REDACTED}", EMAIL.sub("[email]", value))
    if isinstance(value, dict):
        return {key: _redact_item(key, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def _redact_item(key: Any, value: Any) -> Any:
    name = str(key).lower()
    if name in SENSITIVE_KEYS:
        return REDACTED
    # A Message-ID looks like an address (<id@host>) but names no one: kept for tracing.
    return value if name == "message_id" else _scrub(value)


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no password, token or email address leaves the process."""
    event_dict.pop("color_message", None)  # uvicorn's copy of the message with ANSI colours
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact_item(key, value)
    return event_dict


def _shared_processors() -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]


def build_formatter() -> logging.Formatter:
    """The one formatter: JSON lines, or readable lines in development."""
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if settings.ENVIRONMENT is Environment.DEVELOPMENT
        else structlog.processors.JSONRenderer()
    )
    return structlog.stdlib.ProcessorFormatter(
        # Extras first, so that the redaction sees them too.
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *_shared_processors()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def logging_config() -> dict[str, Any]:
    """dictConfig for uvicorn's `log_config`: each worker process formats from its first line."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {"()": build_formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "structlog",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": settings.LOG_LEVEL.upper()},
        # uvicorn's loggers would print with their own handlers and format: ours instead.
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # RequestIdMiddleware writes the access log, with the route template and timing.
            "uvicorn.access": {"handlers": [], "propagate": False},
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure_logging() -> None:
    logging.config.dictConfig(logging_config())
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.LOG_LEVEL.upper()]
        ),
        cache_logger_on_first_use=True,
    )


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = str(value.decode("latin-1"))
            if VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives each request an id (the caller's X-Request-ID when it is plain, else a new one),
    returns it as X-Request-ID, binds it to every log line of the request, and writes the
    access log line: method, route template, status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status_code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message["headers"] = [
                    *(
                        (name, value)
                        for name, value in message.get("headers", [])
                        if name.lower() != b"x-request-id"
                    ),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                # The template (/api/v1/events/{event_id}), not the path: no ids or addresses.
                route=get_route_name(HTTPConnection(scope), should_include_root_path=False),
                status=status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
