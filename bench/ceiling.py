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


app = Starlette(routes=[Route("/health", health), Route("/api/v1/users/me", me)], lifespan=lifespan)
