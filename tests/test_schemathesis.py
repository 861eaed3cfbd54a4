"""VAL-1: Schemathesis over the whole OpenAPI document, against a real server process.

Fixed seed, bounded examples: no 5xx, no undocumented status, responses match their schemas.
"""

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.db import get_database_url
from api.main import create_app
from api.users.models import hash_token
from api.users.passwords import password_helper
from tests.factories import DEFAULT_PASSWORD
from tests.support import run_server

ADMIN_ID = uuid.uuid4()
DSN = get_database_url().replace("+asyncpg", "")


def _execute(sql: str, *args: object) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(DSN)
        try:
            await connection.execute(sql, *args)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    _execute(
        'INSERT INTO "user" (id, email, hashed_password, nickname, is_active, is_superuser,'
        " is_verified, role, is_professional, failed_login_count, reset_mail_count, created_at,"
        " updated_at)"
        " VALUES ($1, $2, $4, $3, true, true, true, 'ADMIN', false, 0, 0, now(), now())",
        ADMIN_ID,
        f"fuzz-admin-{ADMIN_ID.hex[:8]}@example.com",
        f"fuzz_{ADMIN_ID.hex[:8]}",
        password_helper.hash(DEFAULT_PASSWORD),
    )
    try:
        with run_server({"AUTH_RATE_LIMIT": "off"}, workers=1) as server:
            yield server.base_url
    finally:
        _execute('DELETE FROM "user" WHERE id = $1', ADMIN_ID)
        _execute("DELETE FROM pgqueuer")


# Built from the app itself at collection time; the calls go to the real server process.
schema = schemathesis.openapi.from_dict(create_app().openapi())


@schema.exclude(method="DELETE", path="/api/v1/users/me").parametrize()
@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_openapi_contract(case: schemathesis.Case[Any], base_url: str) -> None:
    # A fresh admin token per case: logout and password changes revoke the previous ones.
    token = secrets.token_urlsafe()
    _execute(
        "INSERT INTO accesstoken (token, user_id, created_at) VALUES ($1, $2, now())",
        hash_token(token),
        ADMIN_ID,
    )
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
