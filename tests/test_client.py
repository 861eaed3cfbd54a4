"""The generated Python client (`make client`).

The client is generated afresh into a temporary directory by the same `make client` a developer
runs (the OpenAPI document written by `event-manager openapi`, then openapi-python-client), and
must come out without a single warning. It is then imported from there and drives a whole flow
against a real server with its own throwaway database, through its typed functions and models
only: sign-up, verification with the token from the mail, login, an event created by one
manager and approved by another, a registration, the notifications and the calendar file.
"""

import importlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.factories import DEFAULT_PASSWORD
from tests.support import (
    ROOT,
    Mailbox,
    ServerProcess,
    TestDatabaseServer,
    run_server,
)

PACKAGE = "event_manager_client"
ADMIN_EMAIL = "client-admin@example.com"
VERIFY_LINK = re.compile(r"/verify-email\?token=(\S+)")


@dataclass(frozen=True)
class Generation:
    directory: Path
    output: str  # what `make client` printed, generator included


@pytest.fixture(scope="module")
def generation(tmp_path_factory: pytest.TempPathFactory) -> Generation:
    out = tmp_path_factory.mktemp("client")
    # A make or a virtual environment around the suite must not leak into the run.
    leave_out = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VIRTUAL_ENV"}
    result = subprocess.run(
        [
            "make",
            "--silent",
            "--no-print-directory",
            "client",
            f"OPENAPI_DOCUMENT={out / 'openapi.json'}",
            f"CLIENT_DIR={out / 'python'}",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in leave_out},
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return Generation(out / "python", output)


class Generated:
    """The generated package, imported from the directory it was generated into."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.models = importlib.import_module(f"{PACKAGE}.models")
        self.client = importlib.import_module(PACKAGE)

    def operation(self, tag: str, name: str) -> Any:
        """The module of one operation (`sync`, `sync_detailed`, ...): api/<tag>/<name>.py."""
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")


@pytest.fixture(scope="module")
def generated(generation: Generation) -> Iterator[Generated]:
    sys.path.insert(0, str(generation.directory))
    try:
        yield Generated(generation.directory)
    finally:
        sys.path.remove(str(generation.directory))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def server(db_server: TestDatabaseServer, smtp_port: int) -> Iterator[ServerProcess]:
    env = {
        "RUN_WORKER_IN_PROCESS": "true",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_STARTTLS": "false",
        "AUTH_RATE_LIMIT": "off",
        "FIRST_ADMIN_EMAIL": ADMIN_EMAIL,
        "FIRST_ADMIN_PASSWORD": DEFAULT_PASSWORD,
    }
    with run_server(env, workers=1, own_database=db_server) as process:
        yield process


def test_generation_prints_no_warning(generation: Generation) -> None:
    assert "warning" not in generation.output.lower(), generation.output
    assert (generation.directory / PACKAGE / "api" / "events" / "list_events.py").is_file()
    assert (generation.directory / PACKAGE / "models" / "body_auth_login.py").is_file()


def verification_token(mailbox: Mailbox, email: str) -> str:
    """The token of the verification link mailed to `email` (polled: the worker sends it)."""
    deadline = time.monotonic() + 30
    while not mailbox.to(email):
        assert time.monotonic() < deadline, f"no mail to {email}"
        time.sleep(0.1)
    [message] = mailbox.to(email)
    found = VERIFY_LINK.search(Mailbox.text(message))
    assert found is not None, Mailbox.text(message)
    return found.group(1)


def test_whole_flow_through_the_generated_client(
    generated: Generated, server: ServerProcess, process_mailbox: Mailbox
) -> None:
    m, op, c = generated.models, generated.operation, generated.client
    anonymous = c.Client(base_url=server.base_url, raise_on_unexpected_status=True)

    def log_in(email: str) -> Any:
        body = m.BodyAuthLogin(username=email, password=DEFAULT_PASSWORD)
        bearer = op("auth", "auth_login").sync(client=anonymous, body=body)
        assert isinstance(bearer, m.BearerResponse), bearer
        assert bearer.token_type == "bearer"
        return c.AuthenticatedClient(
            base_url=server.base_url, token=bearer.access_token, raise_on_unexpected_status=True
        )

    def sign_up(email: str) -> Any:
        """Register, then verify with the token from the mail: the verified account."""
        body = m.UserCreate(email=email, password=DEFAULT_PASSWORD)
        registered = op("auth", "auth_register").sync(client=anonymous, body=body)
        assert isinstance(registered, m.UserRead), registered
        assert (registered.email, registered.is_verified, registered.role) == (
            email,
            False,
            m.UserRole.ANONYMOUS,
        )
        token = verification_token(process_mailbox, email)
        verified = op("auth", "auth_verify").sync(client=anonymous, body=m.BodyAuthVerify(token))
        assert isinstance(verified, m.UserRead), verified
        assert (verified.id, verified.is_verified, verified.role) == (
            registered.id,
            True,
            m.UserRole.AUTHENTICATED,
        )
        return verified

    assert op("operations", "check_health").sync(client=anonymous).status == "ok"

    # Accounts: the first admin (from FIRST_ADMIN_*) promotes one sign-up to manager and
    # creates a second manager; a third sign-up stays a verified user.
    admin = log_in(ADMIN_EMAIL)
    creator_account = sign_up("client-creator@example.com")
    promoted = op("users", "set_user_role").sync(
        client=admin, user_id=creator_account.id, body=m.RoleChange(role=m.UserRole.MANAGER)
    )
    assert isinstance(promoted, m.UserRead), promoted
    assert promoted.role == m.UserRole.MANAGER
    reviewer_account = op("users", "create_user").sync(
        client=admin,
        body=m.UserAdminCreate(
            email="client-reviewer@example.com",
            password=DEFAULT_PASSWORD,
            role=m.UserRole.MANAGER,
        ),
    )
    assert isinstance(reviewer_account, m.UserRead), reviewer_account
    attendee_account = sign_up("client-attendee@example.com")
    creator, reviewer = log_in(creator_account.email), log_in(reviewer_account.email)
    attendee = log_in(attendee_account.email)
    me = op("users", "get_my_account").sync(client=attendee)
    assert (me.id, me.email) == (attendee_account.id, "client-attendee@example.com")

    # An event: proposed by one manager, published by another.
    starts_at = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    proposed = op("events", "create_event").sync(
        client=creator,
        body=m.EventCreate(
            title="Generated clients in practice",
            event_type=m.EventType.WORKSHOP,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
            location="Room 1",
            capacity=10,
        ),
    )
    assert isinstance(proposed, m.EventPublic), proposed
    assert proposed.status == m.EventStatus.PENDING
    approved = op("events", "approve_event").sync(client=reviewer, event_id=proposed.id)
    assert isinstance(approved, m.EventPublic), approved
    assert approved.status == m.EventStatus.PUBLISHED

    listed = op("events", "list_events").sync(client=anonymous)
    assert isinstance(listed, m.EventPage), listed
    assert ([e.id for e in listed.items], listed.total) == ([proposed.id], 1)
    got = op("events", "get_event").sync(client=attendee, event_id=proposed.id)
    assert (got.title, got.starts_at) == ("Generated clients in practice", starts_at)

    # A verified user takes a seat.
    registration = op("events", "register_for_event").sync(client=attendee, event_id=proposed.id)
    assert isinstance(registration, m.RegistrationOwnerView), registration
    assert (registration.event_id, registration.status) == (
        proposed.id,
        m.RegistrationStatus.CONFIRMED,
    )
    assert len(registration.checkin_code) == 10
    mine = op("registrations", "list_my_registrations").sync(client=attendee)
    assert isinstance(mine, m.OwnRegistrationPage), mine
    assert [r.id for r in mine.items] == [registration.id]

    # Notifications, newest first.
    def kinds(client: Any) -> list[Any]:
        page = op("notifications", "list_notifications").sync(client=client)
        assert isinstance(page, m.NotificationPage), page
        return [n.kind for n in page.items]

    assert kinds(attendee) == [m.NotificationKind.REGISTRATION_CONFIRMED]
    assert kinds(creator) == [m.NotificationKind.EVENT_APPROVED, m.NotificationKind.ROLE_CHANGED]
    assert kinds(reviewer) == [m.NotificationKind.EVENT_SUBMITTED]

    # The calendar file.
    calendar = op("events", "get_event_calendar").sync_detailed(
        client=attendee, event_id=proposed.id
    )
    assert calendar.status_code == 200
    assert calendar.headers["content-type"].startswith("text/calendar")
    assert calendar.parsed.startswith("BEGIN:VCALENDAR")
    assert "SUMMARY:Generated clients in practice" in calendar.parsed

    # Logging out revokes the token.
    assert op("auth", "auth_logout").sync_detailed(client=attendee).status_code == 204
    assert op("users", "get_my_account").sync_detailed(client=attendee).status_code == 401


def test_the_generator_environment_is_pinned_whole() -> None:
    """`make client` runs the generator release the Makefile names, with every package of its
    tool environment pinned by clients/generator-constraints.txt."""
    makefile = (ROOT / "Makefile").read_text()
    generator = re.search(r"^OPENAPI_PYTHON_CLIENT := (\S+)$", makefile, re.MULTILINE)
    assert generator is not None
    pins = [
        line
        for line in (ROOT / "clients" / "generator-constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert generator.group(1) in pins
    assert all(re.fullmatch(r"[a-z0-9-]+==[0-9][0-9a-z.]*", pin) for pin in pins), pins
    assert "--constraints clients/generator-constraints.txt" in makefile
