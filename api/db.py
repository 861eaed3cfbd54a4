"""The async engine, the per-request session and the metadata naming convention."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel
from sqlalchemy import event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only
from sqlmodel import SQLModel
from starlette.requests import HTTPConnection

from api import embedded
from api.config import settings

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def to_asyncpg_url(url: str) -> str:
    """Accept postgres://, postgresql:// and postgresql+asyncpg:// alike."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@lru_cache
def get_database_url() -> str:
    """DATABASE_URL, or the embedded server's URL when it is unset."""
    if settings.DATABASE_URL:
        return to_asyncpg_url(settings.DATABASE_URL)
    return embedded.start(settings.DATA_DIR)


class DirectUrlMissing(RuntimeError):
    """DB_PGBOUNCER is true, WORKER_DATABASE_URL is unset, and this process would LISTEN or
    migrate: a transaction pooler cannot carry either."""


def get_worker_database_url() -> str:
    """The direct connection: WORKER_DATABASE_URL, else DATABASE_URL (or the embedded server).

    For what needs a server connection of its own, which a transaction pooler does not give: a
    LISTEN (the job worker's, the test clock's) hears nothing once its server connection goes to
    another client, and a migration may rely on its session (a setting, a lock, work outside a
    transaction) or hold a pooled connection for as long as its DDL takes.
    """
    if settings.WORKER_DATABASE_URL:
        return to_asyncpg_url(settings.WORKER_DATABASE_URL)
    if settings.DB_PGBOUNCER:
        raise DirectUrlMissing(
            "DB_PGBOUNCER is true but WORKER_DATABASE_URL is unset: the job worker and the test "
            "clock LISTEN, and migrations run, on a connection of their own, which a transaction "
            "pooler cannot give. Set WORKER_DATABASE_URL to a direct connection to PostgreSQL "
            "(not through PgBouncer), or run `serve --no-worker --no-migrate` outside "
            "ENVIRONMENT=test."
        )
    return get_database_url()


# A pooled connection must answer a ping within this time, or it is dropped for a fresh one.
PING_TIMEOUT_SECONDS = 1.0
# Only a connection idle for longer than this is pinged on checkout. One used a moment ago is
# trusted: under load that saves a round trip per request. If the database went away in that
# moment, the statement itself fails within DB_COMMAND_TIMEOUT_SECONDS, which is why that
# timeout stays below REL-1's 5 s.
PING_AFTER_IDLE_SECONDS = 1.0
# Key in a pool entry's `info`, which lives as long as its DBAPI connection (a reconnect starts
# with an empty dict): when the connection was last checked out or in.
LAST_USED = "event_manager_last_used"


def _ping_on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """pool_pre_ping with a short timeout of its own, for connections idle over 1 s.

    SQLAlchemy's pre-ping waits DB_COMMAND_TIMEOUT_SECONDS on a connection the network has
    swallowed, then 2 s more closing it politely. Here a silent connection is cut at once and
    the pool connects afresh (DB_CONNECT_TIMEOUT_SECONDS), within 5 s in all.
    """
    now = time.monotonic()
    last_used = record.info.get(LAST_USED)
    record.info[LAST_USED] = now
    if last_used is None or now - last_used <= PING_AFTER_IDLE_SECONDS:
        return  # just connected, or used a moment ago
    connection = dbapi_connection.driver_connection
    try:
        await_only(connection.execute("SELECT 1", timeout=PING_TIMEOUT_SECONDS))
    except Exception as error:
        connection.terminate()
        raise DisconnectionError("the database did not answer the pre-ping") from error


def _mark_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[LAST_USED] = time.monotonic()


def _cut_when_timed_out(context: ExceptionContext) -> None:
    """A statement that timed out (or was cancelled) leaves its connection mid-protocol.

    SQLAlchemy invalidates such a connection by closing it politely, which waits up to 2 s more
    on a network that swallows everything: cut it at once, as the pre-ping does, so that a
    request answers 503 within DB_COMMAND_TIMEOUT_SECONDS and not 2 s later. The other pooled
    connections are left alone (SQLAlchemy would recycle them all, each closed politely again):
    the pre-ping or their own statement timeout judges each of them.
    """
    if context.connection is None or not isinstance(
        context.original_exception, (TimeoutError, asyncio.CancelledError)
    ):
        return
    driver = context.connection.connection.driver_connection
    if driver is not None:
        driver.terminate()
    context.is_disconnect = True
    context.invalidate_pool_on_disconnect = False


# Through a transaction pooler (DB_PGBOUNCER), a client connection's next transaction may run on
# another server connection: one where its named prepared statement does not exist
# (InvalidSQLStatementNameError), or where another client prepared one of the same name, since
# asyncpg numbers them per connection (DuplicatePreparedStatementError). So no statement cache,
# in asyncpg or in SQLAlchemy's dialect, and every statement unnamed: with its cache off asyncpg
# sends an unnamed statement's Parse again with its Bind and Execute, in one message sequence
# that the pooler keeps on one server connection, inside a transaction or not (the autocommit
# reads of get_session). SQLAlchemy's documented recipe gives each statement a unique name (a
# uuid) instead; through PgBouncer 1.18 that failed for autocommit statements (prepared on one
# server connection, executed on another) and left statements behind on the server connections
# (one is closed only by the client's next statement, on whichever server that runs). Unnamed
# ones leave none: tests/test_pgbouncer.py shows both.
POOLER_CONNECT_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,  # asyncpg's own cache
    "prepared_statement_cache_size": 0,  # the dialect's cache
    "prepared_statement_name_func": lambda: "",  # "": PostgreSQL's unnamed statement
}


def create_engine(
    url: str | None = None,
    *,
    pool_size: int | None = None,
    timed_statements: bool = True,
    pgbouncer: bool | None = None,
) -> AsyncEngine:
    """The engine; with `timed_statements=False` a statement may run as long as it takes.

    `pgbouncer` (default: DB_PGBOUNCER) says that `url` leads through a transaction pooler.
    """
    size = pool_size or settings.DB_POOL_SIZE
    through_pooler = settings.DB_PGBOUNCER if pgbouncer is None else pgbouncer
    engine = create_async_engine(
        url or get_database_url(),
        # Up to DB_POOL_SIZE connections, all kept once opened: no "overflow", which SQLAlchemy
        # closes as soon as it is returned, so under steady load above the pool size every
        # request would connect afresh (a new PostgreSQL backend each time).
        pool_size=size,
        max_overflow=0,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        connect_args={
            "timeout": settings.DB_CONNECT_TIMEOUT_SECONDS,
            "command_timeout": settings.DB_COMMAND_TIMEOUT_SECONDS if timed_statements else None,
            "server_settings": {"application_name": "event-manager"},
            **(POOLER_CONNECT_ARGS if through_pooler else {}),
        },
    )
    event.listen(engine.sync_engine, "checkout", _ping_on_checkout)
    event.listen(engine.sync_engine, "checkin", _mark_checkin)
    event.listen(engine.sync_engine, "handle_error", _cut_when_timed_out)
    return engine


def asyncpg_dsn(url: str | None = None) -> str:
    """The database URL as asyncpg's own connect() takes it (no SQLAlchemy driver name)."""
    parsed = make_url(url or get_database_url()).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


@lru_cache
def get_engine() -> AsyncEngine:
    return create_engine()


@lru_cache
def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(get_engine(), expire_on_commit=False)


async def dispose_engine() -> None:
    if get_engine.cache_info().currsize:
        await get_engine().dispose()
        get_engine.cache_clear()
        get_sessionmaker.cache_clear()


def shown_columns(table: type[SQLModel], shape: type[BaseModel], *also: str) -> tuple[Any, ...]:
    """The columns of `table` that the public model `shape` shows, plus `also` (columns a shown
    field is computed from), in the table's order: for Core reads straight into that shape."""
    wanted = shape.model_fields.keys() | set(also)
    mapper = sa_inspect(table, raiseerr=True)
    return tuple(column for column in mapper.columns if column.key in wanted)


def contains_pattern(text: str) -> str:
    """An ILIKE pattern (escape character backslash) matching `text` anywhere, literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# Methods that never write: their statements run in autocommit mode (no BEGIN and COMMIT round
# trips). Under READ COMMITTED each statement sees its own snapshot either way.
READ_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: commit on success, roll back on any error (reads: none)."""
    async with get_sessionmaker()() as session:
        reading = request.method in READ_METHODS
        if reading:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        # A read's statements were committed one by one: its commit would only run SQLAlchemy's
        # bookkeeping, unless objects are still waiting to be flushed.
        if not reading or session.new or session.dirty or session.deleted:
            await session.commit()


def open_session(connection: HTTPConnection) -> AbstractAsyncContextManager[AsyncSession]:
    """A short session of its own, outside the request's: for work after the response, or in
    an exception handler. A test app sets `app.state.open_session` to share its transaction."""
    factory = getattr(connection.app.state, "open_session", None)
    if factory is not None:
        opened: AbstractAsyncContextManager[AsyncSession] = factory()
        return opened
    return get_sessionmaker()()


# scope="function": the commit happens before the response is sent, so a client never
# reads its own write before it is durable, and a failed commit still becomes an error response.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
