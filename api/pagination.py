"""Page parameters and the page envelope of API.md, with absolute links and a bounded count."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Row, Select, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.examples import declared_examples, page_example, set_examples

T = TypeVar("T")

# Counting stops past this many matches, so that a page costs the same at any data size.
COUNT_CAP = 10_000


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


@dataclass(frozen=True)
class Total:
    """A list's bounded total, and whether another page follows the one fetched."""

    count: int  # exact up to COUNT_CAP, else COUNT_CAP
    capped: bool
    has_next: bool


def _page_example(schema: dict[str, Any], model: type[Any]) -> None:
    """Page[X]'s example: a page of X's first example, at the path that lists X."""
    # A named page (`class EventPage(Page[EventPublic])`) has no args of its own: its base has.
    args = next(
        (
            base.__pydantic_generic_metadata__["args"]
            for base in model.__mro__
            if issubclass(base, BaseModel) and base.__pydantic_generic_metadata__["args"]
        ),
        (),
    )
    declared = declared_examples(args[0]) if args else None
    if declared is not None and declared.list_path is not None:
        set_examples(schema, [page_example([declared.values[0]], declared.list_path)])


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(json_schema_extra=_page_example)

    items: list[T]
    total: int = Field(description=f"Exact up to {COUNT_CAP:,} matches, else {COUNT_CAP}")
    total_capped: bool = Field(description=f"Over {COUNT_CAP:,} matches; `next` still leads on")
    page: int
    size: int
    pages: int
    links: PageLinks

    @classmethod
    def build(
        cls,
        items: Sequence[T],
        *,
        total: Total,
        params: PageParams,
        request: Request,
        **extra: Any,
    ) -> Self:
        """The envelope; `extra` fills the fields a subclass adds."""
        pages = max(1, math.ceil(total.count / params.size))
        # A page past the end points back at the last one; past a capped count, pages with
        # rows lie beyond `last`, and each of them points back one page.
        prev = params.page - 1 if items else min(params.page - 1, pages)

        def link(page: int) -> str:
            return str(request.url.include_query_params(page=page, size=params.size))

        return cls(
            items=list(items),
            total=total.count,
            total_capped=total.capped,
            page=params.page,
            size=params.size,
            pages=pages,
            links=PageLinks(
                self=link(params.page),
                first=link(1),
                last=link(pages),
                next=link(params.page + 1) if total.has_next else None,
                prev=link(prev) if params.page > 1 else None,
            ),
            **extra,
        )


async def bounded_count(
    session: AsyncSession, statement: Select[Any], *also: ColumnElement[Any]
) -> tuple[int, ...]:
    """The matches, counted no further than one past COUNT_CAP, then the scalar subqueries
    `also`, all in one statement (one round trip)."""
    # A literal cap rather than a bound parameter: a generic plan then still knows it.
    bounded = statement.order_by(None).limit(literal_column(str(COUNT_CAP + 1)))
    row = (await session.execute(select(func.count(), *also).select_from(bounded.subquery()))).one()
    return tuple(value or 0 for value in row)


def _window(count: int, params: PageParams) -> tuple[int, bool]:
    """The rows the page query fetches, and whether it fetches one past the page.

    Past the capped count the count cannot tell whether another page follows: the page query
    then fetches one row more and tells it instead, without another round trip."""
    probe = count > COUNT_CAP and params.offset + params.size >= count
    return (params.size + 1 if probe else params.size), probe


def _total(count: int, params: PageParams, fetched: int, probe: bool) -> Total:
    return Total(
        count=min(count, COUNT_CAP),
        capped=count > COUNT_CAP,
        has_next=fetched > params.size if probe else params.offset + params.size < count,
    )


async def paginate(
    session: AsyncSession, statement: Select[tuple[T]], params: PageParams
) -> tuple[Sequence[T], Total]:
    """One count query and one page query for a select of table rows."""
    rows, total = await paginate_rows(session, statement, params)
    return [row[0] for row in rows], total


async def paginate_rows(
    session: AsyncSession,
    statement: Select[Any],
    params: PageParams,
    *,
    count: int | None = None,
) -> tuple[Sequence[Row[Any]], Total]:
    """One count query (none when `count` comes from bounded_count) and one page query: the
    page's rows and the total."""
    if count is None:
        (count,) = await bounded_count(session, statement)
    limit, probe = _window(count, params)
    rows = (await session.execute(statement.limit(limit).offset(params.offset))).all()
    return rows[: params.size], _total(count, params, len(rows), probe)
