"""The headers of API.md: `X-Content-Type-Options: nosniff` on every answer, the HTML pages'
Content-Security-Policy and Referrer-Policy, and HSTS when PUBLIC_BASE_URL is https."""

import httpx
import pytest
from fastapi import FastAPI

from api.config import settings
from api.main import MAX_BODY_BYTES, create_app
from api.pages import PAGE_HEADERS

# Each kind of answer: a read, a 401, a 404 of no route, a 422, a 413 refused before routing,
# the documents, and every HTML page in both of its outcomes.
ANSWERS = [
    ("GET", "/health", 200),
    ("GET", "/api/v1/users/me", 401),
    ("GET", "/no/such/path", 404),
    ("POST", "/api/v1/auth/register", 422),
    ("GET", "/openapi.json", 200),
    ("GET", "/docs", 200),
]
PAGES = ["/verify-email", "/reset-password", "/cant-come"]


@pytest.mark.parametrize(("method", "path", "status"), ANSWERS)
async def test_every_answer_is_nosniff(client: httpx.AsyncClient, method, path, status) -> None:
    response = await client.request(method, path, json={} if method == "POST" else None)

    assert response.status_code == status
    assert response.headers.get_list("X-Content-Type-Options") == ["nosniff"]
    assert "Strict-Transport-Security" not in response.headers  # PUBLIC_BASE_URL is http here


async def test_a_body_refused_before_routing_is_nosniff(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_html_pages_forbid_framing_scripts_and_referrers(
    client: httpx.AsyncClient, path: str, method: str
) -> None:
    """A bad token: each page's 400, which goes through the same renderer as its form."""
    response = await client.request(method, path, params={"token": "bad"}, data={"token": "bad"})

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert policy == PAGE_HEADERS["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"  # no script, image, frame or connection
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_json_answers_carry_no_page_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert "Content-Security-Policy" not in response.headers
    assert "Referrer-Policy" not in response.headers


async def test_hsts_when_public_over_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "PUBLIC_BASE_URL", "https://events.example.org")
    app: FastAPI = create_app(run_worker=False)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.get("/health")

    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
