"""The async engine, the per-request session and the metadata naming convention."""

from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Annotated

from fastapi import Depends
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel

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


def create_engine(url: str | None = None, *, pool_size: int | None = None) -> AsyncEngine:
    size = pool_size or settings.DB_POOL_SIZE
    return create_async_engine(
        url or get_database_url(),
        pool_pre_ping=True,
        pool_size=size,
        max_overflow=size,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        connect_args={
            "timeout": settings.DB_CONNECT_TIMEOUT_SECONDS,
            "command_timeout": settings.DB_COMMAND_TIMEOUT_SECONDS,
            "server_settings": {"application_name": "event-manager"},
        },
    )


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


def contains_pattern(text: str) -> str:
    """An ILIKE pattern (escape character backslash) matching `text` anywhere, literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def get_session() -> AsyncIterator[AsyncSession]:
    """One transaction per request: commit on success, roll back on any error."""
    async with get_sessionmaker()() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


# scope="function": the commit happens before the response is sent, so a client never
# reads its own write before it is durable, and a failed commit still becomes an error response.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
