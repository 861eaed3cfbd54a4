"""VAL-1: Schemathesis over the whole OpenAPI document, against a real server process.

Every operation goes through the examples, coverage and fuzzing phases as each kind of caller
(anonymous, user, manager, admin), and a stateful run chains operations through the links
Schemathesis infers. The seed is fixed (derandomize), the number of examples bounded so that CI
stays fast; `make fuzz` raises the bounds (FUZZ_MAX_EXAMPLES, FUZZ_STATEFUL_EXAMPLES).

Checks: no 5xx, no status the document does not list, the documented content type, and every
body matching its schema. The server has its own throwaway database, so nothing the fuzzer
creates reaches the rest of the suite; the callers are throwaway accounts in it, restored (role,
active, verified, unlocked) with a fresh token before every case, since the fuzzer may log out,
change passwords, demote or delete them.
"""

import asyncio
import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from api.main import MAX_BODY_BYTES, create_app
from api.users.models import hash_token
from api.users.passwords import password_helper
from tests.factories import DEFAULT_PASSWORD
from tests.support import TestDatabaseServer, run_server

pytestmark = pytest.mark.security("VAL-1")

FUZZ_MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
FUZZ_STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "8"))
SEED = 20260101

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Role of each kind of caller in the database (None: no token at all).
ROLES: dict[str, str | None] = {
    "anonymous": None,
    "user": "AUTHENTICATED",
    "manager": "MANAGER",
    "admin": "ADMIN",
}
ACCOUNT_IDS = {caller: uuid.uuid4() for caller, role in ROLES.items() if role}

# Restores the caller's account as it was and gives it a fresh token, in one round trip. The
# token is issued on the server's clock, which the fuzzer may move (PUT /api/v1/testing/clock):
# one issued at the real time would be past its lifetime on a clock moved ahead.
RESTORE_AND_ISSUE_TOKEN = """
WITH account AS (
    INSERT INTO "user" (id, email, hashed_password, nickname, is_active, is_superuser,
        is_verified, role, is_professional, failed_login_count, reset_mail_count, created_at,
        updated_at)
    VALUES ($1, $2, $3, $4, true, $5, true, $6::user_role, false, 0, 0, now(), now())
    ON CONFLICT (id) DO UPDATE SET role = excluded.role, is_superuser = excluded.is_superuser,
        is_active = true, is_verified = true, failed_login_count = 0, locked_until = NULL
    RETURNING id
)
INSERT INTO accesstoken (token, user_id, created_at)
SELECT $7, id, now() + coalesce((SELECT time_offset FROM test_clock WHERE id = 1), interval '0')
FROM account
"""


class Callers:
    """The throwaway accounts in the server's database, over one connection."""

    def __init__(self, database_url: str) -> None:
        self._runner = asyncio.Runner()
        dsn = database_url.replace("+asyncpg", "")
        self._connection: asyncpg.Connection = self._runner.run(asyncpg.connect(dsn))
        self._hash = password_helper.hash(DEFAULT_PASSWORD)

    def headers(self, caller: str) -> dict[str, str]:
        role = ROLES[caller]
        if role is None:
            return {}
        account_id = ACCOUNT_IDS[caller]
        token = secrets.token_urlsafe()
        self._runner.run(
            self._connection.execute(
                RESTORE_AND_ISSUE_TOKEN,
                account_id,
                f"fuzz-{caller}-{account_id.hex[:8]}@example.com",
                self._hash,
                f"fuzz_{caller}_{account_id.hex[:8]}",
                role == "ADMIN",
                role,
                hash_token(token),
            )
        )
        return {"Authorization": f"Bearer {token}"}

    def close(self) -> None:
        self._runner.run(self._connection.close())
        self._runner.close()


@pytest.fixture(scope="module")
def callers(db_server: TestDatabaseServer) -> Iterator[tuple[str, Callers]]:
    env = {"AUTH_RATE_LIMIT": "off", "RUN_WORKER_IN_PROCESS": "false"}
    with run_server(env, workers=2, own_database=db_server) as server:
        accounts = Callers(server.database_url)
        try:
            yield server.base_url, accounts
        finally:
            accounts.close()


# Built from the app itself at collection time; the calls go to the real server process.
schema = schemathesis.openapi.from_dict(
    create_app().openapi(), config=SchemathesisConfig.from_dict({"seed": SEED})
)
SETTINGS = settings(
    max_examples=FUZZ_MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("caller", list(ROLES))
@schema.parametrize()
@SETTINGS
def test_openapi_contract(
    case: schemathesis.Case[Any], caller: str, callers: tuple[str, Callers]
) -> None:
    base_url, accounts = callers
    case.call_and_validate(base_url=base_url, headers=accounts.headers(caller), checks=CHECKS)


class _Stateful(schema.as_state_machine()):  # type: ignore[misc]
    base_url: ClassVar[str] = ""
    accounts: ClassVar[Callers | None] = None
    caller: ClassVar[str] = "admin"

    def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:  # noqa: ARG002
        assert self.accounts is not None
        return {"base_url": self.base_url, "headers": self.accounts.headers(self.caller)}

    def validate_response(self, response: Any, case: schemathesis.Case[Any], **kwargs: Any) -> None:
        case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)


@pytest.mark.parametrize("caller", ["user", "manager", "admin"])
def test_openapi_stateful(caller: str, callers: tuple[str, Callers]) -> None:
    base_url, accounts = callers
    _Stateful.base_url, _Stateful.accounts, _Stateful.caller = base_url, accounts, caller
    _Stateful.run(
        settings=settings(
            max_examples=FUZZ_STATEFUL_EXAMPLES,
            stateful_step_count=10,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )


# Answers the stack gives on any route, which fuzzing never provokes: each must be documented
# and match its schema like any other.
THROTTLED: dict[str, dict[str, Any]] = {
    "/api/v1/auth/login": {"data": {"username": "nobody@example.com", "password": "x" * 10}},
    "/api/v1/auth/register": {"json": {"email": "a", "password": "x"}},
    "/api/v1/auth/request-verify-token": {"json": {"email": "nobody@example.com"}},
    "/api/v1/auth/forgot-password": {"json": {"email": "nobody@example.com"}},
}


def conforms(method: str, path: str, response: httpx.Response) -> None:
    case = schema[path][method].Case()
    case.validate_response(response, checks=CHECKS)


@pytest.mark.parametrize("path", list(THROTTLED))
async def test_throttled_answer_is_documented(
    client: httpx.AsyncClient, rate_limit: Callable[[str], None], path: str
) -> None:
    rate_limit("1/minute")
    await client.post(path, **THROTTLED[path])
    response = await client.post(path, **THROTTLED[path])
    assert response.status_code == 429
    conforms("POST", path, response)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/auth/register"), ("PATCH", "/api/v1/users/me"), ("POST", "/api/v1/events")],
)
async def test_oversized_body_answer_is_documented(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(
        method,
        path,
        content=b" " * (MAX_BODY_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    conforms(method, path, response)


def test_database_outage_answer_is_documented_everywhere() -> None:
    """REL-1's 503 + Retry-After can come from every API operation (tests/test_reliability.py
    provokes it); each operation documents it."""
    document = create_app().openapi()
    operations = [
        (method, path, operation["responses"])
        for path, item in document["paths"].items()
        if path.startswith("/api/")
        for method, operation in item.items()
    ]
    assert len(operations) > 40
    undocumented = [
        (method, path)
        for method, path, responses in operations
        if "Retry-After" not in responses.get("503", {}).get("headers", {})
    ]
    assert undocumented == []
