"""The ceiling: the same reads in raw Starlette + asyncpg, no ORM, no validation layers.

Run by bench/__main__.py as `uvicorn bench.ceiling:app`; DATABASE_URL is a plain asyncpg DSN.
"""

import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

USER_BY_TOKEN = """
SELECT u.id, u.email, u.nickname, u.first_name, u.last_name, u.bio, u.role::text AS role,
       u.is_verified, u.is_active, u.is_professional, u.created_at, u.updated_at
FROM accesstoken t JOIN "user" u ON u.id = t.user_id
WHERE t.token = $1 AND t.created_at > now() - interval '60 minutes' AND u.is_active
"""


EVENT_COLUMNS = """
id, title, description, event_type::text AS event_type, starts_at, ends_at, timezone, location,
online_url, capacity, registration_deadline, requirements, tags, status::text AS status,
created_by, reviewed_by, review_feedback, cancellation_reason, registered_count, waitlist_count,
created_at, updated_at, published_at, cancelled_at
"""
UPCOMING = "FROM event WHERE status = 'PUBLISHED' AND starts_at >= now()"
EVENTS_PAGE = f"SELECT {EVENT_COLUMNS} {UPCOMING} ORDER BY starts_at, id LIMIT 20"
EVENTS_TOTAL = f"SELECT count(*) {UPCOMING}"


def _jsonable(value: object) -> object:
    return value if isinstance(value, bool | int | list | None | str) else str(value)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=2, max_size=10)
    yield
    await app.state.pool.close()


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def me(request: Request) -> Response:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    row = await request.app.state.pool.fetchrow(
        USER_BY_TOKEN, hashlib.sha256(token.encode()).hexdigest()
    )
    if row is None:
        return JSONResponse({"detail": "Unauthorized"}, status_code=401)
    body = {k: (str(v) if not isinstance(v, bool | None | str) else v) for k, v in row.items()}
    return Response(json.dumps(body), media_type="application/json")


async def events(request: Request) -> Response:
    """The default event listing: one page of upcoming published events and the total."""
    async with request.app.state.pool.acquire() as connection:
        rows = await connection.fetch(EVENTS_PAGE)
        total = await connection.fetchval(EVENTS_TOTAL)
    items = [{k: _jsonable(v) for k, v in row.items()} for row in rows]
    return Response(json.dumps({"items": items, "total": total}), media_type="application/json")


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/api/v1/users/me", me),
        Route("/api/v1/events", events),
    ],
    lifespan=lifespan,
)
