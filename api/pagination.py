"""Page parameters and the page envelope of API.md, with absolute links."""

import math
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


class PageParams(BaseModel):
    page: int
    size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


# async: a plain `def` dependency would run in the thread pool, a thread hop per request.
async def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    size: Annotated[int, Query(ge=1, le=100, description="Items per page")] = 20,
) -> PageParams:
    return PageParams(page=page, size=size)


PageParamsDep = Annotated[PageParams, Depends(page_params)]


class PageLinks(BaseModel):
    self: str
    first: str
    last: str
    next: str | None
    prev: str | None


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    size: int
    pages: int
    links: PageLinks

    @classmethod
    def build(
        cls, items: Sequence[T], *, total: int, params: PageParams, request: Request
    ) -> "Page[T]":
        pages = max(1, math.ceil(total / params.size))

        def link(page: int) -> str:
            return str(request.url.include_query_params(page=page, size=params.size))

        return cls(
            items=list(items),
            total=total,
            page=params.page,
            size=params.size,
            pages=pages,
            links=PageLinks(
                self=link(params.page),
                first=link(1),
                last=link(pages),
                next=link(params.page + 1) if params.page < pages else None,
                prev=link(min(params.page - 1, pages)) if params.page > 1 else None,
            ),
        )


async def _count(session: AsyncSession, statement: Select[Any]) -> int:
    total = await session.scalar(
        select(func.count()).select_from(statement.order_by(None).subquery())
    )
    return total or 0


async def paginate(
    session: AsyncSession, statement: Select[tuple[T]], params: PageParams
) -> tuple[Sequence[T], int]:
    """One count query and one page query for a select of table rows."""
    rows = await session.scalars(statement.limit(params.size).offset(params.offset))
    return rows.all(), await _count(session, statement)


async def paginate_rows(
    session: AsyncSession, statement: Select[Any], params: PageParams
) -> tuple[Sequence[Row[Any]], int]:
    """paginate() for a select of several columns or entities: the page's rows and the total."""
    rows = await session.execute(statement.limit(params.size).offset(params.offset))
    return rows.all(), await _count(session, statement)
