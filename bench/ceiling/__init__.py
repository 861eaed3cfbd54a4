"""The ceiling: the service's queries in raw Starlette + asyncpg + orjson.

No ORM, no validation, no auth framework, no notices or mail: what the hardware and PostgreSQL
allow for the same reads and writes. `make bench` serves it (`uvicorn bench.ceiling:app`) next to
the service, against the same database, so the service's figures read as ratios to it.
DATABASE_URL is a plain asyncpg DSN; TOKEN_MINUTES the access-token lifetime; POOL_SIZE the
connections a worker keeps at most (10).

Lists count as the service does (API.md, Conventions): exactly up to COUNT_CAP matches, over
the filtered query with `LIMIT COUNT_CAP + 1` in a subquery, and `total_capped` past that.
"""

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import orjson
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

EVENT = (
    "id, title, description, event_type, starts_at, ends_at, timezone, location, online_url,"
    " capacity, registration_deadline, requirements, tags, status, created_by, reviewed_by,"
    " review_feedback, cancellation_reason, registered_count, waitlist_count, created_at,"
    " updated_at, published_at, cancelled_at"
)
USER = (
    "u.id, u.email, u.nickname, u.first_name, u.last_name, u.bio, u.role, u.is_verified,"
    " u.is_active, u.is_professional, u.created_at, u.updated_at"
)
ME = f"""SELECT {USER} FROM accesstoken t JOIN "user" u ON u.id = t.user_id
WHERE t.token = $1 AND t.created_at >= now() - make_interval(mins => $2) AND u.is_active"""
# The API-token twin: a live token holding users:read (the one route the ceiling takes it on).
ME_BY_API_TOKEN = f"""SELECT {USER} FROM api_token t JOIN "user" u ON u.id = t.user_id
WHERE t.token_hash = $1 AND t.expires_at > now() AND 'users:read' = ANY(t.scopes)
AND u.is_active"""
# $1 starts_after, $2 event_type or NULL, $3 has_spots or NULL; then limit and offset.
UPCOMING = """FROM event WHERE status = 'PUBLISHED' AND starts_at >= $1
AND ($2::event_type IS NULL OR event_type = $2)
AND ($3::bool IS NULL OR (capacity IS NULL OR registered_count < capacity) = $3)"""
PAGE = "LIMIT $4 OFFSET $5"
COUNT_CAP = 10_000
hasher = PasswordHasher()


def dumps(value: Any) -> Response:
    return Response(orjson.dumps(value, default=str), media_type="application/json")


def bounded(query: str) -> str:
    """A count of the rows `query` (FROM ... WHERE ...) selects, stopping past COUNT_CAP."""
    return f"SELECT count(*) FROM (SELECT 1 {query} LIMIT {COUNT_CAP + 1}) s"


def listing(rows: list[Any], count: int, **extra: Any) -> Response:
    """The page envelope: items, `total` up to COUNT_CAP, and whether it was capped."""
    return dumps(
        {
            "items": [dict(r) for r in rows],
            "total": min(count, COUNT_CAP),
            "total_capped": count > COUNT_CAP,
            **extra,
        }
    )


def unauthorized() -> Response:
    return Response(b'{"detail":"Unauthorized"}', 401, media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=2, max_size=int(os.environ.get("POOL_SIZE", "10"))
    )
    yield
    await app.state.pool.close()


async def caller(request: Request, connection: Any) -> Any:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    digest = hashlib.sha256(token.encode()).hexdigest()
    if token.startswith("em_pat_"):
        return await connection.fetchrow(ME_BY_API_TOKEN, digest)
    return await connection.fetchrow(ME, digest, int(os.environ.get("TOKEN_MINUTES", "60")))


def page(request: Request) -> tuple[int, int]:
    size = int(request.query_params.get("size", 20))
    return size, (int(request.query_params.get("page", 1)) - 1) * size


async def health(_: Request) -> Response:
    return dumps({"status": "ok"})


async def me(request: Request) -> Response:
    async with request.app.state.pool.acquire() as connection:
        user = await caller(request, connection)
    return dumps(dict(user)) if user else unauthorized()


async def events(request: Request) -> Response:
    query = request.query_params
    spots = {"true": True, "false": False}.get(query.get("has_spots", ""))
    filters = (datetime.now(UTC), query.get("event_type"), spots)
    async with request.app.state.pool.acquire() as connection:
        rows = await connection.fetch(
            f"SELECT {EVENT} {UPCOMING} ORDER BY starts_at, id {PAGE}", *filters, *page(request)
        )
        total = await connection.fetchval(bounded(UPCOMING), *filters)
    return listing(rows, total)


async def event(request: Request) -> Response:
    row = await request.app.state.pool.fetchrow(
        f"SELECT {EVENT} FROM event WHERE id = $1 AND status = 'PUBLISHED'",
        request.path_params["id"],
    )
    return dumps(dict(row)) if row else Response(status_code=404)


async def users(request: Request) -> Response:
    async with request.app.state.pool.acquire() as connection:
        user = await caller(request, connection)
        if user is None or user["role"] not in ("MANAGER", "ADMIN"):
            return unauthorized()
        rows = await connection.fetch(
            f'SELECT {USER} FROM "user" u ORDER BY created_at, id LIMIT $1 OFFSET $2',
            *page(request),
        )
        total = await connection.fetchval(bounded('FROM "user"'))
    return listing(rows, total)


async def notifications(request: Request) -> Response:
    async with request.app.state.pool.acquire() as connection:
        user = await caller(request, connection)
        if user is None:
            return unauthorized()
        rows = await connection.fetch(
            "SELECT id, kind, title, body, data, read_at, created_at FROM notification"
            " WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
            user["id"],
            *page(request),
        )
        total = await connection.fetchval(
            bounded("FROM notification WHERE user_id = $1"), user["id"]
        )
        unread = await connection.fetchval(
            "SELECT count(*) FROM notification WHERE user_id = $1 AND read_at IS NULL", user["id"]
        )
    return listing(rows, total, unread_count=unread)


async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode())
    email, password = form["username"][0], form["password"][0]
    pool = request.app.state.pool
    row = await pool.fetchrow(
        'SELECT id, hashed_password FROM "user" WHERE lower(email) = lower($1)', email
    )
    if row is None:
        return Response(status_code=400)
    try:
        await asyncio.to_thread(hasher.verify, row["hashed_password"], password)
    except Exception:  # noqa: BLE001 - any mismatch is a bad login
        return Response(status_code=400)
    token = secrets.token_urlsafe()
    await pool.execute(
        "INSERT INTO accesstoken (token, user_id, created_at) VALUES ($1, $2, now())",
        hashlib.sha256(token.encode()).hexdigest(),
        row["id"],
    )
    return dumps({"access_token": token, "token_type": "bearer"})


async def register(request: Request) -> Response:
    """A seat while one is free, else the waitlist; the event row locked meanwhile."""
    async with request.app.state.pool.acquire() as connection:
        user = await caller(request, connection)
        if user is None:
            return unauthorized()
        async with connection.transaction():
            event = await connection.fetchrow(
                "SELECT capacity, registered_count FROM event"
                " WHERE id = $1 AND status = 'PUBLISHED' FOR UPDATE",
                request.path_params["id"],
            )
            if event is None:
                return Response(status_code=404)
            free = event["capacity"] is None or event["registered_count"] < event["capacity"]
            status = "CONFIRMED" if free else "WAITLISTED"
            row = await connection.fetchrow(
                "INSERT INTO registration (id, event_id, user_id, status, created_at, updated_at)"
                " VALUES (gen_random_uuid(), $1, $2, $3, now(), now())"
                " ON CONFLICT (event_id, user_id)"
                " WHERE status IN ('CONFIRMED', 'OFFERED', 'WAITLISTED') DO NOTHING"
                " RETURNING id, event_id, user_id, status, created_at",
                request.path_params["id"],
                user["id"],
                status,
            )
            if row is None:
                return Response(status_code=409)
            await connection.execute(
                "UPDATE event SET registered_count = registered_count + $2,"
                " waitlist_count = waitlist_count + $3 WHERE id = $1",
                request.path_params["id"],
                int(free),
                int(not free),
            )
    return Response(orjson.dumps(dict(row), default=str), 201, media_type="application/json")


async def unregister(request: Request) -> Response:
    """Cancel; a freed seat goes to the head of the waitlist."""
    event_id = request.path_params["id"]
    async with request.app.state.pool.acquire() as connection:
        user = await caller(request, connection)
        if user is None:
            return unauthorized()
        async with connection.transaction():
            await connection.execute("SELECT 1 FROM event WHERE id = $1 FOR UPDATE", event_id)
            was = await connection.fetchval(
                "UPDATE registration SET status = 'CANCELLED', cancelled_at = now(),"
                " updated_at = now() WHERE event_id = $1 AND user_id = $2"
                " AND status IN ('CONFIRMED', 'WAITLISTED') RETURNING status",
                event_id,
                user["id"],
            )
            if was is None:
                return Response(status_code=404)
            promoted = 0
            if was == "CONFIRMED":
                promoted = len(
                    await connection.fetch(
                        "UPDATE registration SET status = 'CONFIRMED', promoted_at = now()"
                        " WHERE id = (SELECT id FROM registration WHERE event_id = $1"
                        " AND status = 'WAITLISTED' ORDER BY seq LIMIT 1) RETURNING id",
                        event_id,
                    )
                )
            await connection.execute(
                "UPDATE event SET registered_count = registered_count - $2 + $3,"
                " waitlist_count = waitlist_count - $4 - $3 WHERE id = $1",
                event_id,
                int(was == "CONFIRMED"),
                promoted,
                int(was == "WAITLISTED"),
            )
    return Response(status_code=204)


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/api/v1/users/me", me),
        Route("/api/v1/users", users),
        Route("/api/v1/events", events),
        Route("/api/v1/events/{id:uuid}", event),
        Route("/api/v1/events/{id:uuid}/registrations", register, methods=["POST"]),
        Route("/api/v1/events/{id:uuid}/registrations/me", unregister, methods=["DELETE"]),
        Route("/api/v1/notifications", notifications),
        Route("/api/v1/auth/login", login, methods=["POST"]),
    ],
    lifespan=lifespan,
)
