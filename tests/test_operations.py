"""Operations endpoints and the error envelope of unexpected failures."""

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api import lifecycle
from api.config import settings
from api.mail.service import SEND_EMAIL, queries_for
from tests.support import samples


async def test_health_does_not_need_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(response.headers["X-Request-ID"]) == 32


async def test_ready_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_answers_503_while_draining_and_health_stays_200(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What SIGTERM does to a served process (api.serving; tests/test_shutdown.py runs it).
    monkeypatch.setattr(lifecycle, "draining", True)
    ready = await client.get("/ready")
    assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
    assert ready.headers["retry-after"] == "5"
    health = await client.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    events = await client.get("/api/v1/events")
    assert events.status_code == 200


async def test_metrics_count_requests_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/health")
    for _ in range(2):
        await client.get(f"/api/v1/events/{uuid.uuid4()}")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    values = samples(response.text)
    assert values['http_requests_total{handler="/health",method="GET",status="200"}'] == 1
    events = 'handler="/api/v1/events/{event_id}",method="GET",status="404"'
    assert values[f"http_requests_total{{{events}}}"] == 2
    assert values[f"http_request_duration_seconds_count{{{events}}}"] == 2
    inf_bucket = (
        'http_request_duration_seconds_bucket{handler="/api/v1/events/{event_id}",le="+Inf",'
        'method="GET",status="404"}'
    )
    assert values[inf_bucket] == 2
    assert not any("/metrics" in name for name in values)
    assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]


@pytest.mark.usefixtures("mailbox")
async def test_metrics_show_the_pool_and_the_mail_queue(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # Committed queue rows (the scrape reads them on a connection of its own), removed after.
    async with AsyncSession(engine) as session:
        queries = await queries_for(session)
        ids = await queries.enqueue([SEND_EMAIL] * 4, [b"{}"] * 4, [0] * 4)
        for sql, job_id in (
            ("UPDATE pgqueuer SET attempts = 3 WHERE id = :id", ids[1]),
            ("UPDATE pgqueuer SET status = 'picked' WHERE id = :id", ids[2]),
            ("UPDATE pgqueuer SET status = 'failed', attempts = 8 WHERE id = :id", ids[3]),
        ):
            await session.execute(text(sql), {"id": job_id})
        await session.commit()
    try:
        values = samples((await client.get("/metrics")).text)
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                text("DELETE FROM pgqueuer WHERE id = ANY(:ids)"), {"ids": list(ids)}
            )
    states = ("waiting", "retrying", "sending", "failed")
    jobs = {state: values[f'event_manager_mail_jobs{{state="{state}"}}'] for state in states}
    assert jobs == dict.fromkeys(states, 1)
    assert values["event_manager_mail_failed_attempts"] == 11
    assert values["event_manager_database_up"] == 1
    assert values["event_manager_db_pool_connections_capacity"] == settings.DB_POOL_SIZE
    assert values["event_manager_db_pool_connections_in_use"] >= 0


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
