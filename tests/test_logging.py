"""Logs of a real server process in production: JSON lines, a request id on every line of a
request (taken from X-Request-ID or made up), an access line per request, and no password,
token or email address anywhere."""

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api.logging import redact
from api.users.models import User
from tests.support import Mailbox, ServerProcess, run_server

PASSWORD = "correct horse battery staple 42"
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "INFO",
        "RUN_WORKER_IN_PROCESS": "true",
    }
    with run_server(env, workers=1, target="tests.apps.logging_app:create_app") as process:
        yield process


@pytest.fixture(scope="module")
async def session_log(
    server: ServerProcess, mailbox_server: Mailbox, engine: AsyncEngine
) -> AsyncIterator[dict[str, Any]]:
    """Drives one account through sign-up, login, a token request and forgot-password, then
    hands the test the server's log lines and what must not appear in them."""
    email = f"log-{uuid.uuid4().hex[:10]}@example.com"
    seen: dict[str, Any] = {"email": email}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        register = await client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "nickname": f"log_{uuid.uuid4().hex[:8]}"},
        )
        assert register.status_code == 201, register.text
        seen["register_id"] = register.headers["X-Request-ID"]
        async with AsyncSession(engine) as session:
            await session.execute(
                update(User).where(col(User.email) == email).values(is_verified=True)
            )
            await session.commit()
        login = await client.post(
            "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        seen["token"] = token
        me = await client.get(
            "/api/v1/users/me",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-42"},
        )
        assert me.status_code == 200
        seen["me_header"] = me.headers["X-Request-ID"]
        feed = await client.get(
            "/api/v1/users/me/calendar-feed", headers={"Authorization": f"Bearer {token}"}
        )
        assert feed.status_code == 200, feed.text
        feed_path = urlsplit(feed.json()["url"]).path
        seen["feed_token"] = feed_path.removeprefix("/api/v1/calendar/").removesuffix(".ics")
        calendar = await client.get(feed_path)
        assert calendar.status_code == 200
        seen["feed_id"] = calendar.headers["X-Request-ID"]
        forgot = await client.post("/api/v1/auth/forgot-password", json={"email": email})
        assert forgot.status_code == 202
        logged = await client.get("/test-log", headers={"X-Request-ID": "log-test-1"})
        assert logged.status_code == 200
        forged = await client.get("/health", headers={"X-Request-ID": "forged id\tlevel=error"})
        seen["forged_header"] = forged.headers["X-Request-ID"]
        missing = await client.get("/api/v1/events/00000000-0000-0000-0000-000000000000")
        assert missing.status_code == 404
        seen["missing_id"] = missing.headers["X-Request-ID"]
        unknown = await client.get("/no/such/path/ada@example.com")
        assert unknown.status_code == 404
        seen["unknown_id"] = unknown.headers["X-Request-ID"]
    # The verification and reset mails are delivered by the in-process worker, which logs it.
    for _ in range(100):
        if len(mailbox_server.to(email)) >= 2:
            break
        await asyncio.sleep(0.1)
    assert len(mailbox_server.to(email)) == 2
    await asyncio.sleep(0.3)  # the "mail_sent" line follows the delivery
    lines = server.log().splitlines()
    seen["records"] = [json.loads(line) for line in lines if line.startswith("{")]
    seen["text"] = "\n".join(lines)
    yield seen
    async with AsyncSession(engine) as session:
        # Tokens, notifications and preferences go with the user (ON DELETE CASCADE).
        await session.execute(delete(User).where(col(User.email) == email))
        await session.commit()


def access_lines(records: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("request_id") == request_id and r["event"] == "request"]


def test_every_line_after_startup_is_a_json_object(session_log: dict[str, Any]) -> None:
    # Lines before the app configures logging come from uvicorn's own setup (--log-level warning
    # prints none of them); everything else is JSON.
    text_lines = [line for line in session_log["text"].splitlines() if line.strip()]
    assert text_lines
    assert all(line.startswith("{") for line in text_lines), text_lines[:5]
    for record in session_log["records"]:
        assert {"event", "level", "timestamp", "logger"} <= set(record)


def test_caller_request_id_is_kept_and_on_the_access_line(session_log: dict[str, Any]) -> None:
    assert session_log["me_header"] == "trace-42"
    [line] = access_lines(session_log["records"], "trace-42")
    assert line["logger"] == "api.access"
    assert line["level"] == "info"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/v1/users/me", 200)
    assert line["client"] == "127.0.0.1"  # the peer: no proxy header was sent
    assert isinstance(line["duration_ms"], float)
    assert 0 < line["duration_ms"] < 5000


def test_route_template_not_the_path(session_log: dict[str, Any]) -> None:
    [line] = access_lines(session_log["records"], session_log["missing_id"])
    assert line["route"] == "/api/v1/events/{event_id}"
    assert line["status"] == 404
    assert "00000000-0000" not in json.dumps(line)


@pytest.mark.security("PRIV-1")
def test_a_calendar_feed_is_logged_by_its_template_not_its_token(
    session_log: dict[str, Any],
) -> None:
    assert len(session_log["feed_token"]) == 32
    [line] = access_lines(session_log["records"], session_log["feed_id"])
    assert (line["route"], line["status"]) == ("/api/v1/calendar/{feed_token}.ics", 200)
    assert session_log["feed_token"] not in session_log["text"]


def test_a_path_no_route_matches_has_no_route(session_log: dict[str, Any]) -> None:
    [line] = access_lines(session_log["records"], session_log["unknown_id"])
    assert (line["method"], line["route"], line["status"]) == ("GET", None, 404)
    assert "/no/such" not in json.dumps(line)


def test_a_made_up_request_id_when_none_or_a_forged_one_is_sent(
    session_log: dict[str, Any],
) -> None:
    assert REQUEST_ID.fullmatch(session_log["register_id"])
    assert REQUEST_ID.fullmatch(session_log["forged_header"])
    [line] = access_lines(session_log["records"], session_log["register_id"])
    assert (line["method"], line["route"], line["status"]) == ("POST", "/api/v1/auth/register", 201)
    assert "forged id" not in session_log["text"]


def test_every_line_of_a_request_carries_its_id(session_log: dict[str, Any]) -> None:
    lines = [r for r in session_log["records"] if r.get("request_id") == "log-test-1"]
    assert [(r["logger"], r["event"]) for r in lines] == [
        ("tests.app", "structlog_line"),
        ("tests.stdlib", "stdlib line about [email]"),
        ("api.access", "request"),
    ]


def test_secrets_and_addresses_are_redacted(session_log: dict[str, Any]) -> None:
    [structlog_line] = [r for r in session_log["records"] if r["event"] == "structlog_line"]
    assert structlog_line["email"] == "[redacted]"
    assert structlog_line["note"] == "write to [email]"
    assert structlog_line["headers"] == {"Authorization": "[redacted]"}
    everything = session_log["text"]
    for secret in (
        session_log["email"],
        PASSWORD,
        session_log["token"],
        "secret-token-value",
        "ada@example.com",
        "bob@example.com",
        "$argon2",
    ):
        assert secret not in everything


def test_mail_delivery_is_logged_without_the_recipient(session_log: dict[str, Any]) -> None:
    sent = [r for r in session_log["records"] if r["event"] == "mail_sent"]
    assert len(sent) == 2
    assert {r["subject"] for r in sent} == {
        "Verify your email for event-manager",
        "Reset your event-manager password",
    }
    assert all("to" not in r for r in sent)
    assert all(r["message_id"].startswith("<") and r["message_id"].endswith(">") for r in sent)
    assert all("[email]" not in r["message_id"] for r in sent)


def test_redact_processor() -> None:
    record = redact(
        None,
        "info",
        {
            "event": "Started for bob@example.com",
            "color_message": "\x1b[36mStarted\x1b[0m",  # uvicorn's coloured copy: dropped
            "Password": "hunter2",
            "message_id": "<123.456@event-manager.local>",
            "header": "Bearer abc.def",
            "nested": [{"token": "t"}, "mail carol@example.org"],
        },
    )
    assert record == {
        "event": "Started for [email]",
        "Password": "[redacted]",
        "message_id": "<123.456@event-manager.local>",
        "header": "Bearer [redacted]",
        "nested": [{"token": "[redacted]"}, "mail [email]"],
    }


def test_redaction_ignores_case_and_leaves_plain_text_alone() -> None:
    record = redact(
        None,
        "info",
        {
            "event": "auth",
            "header": "BEARER abc",
            "other": "bEaReR\txyz and ops@example.com",
            "plain": "no address @ here, no token bearer",
        },
    )
    assert record == {
        "event": "auth",
        "header": "BEARER [redacted]",
        "other": "bEaReR\t[redacted] and [email]",
        "plain": "no address @ here, no token bearer",
    }
