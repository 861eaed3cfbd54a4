"""REL-1's 503 when PostgreSQL refuses more connections ("too many clients", SQLSTATE 53300).

Found by REL-2 on a busy shared database server: the refusal reached clients as a 500. Here a
login role with CONNECTION LIMIT 0 makes every connection of a real server process refused.
"""

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support import ServerProcess, TestDatabaseServer, run_server

pytestmark = pytest.mark.security("REL-1")


def admin_execute(db_server: TestDatabaseServer, sql: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(
            db_server.admin_url.render_as_string(hide_password=False)
        )
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture(scope="module")
def server(db_server: TestDatabaseServer) -> Iterator[ServerProcess]:
    role = f"no_connections_{uuid.uuid4().hex[:8]}"
    admin_execute(db_server, f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
    url = make_url(os.environ["DATABASE_URL"]).set(username=role, password=None)
    env = {
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "AUTH_RATE_LIMIT": "off",
        "RUN_WORKER_IN_PROCESS": "false",
    }
    try:
        with run_server(env, workers=1) as process:
            yield process
    finally:
        admin_execute(db_server, f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v1/events"), ("GET", "/api/v1/users/me"), ("GET", "/ready")]
)
def test_refused_connections_answer_503_with_retry_after(
    server: ServerProcess, method: str, path: str
) -> None:
    response = httpx.request(
        method, f"{server.base_url}{path}", headers={"Authorization": "Bearer x"}, timeout=10
    )
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert "too many" not in response.text
