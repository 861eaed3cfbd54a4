"""The observability middleware (api/observability.py): every answer carries X-Request-ID, and
every request is counted under the template of the route that answered, never under its path, in
the series prometheus-fastapi-instrumentator 8.1.0 used to write."""

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from api.main import MAX_BODY_BYTES
from tests.support import samples

JSON = {"Content-Type": "application/json"}
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
# prometheus_client's default buckets, which the instrumentator's latency metric used.
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0"]
BUCKETS += ["2.5", "5.0", "7.5", "10.0", "+Inf"]


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


def counted(text: str, handler: str, method: str, status: int) -> float | None:
    series = f'handler="{handler}",method="{method}",status="{status}"'
    return samples(text).get(f"http_requests_total{{{series}}}")


def http_series(text: str) -> list[str]:
    return [name for name in samples(text) if name.startswith("http_")]


async def test_series_keep_their_names_help_labels_and_buckets(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    text = await scrape(client)
    for line in (
        "# HELP http_requests_total Total number of requests by method, status and handler.",
        "# TYPE http_requests_total counter",
        "# HELP http_request_duration_seconds Duration of HTTP requests in seconds",
        "# TYPE http_request_duration_seconds histogram",
    ):
        assert line in text.splitlines()
    health = 'handler="/health",method="GET",status="200"'
    assert sorted(http_series(text)) == sorted(
        [
            f"http_requests_total{{{health}}}",
            f"http_request_duration_seconds_count{{{health}}}",
            f"http_request_duration_seconds_sum{{{health}}}",
            *(
                f'http_request_duration_seconds_bucket{{handler="/health",le="{bound}",'
                'method="GET",status="200"}'
                for bound in BUCKETS
            ),
            f"http_requests_created{{{health}}}",
            f"http_request_duration_seconds_created{{{health}}}",
        ]
    )
    assert counted(text, "/health", "GET", 200) == 1
    assert samples(text)[f"http_request_duration_seconds_count{{{health}}}"] == 1


async def test_parametrised_routes_are_counted_by_their_template(
    client: httpx.AsyncClient,
) -> None:
    event_id, nickname = uuid.uuid4(), f"nick{uuid.uuid4().hex[:8]}"
    assert (await client.get(f"/api/v1/events/{event_id}")).status_code == 404
    assert (await client.get(f"/api/v1/events/{event_id}/calendar.ics")).status_code == 404
    assert (await client.get(f"/api/v1/profiles/{nickname}")).status_code == 401
    text = await scrape(client)
    assert counted(text, "/api/v1/events/{event_id}", "GET", 404) == 1
    assert counted(text, "/api/v1/events/{event_id}/calendar.ics", "GET", 404) == 1
    assert counted(text, "/api/v1/profiles/{nickname}", "GET", 401) == 1
    assert str(event_id) not in text
    assert nickname not in text


async def test_a_method_the_route_lacks_is_counted_by_its_template(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.delete("/health")).status_code == 405
    assert (await client.put(f"/api/v1/events/{uuid.uuid4()}")).status_code == 405
    text = await scrape(client)
    assert counted(text, "/health", "DELETE", 405) == 1
    assert counted(text, "/api/v1/events/{event_id}", "PUT", 405) == 1


async def test_a_path_no_route_matches_is_counted_as_none(client: httpx.AsyncClient) -> None:
    unknown = f"/no/such/{uuid.uuid4()}"
    assert (await client.get(unknown)).status_code == 404
    # The router redirects to the path with(out) its trailing slash: no route answered.
    redirect = await client.get(f"/api/v1/events/{uuid.uuid4()}/")
    assert redirect.status_code == 307
    text = await scrape(client)
    assert counted(text, "none", "GET", 404) == 1
    assert counted(text, "none", "GET", 307) == 1
    assert [name for name in http_series(text) if "/no/such" in name or "/api/" in name] == []


async def test_the_documentation_routes_are_counted_by_their_path(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/docs")).status_code == 200
    text = await scrape(client)
    assert counted(text, "/openapi.json", "GET", 200) == 1
    assert counted(text, "/docs", "GET", 200) == 1


async def test_scrapes_are_not_counted(client: httpx.AsyncClient) -> None:
    await scrape(client)
    assert http_series(await scrape(client)) == []


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("trace-42", True), ("a" * 128, True), ("a" * 129, False), ("two words", False)],
)
async def test_the_callers_request_id_is_kept_when_plain(
    client: httpx.AsyncClient, sent: str, kept: bool
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": sent})
    [returned] = response.headers.get_list("X-Request-ID")
    assert returned == sent if kept else REQUEST_ID.fullmatch(returned)


@pytest.fixture
def app_with_odd_routes(app: FastAPI) -> FastAPI:
    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug, not an outage")

    @app.get("/own-id")
    async def own_id() -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers={"X-Request-ID": "set-by-the-route"})

    return app


@pytest.mark.usefixtures("app_with_odd_routes")
async def test_a_500_of_the_error_middleware_carries_the_id_and_is_counted(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/boom", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.headers.get_list("X-Request-ID") == ["trace-500"]
    assert response.json() == {"detail": "INTERNAL_ERROR", "request_id": "trace-500"}
    assert counted(await scrape(client), "/boom", "GET", 500) == 1


@pytest.mark.usefixtures("app_with_odd_routes")
async def test_an_id_set_by_the_route_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/own-id", headers={"X-Request-ID": "trace-own"})
    assert response.status_code == 200
    assert response.headers.get_list("X-Request-ID") == ["trace-own"]


async def test_a_body_refused_before_routing_carries_the_id_and_counts_as_none(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"email": "' + b"a" * MAX_BODY_BYTES + b'@example.com"}'
    response = await client.post("/api/v1/auth/forgot-password", content=body, headers=JSON)
    assert response.status_code == 413
    assert REQUEST_ID.fullmatch(response.headers["X-Request-ID"])
    # A declared length over the limit is refused before any route is chosen.
    assert counted(await scrape(client), "none", "POST", 413) == 1


async def test_a_body_refused_while_read_counts_under_its_route(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"email": "' + b"a" * MAX_BODY_BYTES + b'@example.com"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    request = client.build_request(
        "POST", "/api/v1/auth/forgot-password", content=chunks(), headers=JSON
    )
    assert "content-length" not in request.headers
    response = await client.send(request)
    assert response.status_code == 413
    assert REQUEST_ID.fullmatch(response.headers["X-Request-ID"])
    assert counted(await scrape(client), "/api/v1/auth/forgot-password", "POST", 413) == 1
