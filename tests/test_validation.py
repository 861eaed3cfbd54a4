"""VAL-2: hostile input (huge bodies, wrong content types, undecodable text, out-of-range numbers
and ids, unknown values) is answered with the right 4xx and a `detail`, never a 5xx."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.main import MAX_BODY_BYTES
from api.users.models import User, UserRole
from tests.factories import DEFAULT_PASSWORD, create_user, user_by_email

pytestmark = pytest.mark.security("VAL-2")

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
JSON = {"Content-Type": "application/json"}
TOO_LARGE = {"detail": "REQUEST_TOO_LARGE"}
NUL_REFUSED = {
    "detail": [
        {
            "type": "string_unicode",
            "loc": ["request"],
            "msg": "Text must not contain NUL (\\u0000) characters",
            "input": None,
        }
    ]
}
HUGE_NUMBER = str(10**30)


def new_email() -> str:
    return f"val-{uuid.uuid4().hex[:10]}@example.com"


def padded_register_body(size: int, email: str) -> bytes:
    """A register body of exactly `size` bytes: valid JSON whose bio is far too long."""
    head = f'{{"email": "{email}", "password": "{DEFAULT_PASSWORD}", "bio": "'.encode()
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.fixture
async def staff_headers(session: AsyncSession, auth_as) -> dict[str, str]:
    admin = await create_user(session, role=UserRole.ADMIN)
    headers: dict[str, str] = await auth_as(admin)
    return headers


def validation_error(response: httpx.Response) -> dict[str, Any]:
    """The single error of a FastAPI 422 body."""
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert isinstance(error, dict)
    return error


class TestRegisterBody:
    async def test_declared_body_over_1_mib_413(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        email = new_email()
        body = padded_register_body(MAX_BODY_BYTES + 1, email)
        response = await client.post(REGISTER, content=body, headers=JSON)
        assert response.status_code == 413
        assert response.json() == TOO_LARGE
        assert await user_by_email(session, email) is None

    async def test_chunked_body_over_1_mib_413(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        email = new_email()
        body = padded_register_body(MAX_BODY_BYTES + 1, email)
        request = client.build_request("POST", REGISTER, content=chunks(body), headers=JSON)
        assert "content-length" not in request.headers
        response = await client.send(request)
        assert response.status_code == 413
        assert response.json() == TOO_LARGE
        assert await user_by_email(session, email) is None

    async def test_body_of_exactly_1_mib_is_read_and_validated(
        self, client: httpx.AsyncClient
    ) -> None:
        body = padded_register_body(MAX_BODY_BYTES, new_email())
        response = await client.post(REGISTER, content=body, headers=JSON)
        error = validation_error(response)
        assert (error["type"], error["loc"]) == ("string_too_long", ["body", "bio"])

    async def test_chunked_body_of_exactly_1_mib_is_read_and_validated(
        self, client: httpx.AsyncClient
    ) -> None:
        body = padded_register_body(MAX_BODY_BYTES, new_email())
        response = await client.post(REGISTER, content=chunks(body), headers=JSON)
        error = validation_error(response)
        assert (error["type"], error["loc"]) == ("string_too_long", ["body", "bio"])

    async def test_text_plain_body_422(self, client: httpx.AsyncClient) -> None:
        body = f'{{"email": "{new_email()}", "password": "{DEFAULT_PASSWORD}"}}'
        response = await client.post(REGISTER, content=body, headers={"Content-Type": "text/plain"})
        assert validation_error(response) == {
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": body,
        }

    async def test_form_body_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            REGISTER, data={"email": new_email(), "password": DEFAULT_PASSWORD}
        )
        error = validation_error(response)
        assert (error["type"], error["loc"]) == ("model_attributes_type", ["body"])

    async def test_invalid_utf8_422(self, client: httpx.AsyncClient) -> None:
        body = b'{"email": "caf\xe9@example.com", "password": "\xff\xfe\xfd passphrase"}'
        response = await client.post(REGISTER, content=body, headers=JSON)
        error = validation_error(response)
        assert (error["type"], error["loc"]) == ("json_invalid", ["body"])

    async def test_invalid_json_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(REGISTER, content=b'{"email":', headers=JSON)
        assert validation_error(response) == {
            "type": "json_invalid",
            "loc": ["body", 9],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "Expecting value"},
        }

    async def test_deeply_nested_json_422(self, client: httpx.AsyncClient) -> None:
        depth = 100_000
        response = await client.post(REGISTER, content=b"[" * depth + b"]" * depth, headers=JSON)
        error = validation_error(response)
        assert (error["type"], error["loc"]) == ("json_invalid", ["body"])

    async def test_json_array_instead_of_object_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(REGISTER, json=[new_email(), DEFAULT_PASSWORD])
        error = validation_error(response)
        assert (error["type"], error["loc"]) == ("model_attributes_type", ["body"])

    async def test_unpaired_surrogate_422(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        email = new_email()
        body = f'{{"email": "{email}", "password": "{DEFAULT_PASSWORD}", "first_name": "\\ud800"}}'
        response = await client.post(REGISTER, content=body.encode(), headers=JSON)
        error = validation_error(response)
        assert (error["type"], error["loc"], error["input"]) == (
            "string_unicode",
            ["body", "first_name"],
            "\ud800",
        )
        assert await user_by_email(session, email) is None

    async def test_nul_character_422(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        email = new_email()
        response = await client.post(
            REGISTER, json={"email": email, "password": DEFAULT_PASSWORD, "first_name": "a\x00b"}
        )
        assert response.status_code == 422
        assert response.json() == NUL_REFUSED
        assert await user_by_email(session, email) is None

    async def test_huge_number_for_a_string_field_422(self, client: httpx.AsyncClient) -> None:
        body = f'{{"email": "{new_email()}", "password": {HUGE_NUMBER}}}'
        response = await client.post(REGISTER, content=body.encode(), headers=JSON)
        error = validation_error(response)
        assert (error["type"], error["loc"]) == ("string_type", ["body", "password"])


class TestForgotPasswordBody:
    async def test_unpaired_surrogate_in_email_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/v1/auth/forgot-password", content=b'{"email": "\\udfff"}', headers=JSON
        )
        error = validation_error(response)
        assert (error["loc"], error["input"]) == (["body", "email"], "\udfff")

    async def test_declared_body_over_1_mib_413(self, client: httpx.AsyncClient) -> None:
        body = b'{"email": "' + b"a" * MAX_BODY_BYTES + b'@example.com"}'
        response = await client.post("/api/v1/auth/forgot-password", content=body, headers=JSON)
        assert response.status_code == 413
        assert response.json() == TOO_LARGE


class TestLoginForm:
    async def test_json_instead_of_form_422(self, client: httpx.AsyncClient, user: User) -> None:
        response = await client.post(
            LOGIN, json={"username": user.email, "password": DEFAULT_PASSWORD}
        )
        assert response.status_code == 422
        assert [(e["type"], e["loc"]) for e in response.json()["detail"]] == [
            ("missing", ["body", "username"]),
            ("missing", ["body", "password"]),
        ]

    async def test_nul_in_username_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            LOGIN, data={"username": "someone\x00@example.com", "password": DEFAULT_PASSWORD}
        )
        assert response.status_code == 422
        assert response.json() == NUL_REFUSED

    async def test_chunked_form_over_1_mib_413(self, client: httpx.AsyncClient) -> None:
        body = b"username=a%40example.com&password=" + b"x" * MAX_BODY_BYTES
        response = await client.post(
            LOGIN,
            content=chunks(body),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413
        assert response.json() == TOO_LARGE

    async def test_invalid_utf8_in_form_is_bad_credentials(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            LOGIN,
            content=b"username=%FF%FE%40example.com&password=%ED%A0%80",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400
        assert response.json() == {"detail": "LOGIN_BAD_CREDENTIALS"}


class TestListUsersQuery:
    @pytest.mark.parametrize(
        ("query", "loc", "error_type"),
        [
            ("page=1000000000000", ["query", "page"], "less_than_equal"),
            (f"page={HUGE_NUMBER}", ["query", "page"], "less_than_equal"),
            ("page=0", ["query", "page"], "greater_than_equal"),
            ("page=-1", ["query", "page"], "greater_than_equal"),
            ("page=1.5", ["query", "page"], "int_parsing"),
            ("page=abc", ["query", "page"], "int_parsing"),
            ("size=0", ["query", "size"], "greater_than_equal"),
            ("size=101", ["query", "size"], "less_than_equal"),
            (f"size={HUGE_NUMBER}", ["query", "size"], "less_than_equal"),
            ("role=ROOT", ["query", "role"], "enum"),
            ("role=admin", ["query", "role"], "enum"),
            ("role=%FF%FE", ["query", "role"], "enum"),
            ("sort=hashed_password", ["query", "sort"], "enum"),
            ("sort=-email", ["query", "sort"], "enum"),
            ("is_locked=maybe", ["query", "is_locked"], "bool_parsing"),
            ("is_verified=2", ["query", "is_verified"], "bool_parsing"),
            ("is_professional=", ["query", "is_professional"], "bool_parsing"),
            (f"q={'x' * 201}", ["query", "q"], "string_too_long"),
        ],
    )
    async def test_bad_value_422(
        self, client: httpx.AsyncClient, staff_headers, query: str, loc: list[str], error_type: str
    ) -> None:
        response = await client.get(f"/api/v1/users?{query}", headers=staff_headers)
        error = validation_error(response)
        assert (error["type"], error["loc"]) == (error_type, loc)

    async def test_nul_in_q_422(self, client: httpx.AsyncClient, staff_headers) -> None:
        response = await client.get("/api/v1/users?q=a%00b", headers=staff_headers)
        assert response.status_code == 422
        assert response.json() == NUL_REFUSED

    async def test_undecodable_q_matches_nothing(
        self, client: httpx.AsyncClient, staff_headers
    ) -> None:
        response = await client.get("/api/v1/users?q=%FF%FE%ED%A0%80", headers=staff_headers)
        assert response.status_code == 200
        assert (response.json()["items"], response.json()["total"]) == ([], 0)

    async def test_unknown_parameter_is_ignored(
        self, client: httpx.AsyncClient, staff_headers
    ) -> None:
        plain = await client.get("/api/v1/users?size=100", headers=staff_headers)
        extra = await client.get(
            "/api/v1/users?size=100&password=x&role_override=ADMIN", headers=staff_headers
        )
        assert (plain.status_code, extra.status_code) == (200, 200)
        assert extra.json()["items"] == plain.json()["items"]


class TestUserIdPath:
    ID_ROUTES = [
        ("GET", "/api/v1/users/{id}", None),
        ("PATCH", "/api/v1/users/{id}", {"bio": "x"}),
        ("DELETE", "/api/v1/users/{id}", None),
        ("PUT", "/api/v1/users/{id}/role", {"role": "MANAGER"}),
        ("PUT", "/api/v1/users/{id}/professional", {"is_professional": True}),
        ("POST", "/api/v1/users/{id}/unlock", None),
    ]

    @pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES)
    @pytest.mark.parametrize(
        "bad_id", [HUGE_NUMBER, "-1", "0", "1e400", "%FF%FE", "x" * 1000, "%00"]
    )
    async def test_malformed_id_422(
        self,
        client: httpx.AsyncClient,
        staff_headers,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        bad_id: str,
    ) -> None:
        response = await client.request(
            method, path.format(id=bad_id), json=body, headers=staff_headers
        )
        error = validation_error(response)
        assert (error["type"], error["loc"]) == ("uuid_parsing", ["path", "user_id"])

    @pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES)
    async def test_unknown_id_404(
        self,
        client: httpx.AsyncClient,
        staff_headers,
        method: str,
        path: str,
        body: dict[str, Any] | None,
    ) -> None:
        response = await client.request(
            method, path.format(id=uuid.uuid4()), json=body, headers=staff_headers
        )
        assert response.status_code == 404
        assert response.json() == {"detail": "USER_NOT_FOUND"}


class TestProfilePath:
    async def test_nul_in_nickname_422(self, client: httpx.AsyncClient, staff_headers) -> None:
        response = await client.get("/api/v1/profiles/a%00b", headers=staff_headers)
        assert response.status_code == 422
        assert response.json() == NUL_REFUSED

    @pytest.mark.parametrize("nickname", ["x" * 5000, "%FF%FE", HUGE_NUMBER, "a%20b%27--"])
    async def test_odd_nickname_404(
        self, client: httpx.AsyncClient, staff_headers, nickname: str
    ) -> None:
        response = await client.get(f"/api/v1/profiles/{nickname}", headers=staff_headers)
        assert response.status_code == 404
        assert response.json() == {"detail": "USER_NOT_FOUND"}
