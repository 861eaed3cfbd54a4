"""REL-4 in the real service: a failure between a change and its audit entry commits neither.

The server runs as its own process against its own throwaway database. A trigger makes the
database refuse every audit entry: the request that changes a role, or approves an event, fails
while writing the entry, in the transaction that holds its change, and afterwards nothing of it
is left (no change, no entry, no notice, no mail). Without the trigger the same request commits
all of it. (The failing request answers the logged 500 with its request id: an injected fault.)
"""

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from api.users.models import hash_token
from api.users.passwords import password_helper
from tests.factories import DEFAULT_PASSWORD, event_body
from tests.leaks import LeakScanner
from tests.support import ServerProcess, TestDatabaseServer, run_server

pytestmark = pytest.mark.security("REL-4")

REFUSE_AUDIT = """
CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'audit entry refused (injected fault)'; END $$;
CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
FOR EACH ROW EXECUTE FUNCTION refuse_audit();
"""
ALLOW_AUDIT = "DROP TRIGGER refuse_audit ON audit_log; DROP FUNCTION refuse_audit();"


@pytest.fixture(scope="module")
def server(db_server: TestDatabaseServer) -> Iterator[ServerProcess]:
    env = {"AUTH_RATE_LIMIT": "off", "RUN_WORKER_IN_PROCESS": "false"}
    with run_server(env, workers=1, own_database=db_server) as process:
        yield process


@pytest.fixture
async def db(server: ServerProcess) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(server.database_url.replace("+asyncpg", ""))
    yield connection
    await connection.close()


async def account(db: asyncpg.Connection, role: str) -> tuple[uuid.UUID, dict[str, str]]:
    """A verified account with the role, and bearer headers for it."""
    user_id, token = uuid.uuid4(), secrets.token_urlsafe()
    await db.execute(
        'INSERT INTO "user" (id, email, hashed_password, nickname, is_active, is_superuser,'
        " is_verified, role, is_professional, failed_login_count, reset_mail_count, created_at,"
        " updated_at) VALUES ($1, $2, $3, $4, true, $5, true, $6::user_role, false, 0, 0, now(),"
        " now())",
        user_id,
        f"{role.lower()}-{user_id.hex[:8]}@example.com",
        password_helper.hash(DEFAULT_PASSWORD),
        f"{role.lower()[:4]}_{user_id.hex[:8]}",
        role == "ADMIN",
        role,
    )
    await db.execute(
        "INSERT INTO accesstoken (token, user_id, created_at) VALUES ($1, $2, now())",
        hash_token(token),
        user_id,
    )
    return user_id, {"Authorization": f"Bearer {token}"}


async def traces(db: asyncpg.Connection, target: uuid.UUID, user: uuid.UUID) -> dict[str, Any]:
    """What a committed change leaves behind: audit entries, notices and mail for `user`."""
    email = await db.fetchval('SELECT email FROM "user" WHERE id = $1', user)
    return {
        "audit": await db.fetchval("SELECT count(*) FROM audit_log WHERE target_id = $1", target),
        "notices": await db.fetchval("SELECT count(*) FROM notification WHERE user_id = $1", user),
        "mail": await db.fetchval(
            "SELECT count(*) FROM pgqueuer WHERE convert_from(payload, 'UTF8') LIKE $1",
            f"%{email}%",
        ),
    }


def client(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=10, event_hooks=LeakScanner().hooks)


async def test_role_change_and_its_entry_commit_together(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    _, admin = await account(db, "ADMIN")
    target, _ = await account(db, "AUTHENTICATED")
    body = {"role": "MANAGER", "reason": "runs the meetups"}
    async with client(server) as http:
        await db.execute(REFUSE_AUDIT)
        try:
            failed = await http.put(f"/api/v1/users/{target}/role", json=body, headers=admin)
        finally:
            await db.execute(ALLOW_AUDIT)
        assert failed.status_code == 500
        request_id = failed.headers["X-Request-ID"]
        assert failed.json() == {"detail": "INTERNAL_ERROR", "request_id": request_id}
        assert await db.fetchval('SELECT role::text FROM "user" WHERE id = $1', target) == (
            "AUTHENTICATED"
        )
        assert await traces(db, target, target) == {"audit": 0, "notices": 0, "mail": 0}

        done = await http.put(f"/api/v1/users/{target}/role", json=body, headers=admin)
    assert done.status_code == 200, done.text
    assert await db.fetchval('SELECT role::text FROM "user" WHERE id = $1', target) == "MANAGER"
    assert (await traces(db, target, target))["audit"] == 1


async def test_event_approval_and_its_entry_commit_together(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    _, admin = await account(db, "ADMIN")
    creator, manager = await account(db, "MANAGER")
    async with client(server) as http:
        created = await http.post("/api/v1/events", json=event_body(), headers=manager)
        assert created.status_code == 201, created.text
        event_id = uuid.UUID(created.json()["id"])
        before = await traces(db, event_id, creator)
        approve = f"/api/v1/events/{event_id}/approve"

        await db.execute(REFUSE_AUDIT)
        try:
            failed = await http.post(approve, headers=admin)
        finally:
            await db.execute(ALLOW_AUDIT)
        assert failed.status_code == 500
        status = "SELECT status::text FROM event WHERE id = $1"
        assert await db.fetchval(status, event_id) == "PENDING"
        assert await traces(db, event_id, creator) == before

        done = await http.post(approve, headers=admin)
    assert done.status_code == 200, done.text
    assert await db.fetchval(status, event_id) == "PUBLISHED"
    after = await traces(db, event_id, creator)
    assert after["audit"] == before["audit"] + 1
    assert after["notices"] == before["notices"] + 1
