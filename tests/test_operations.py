"""Operations endpoints and the error envelope of unexpected failures."""

import httpx
import pytest
from fastapi import FastAPI


async def test_health_does_not_need_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(response.headers["X-Request-ID"]) == 32


async def test_ready_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_metrics_in_prometheus_format(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'http_requests_total{handler="/health",method="GET",status="2xx"}' in response.text
    assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]


@pytest.fixture
def failing_app(app: FastAPI) -> FastAPI:
    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug, not an outage")

    return app


@pytest.mark.usefixtures("failing_app")
async def test_unexpected_error_is_500_with_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    assert response.json() == {"detail": "INTERNAL_ERROR", "request_id": request_id}
    assert "RuntimeError" not in response.text
