"""The real app plus one route that logs through structlog and through a stdlib logger, for the
log tests against a server process (tests/test_logging.py)."""

import logging

import structlog
from fastapi import FastAPI

from api.main import create_app as create_real_app


def create_app() -> FastAPI:
    app = create_real_app()

    @app.get("/test-log")
    async def test_log() -> dict[str, str]:
        structlog.get_logger("tests.app").warning(
            "structlog_line",
            email="ada@example.com",
            note="write to ada@example.com",
            headers={"Authorization": "Bearer secret-token-value"},
        )
        logging.getLogger("tests.stdlib").warning("stdlib line about %s", "bob@example.com")
        return {"status": "logged"}

    return app
