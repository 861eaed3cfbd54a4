"""CORS_ORIGINS: pages of the listed origins may call the API from a browser and read its
ETag, X-Request-ID, Retry-After and Idempotent-Replayed headers; other origins get no grant.
Without the setting no answer carries a CORS header."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from api.config import Settings, settings
from api.main import create_app
from tests.leaks import LeakScanner

ALLOWED = "https://app.example.com"
OTHER = "https://evil.example.net"
EXPOSED = ["ETag", "X-Request-ID", "Retry-After", "Idempotent-Replayed"]


def listed(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",")]


@pytest.fixture
def cors_app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setattr(settings, "CORS_ORIGINS", f"{ALLOWED},http://localhost:5173")
    return create_app(run_worker=False)


@pytest.fixture
async def browser_client(cors_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=cors_app),
        base_url="http://test",
        event_hooks=LeakScanner().hooks,
    ) as client:
        yield client


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


class TestPreflight:
    async def test_allowed_origin_200_with_the_grant(self, browser_client):
        response = await browser_client.options(
            "/api/v1/events/some-id/registrations", headers=preflight(ALLOWED)
        )

        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert listed(response.headers["Access-Control-Allow-Methods"]) == [
            "delete",
            "get",
            "head",
            "patch",
            "post",
            "put",
        ]
        assert {"authorization", "content-type", "idempotency-key", "if-match"} <= set(
            listed(response.headers["Access-Control-Allow-Headers"])
        )
        assert response.headers["Access-Control-Max-Age"] == "600"
        assert "origin" in listed(response.headers["Vary"])
        assert "Access-Control-Allow-Credentials" not in response.headers
        # Observability is outermost: a preflight carries its request id and nosniff too.
        assert response.headers["X-Request-ID"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"

    async def test_other_origin_gets_no_grant(self, browser_client):
        response = await browser_client.options("/api/v1/events", headers=preflight(OTHER))

        assert response.status_code == 400
        assert response.json() == {
            "detail": {"code": "CORS_PREFLIGHT_REFUSED", "reason": "Not allowed: origin"}
        }
        assert "Access-Control-Allow-Origin" not in response.headers
        assert response.headers["X-Request-ID"]

    async def test_a_header_not_allowed_gets_no_grant(self, browser_client):
        headers = {**preflight(ALLOWED), "Access-Control-Request-Headers": "x-custom"}

        response = await browser_client.options("/api/v1/events", headers=headers)

        assert response.status_code == 400
        assert response.json() == {
            "detail": {"code": "CORS_PREFLIGHT_REFUSED", "reason": "Not allowed: headers"}
        }


class TestSimpleRequest:
    async def test_allowed_origin_reads_the_exposed_headers(self, browser_client):
        response = await browser_client.get("/api/v1/events", headers={"Origin": ALLOWED})

        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert listed(response.headers["Access-Control-Expose-Headers"]) == [
            name.lower() for name in EXPOSED
        ]
        assert response.headers["ETag"]
        assert response.headers["X-Request-ID"]
        assert "origin" in listed(response.headers["Vary"])

    async def test_an_error_answer_carries_the_grant_too(self, browser_client):
        response = await browser_client.get("/api/v1/users/me", headers={"Origin": ALLOWED})

        assert response.status_code == 401
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED

    async def test_other_origin_gets_no_grant(self, browser_client):
        response = await browser_client.get("/api/v1/events", headers={"Origin": OTHER})

        assert response.status_code == 200
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_without_the_setting_no_cors_headers(client: httpx.AsyncClient) -> None:
    assert settings.cors_origins == []

    asked = await client.options("/api/v1/events", headers=preflight(ALLOWED, "GET"))
    read = await client.get("/api/v1/events", headers={"Origin": ALLOWED})

    assert asked.status_code == 405
    assert read.status_code == 200
    for response in (asked, read):
        assert not [name for name in response.headers if name.startswith("access-control-")]


class TestSetting:
    def test_comma_separated_trimmed_and_lower_cased(self):
        parsed = Settings(
            CORS_ORIGINS=" https://App.example.com , http://localhost:5173,", _env_file=None
        )

        assert parsed.CORS_ORIGINS == "https://app.example.com,http://localhost:5173"
        assert parsed.cors_origins == ["https://app.example.com", "http://localhost:5173"]

    def test_default_none(self):
        assert Settings(_env_file=None).cors_origins == []

    @pytest.mark.parametrize(
        "origin",
        ["*", "http://127.0.0.1:8080", "https://[::1]:8443", "https://a-b.example.co.uk"],
    )
    def test_accepted(self, origin: str):
        assert Settings(CORS_ORIGINS=origin, _env_file=None).cors_origins == [origin]

    @pytest.mark.parametrize(
        "origin",
        [
            "https://app.example.com/",
            "https://app.example.com/path",
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com:8080:1",
            '["https://app.example.com"]',
        ],
    )
    def test_refused_naming_the_setting(self, origin: str):
        with pytest.raises(ValidationError) as caught:
            Settings(CORS_ORIGINS=origin, _env_file=None)

        [error] = caught.value.errors()
        assert error["loc"] == ("CORS_ORIGINS",)
        assert "CORS_ORIGINS is a comma-separated list of origins" in error["msg"]
