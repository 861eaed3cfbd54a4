"""Prometheus metrics at /metrics.

- `http_requests_total` and `http_request_duration_seconds` by route template, method and status
  (prometheus-fastapi-instrumentator);
- `event_manager_db_pool_connections_in_use` and `..._capacity`: the SQLAlchemy pool at the scrape;
- `event_manager_mail_jobs{state}` (waiting, retrying, sending, failed) and
  `event_manager_mail_failed_attempts`: the mail queue, read from the database at each scrape;
- `event_manager_database_up`: whether that read succeeded.

With several worker processes (`serve --workers N`) the command sets PROMETHEUS_MULTIPROC_DIR and
every scrape aggregates all workers (prometheus_client's multiprocess mode); the pool and queue
figures are then those of each worker's latest scrape.
"""

import asyncio
import os

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from api.config import settings
from api.db import get_engine
from api.mail.service import SEND_EMAIL

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
SCRAPE_QUERY_TIMEOUT_SECONDS = 2.0
MAIL_STATES = ("waiting", "retrying", "sending", "failed")
MAIL_QUEUE_SQL = text(
    """
    SELECT CASE
             WHEN status = 'queued' AND attempts = 0 THEN 'waiting'
             WHEN status = 'queued' THEN 'retrying'
             WHEN status = 'picked' THEN 'sending'
             ELSE 'failed'
           END AS state,
           count(*) AS jobs,
           coalesce(sum(attempts), 0) AS attempts
    FROM pgqueuer
    WHERE entrypoint = :entrypoint AND status IN ('queued', 'picked', 'failed')
    GROUP BY 1
    """
)

# One set per process, shared by every app a process builds (the tests build many): a metric
# name can be registered once per registry, but one metric can sit in several registries.
POOL_IN_USE = Gauge(
    "event_manager_db_pool_connections_in_use",
    "Database connections checked out of the pool",
    registry=None,
    multiprocess_mode="livesum",
)
POOL_CAPACITY = Gauge(
    "event_manager_db_pool_connections_capacity",
    "Connections the pool may open (DB_POOL_SIZE)",
    registry=None,
    multiprocess_mode="livesum",
)
MAIL_JOBS = Gauge(
    "event_manager_mail_jobs",
    "Mails in the durable queue, by state (failed: held after MAIL_MAX_ATTEMPTS)",
    ["state"],
    registry=None,
    multiprocess_mode="mostrecent",
)
MAIL_FAILED_ATTEMPTS = Gauge(
    "event_manager_mail_failed_attempts",
    "Failed delivery attempts of the mails still in the queue",
    registry=None,
    multiprocess_mode="mostrecent",
)
DATABASE_UP = Gauge(
    "event_manager_database_up",
    "1 when the last scrape could read the database, else 0",
    registry=None,
    multiprocess_mode="mostrecent",
)
APP_METRICS = (POOL_IN_USE, POOL_CAPACITY, MAIL_JOBS, MAIL_FAILED_ATTEMPTS, DATABASE_UP)


async def refresh() -> None:
    """Read the pool and the mail queue into their gauges."""
    pool = get_engine().pool
    POOL_IN_USE.set(pool.checkedout())  # type: ignore[attr-defined]
    counts = dict.fromkeys(MAIL_STATES, 0)
    attempts = 0
    try:
        async with (
            asyncio.timeout(SCRAPE_QUERY_TIMEOUT_SECONDS),
            get_engine().connect() as connection,
        ):
            rows = await connection.execute(MAIL_QUEUE_SQL, {"entrypoint": SEND_EMAIL})
            for state, jobs, state_attempts in rows:
                counts[state] = jobs
                attempts += state_attempts
    except Exception:  # noqa: BLE001 - an outage must not break the scrape; it is reported
        DATABASE_UP.set(0)
        return
    DATABASE_UP.set(1)
    for state, jobs in counts.items():
        MAIL_JOBS.labels(state=state).set(jobs)
    MAIL_FAILED_ATTEMPTS.set(attempts)


def install(app: FastAPI) -> None:
    """Instrument `app` and serve /metrics (outside the OpenAPI document)."""
    registry = CollectorRegistry()
    if MULTIPROCESS_ENV not in os.environ:
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        for metric in APP_METRICS:
            registry.register(metric)
    POOL_CAPACITY.set(settings.DB_POOL_SIZE)
    Instrumentator(
        should_group_status_codes=False, excluded_handlers=["/metrics"], registry=registry
    ).add(
        http_metrics.requests(registry=registry),
        http_metrics.latency(registry=registry),
    ).instrument(app)

    @app.get("/metrics", include_in_schema=False)
    async def scrape(_: Request) -> Response:
        await refresh()
        source = registry
        if MULTIPROCESS_ENV in os.environ:
            source = CollectorRegistry()
            multiprocess.MultiProcessCollector(source)  # type: ignore[no-untyped-call]
        return Response(generate_latest(source), media_type=CONTENT_TYPE_LATEST)
