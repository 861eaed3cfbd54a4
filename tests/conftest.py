"""Suite-wide fixtures.

The suite never touches a developer's database: it creates its own throwaway database (on the
server in TEST_DATABASE_URL, or on an embedded PostgreSQL in a temporary directory), applies the
real Alembic migrations once, runs each test in a transaction that is rolled back, and drops the
database at the end. Mail goes over real SMTP to an in-process aiosmtpd server.
"""

import os

from tests.support import Mailbox, TestDatabaseServer, free_port, smtp_server

SMTP_PORT = free_port()
# Settings are read when `api` is first imported: configure the environment before that.
os.environ.update(
    ENVIRONMENT="test",
    SECRET_KEY="test-secret-key-that-is-long-enough-for-hs256",
    PUBLIC_BASE_URL="http://testserver",
    AUTH_RATE_LIMIT="off",
    PASSWORD_HASH_TIME_COST="1",
    PASSWORD_HASH_MEMORY_KIB="1024",
    SMTP_HOST="127.0.0.1",
    SMTP_PORT=str(SMTP_PORT),
    SMTP_STARTTLS="false",
    SMTP_TIMEOUT_SECONDS="5",
    MAIL_FROM="no-reply@event-manager.test",
    RUN_WORKER_IN_PROCESS="false",
    # Webhook receivers in tests listen on 127.0.0.1; the SSRF tests turn this off again.
    WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
    LOG_LEVEL="WARNING",
    # A server a test stops with SIGTERM exits without the balancer drain, unless the test is
    # about the drain and sets it.
    SHUTDOWN_DRAIN_SECONDS="0",
)
for name in ("FIRST_ADMIN_EMAIL", "FIRST_ADMIN_PASSWORD"):
    os.environ.pop(name, None)

_server = TestDatabaseServer()
TEST_DB_NAME = _server.create_database()
TEST_DATABASE_URL = _server.url_for(TEST_DB_NAME)
os.environ["DATABASE_URL"] = TEST_DATABASE_URL

# ruff: noqa: E402  (the imports below must see the environment above)
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api import ratelimit
from api.config import settings
from api.db import create_engine, get_session
from api.logging import configure_logging
from api.main import create_app
from api.networking.models import Connection, ConnectionStatus
from api.registrations.models import Registration
from api.testing import service as testing_service
from api.tokens.models import ApiToken, hash_api_token, is_api_token
from api.users.models import AccessToken, User, UserRole, hash_token
from tests import factories
from tests.leaks import Caller, LeakScanner
from tests.support import FIGURES, ROOT, vacuum


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


def pytest_sessionstart(session: pytest.Session) -> None:
    configure_logging()  # JSON lines at LOG_LEVEL (WARNING), as in production
    command.upgrade(alembic_config(TEST_DATABASE_URL), "head")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures the timing and load tests measured (AUTH-1, RST-1, REL-2 ...)."""
    if FIGURES:
        terminalreporter.section("measured figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _server.drop_database(TEST_DB_NAME)
    _server.stop()


@pytest.fixture(autouse=True)
def real_time() -> Iterator[None]:
    """A test that set the test clock (PUT /api/v1/testing/clock) leaves the process on real
    time: its row goes with the rolled-back transaction, the offset applied here goes now."""
    yield
    testing_service.forget_setting()


@pytest.fixture(scope="session")
def db_server() -> TestDatabaseServer:
    return _server


@pytest.fixture(scope="session")
def mailbox_server() -> Iterator[Mailbox]:
    box = Mailbox()
    with smtp_server(box, SMTP_PORT):
        yield box


@pytest.fixture(scope="module")
def smtp_port() -> int:
    """The SMTP port of this module's own service processes (process_mailbox listens on it)."""
    return free_port()


@pytest.fixture(scope="module")
def process_mailbox(smtp_port: int) -> Iterator[Mailbox]:
    """What this module's own service processes mail, received on smtp_port."""
    box = Mailbox()
    with smtp_server(box, smtp_port):
        yield box


@pytest.fixture
def mailbox(mailbox_server: Mailbox) -> Iterator[Mailbox]:
    mailbox_server.clear()
    mailbox_server.refuse = False
    yield mailbox_server
    mailbox_server.refuse = False


@pytest.fixture(scope="session")
async def engine() -> AsyncIterator[AsyncEngine]:
    engine = create_engine(TEST_DATABASE_URL, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test.

    The app's own commits only release savepoints (join_transaction_mode="create_savepoint").
    """
    async with engine.connect() as connection:
        transaction = await connection.begin()
        db = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield db
        finally:
            await db.close()
            await transaction.rollback()


@pytest.fixture
async def vacuum_afterwards(engine: AsyncEngine) -> AsyncIterator[None]:
    """For tests that bulk-load rows: VACUUM the tables they load once the rows are rolled back,
    so that the dead rows do not sway the query plans of later tests.

    Request it with `pytest.mark.usefixtures`, which sets it up before `session`, so that it
    tears down after the rollback."""
    yield
    await vacuum(engine, "event", "registration", "notification")


@pytest.fixture
def app(session: AsyncSession) -> Iterator[FastAPI]:
    application = create_app(run_worker=False)

    async def test_session() -> AsyncIterator[AsyncSession]:
        # What the test built before the request is "committed" first (that only releases a
        # savepoint), so a failed request rolls back its own work alone, as a real one does.
        await session.commit()
        try:
            yield session
        except BaseException:
            loaded = list(session.identity_map.values())
            await session.rollback()
            # The rollback expires loaded objects; reload them so the test can still read them.
            for obj in loaded:
                if obj in session:
                    await session.refresh(obj)
            raise
        await session.commit()

    @asynccontextmanager
    async def short_session() -> AsyncIterator[AsyncSession]:
        # Work the app does in a session of its own (after a response, in an error handler)
        # runs in the test's transaction too, after the request's own work.
        yield session

    application.dependency_overrides[get_session] = test_session
    application.state.open_session = short_session
    ratelimit.reset()
    yield application
    ratelimit.reset()


@pytest.fixture
def leak_scanner(session: AsyncSession) -> LeakScanner:
    """AC-2 for every test: callers and users are read in the test's own transaction."""

    async def resolve(token: str) -> Caller | None:
        statement = (
            select(col(User.id), col(User.role))
            .join(ApiToken, col(ApiToken.user_id) == col(User.id))
            .where(col(ApiToken.token_hash) == hash_api_token(token))
            if is_api_token(token)
            else select(col(User.id), col(User.role))
            .join(AccessToken, col(AccessToken.user_id) == col(User.id))
            .where(col(AccessToken.token) == hash_token(token))
        )
        row = (await session.execute(statement)).first()
        return Caller(row.id, str(row.role.value)) if row else None

    async def emails() -> list[tuple[uuid.UUID, str]]:
        rows = await session.execute(select(col(User.id), col(User.email)))
        return [(row.id, row.email) for row in rows]

    async def codes() -> list[tuple[uuid.UUID, str]]:
        rows = await session.execute(
            select(col(Registration.user_id), col(Registration.checkin_code)).where(
                col(Registration.checkin_code).is_not(None)
            )
        )
        return [(user_id, code) for user_id, code in rows]

    async def contacts(user_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await session.execute(
            select(col(Connection.requester_id), col(Connection.addressee_id)).where(
                col(Connection.status) == ConnectionStatus.ACCEPTED,
                or_(
                    col(Connection.requester_id) == user_id,
                    col(Connection.addressee_id) == user_id,
                ),
            )
        )
        return [addressee if requester == user_id else requester for requester, addressee in rows]

    return LeakScanner(resolve, emails, codes, contacts)


@pytest.fixture
async def client(app: FastAPI, leak_scanner: LeakScanner) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks=leak_scanner.hooks
    ) as client:
        yield client


@pytest.fixture
def rate_limit(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Turn the auth throttle on for one test: rate_limit("3/minute")."""

    def set_limit(limit: str) -> None:
        monkeypatch.setattr(settings, "AUTH_RATE_LIMIT", limit)
        ratelimit.reset()

    return set_limit


@pytest.fixture
async def user(session: AsyncSession) -> User:
    return await factories.create_user(session, role=UserRole.AUTHENTICATED)


@pytest.fixture
async def unverified_user(session: AsyncSession) -> User:
    return await factories.create_user(session, role=UserRole.ANONYMOUS, is_verified=False)


@pytest.fixture
async def manager(session: AsyncSession) -> User:
    return await factories.create_user(session, role=UserRole.MANAGER)


@pytest.fixture
async def admin(session: AsyncSession) -> User:
    return await factories.create_user(session, role=UserRole.ADMIN)


@pytest.fixture
def auth_as(session: AsyncSession) -> Callable[[User], Awaitable[dict[str, str]]]:
    """Bearer headers for a user, through a real access-token row (no login round trip)."""

    async def headers_for(user: User) -> dict[str, str]:
        return await factories.token_headers(session, user)

    return headers_for


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"
