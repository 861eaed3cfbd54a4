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
from collections.abc import MutableMapping
from typing import Any

import structlog

from api.config import Environment, settings

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


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        # Most values hold neither an "@" nor "bearer" (in any case), which both patterns need:
        # the substring tests skip the two regex passes for them, on every line written.
        if "@" in value:
            value = EMAIL.sub("[email]", value)
        if "bearer" in value.lower():
            value = BEARER.sub(rf"\1{REDACTED}", value)
        return value
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
            # api.observability writes the access log, with the route template and timing.
            "uvicorn.access": {"handlers": [], "propagate": False},
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure_logging() -> None:
    logging.config.dictConfig(logging_config())
    # No line shows the caller's file, thread or process, so records need not look them up
    # (the "Optimization" table of the logging HOWTO): a sixth of the cost of a line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.LOG_LEVEL.upper()]
        ),
        cache_logger_on_first_use=True,
    )
