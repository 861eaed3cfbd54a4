"""Prometheus metrics at /metrics.

- `http_requests_total` and `http_request_duration_seconds` by route template, method and status,
  recorded by api.observability's middleware (`HttpMetrics`);
- `event_manager_db_pool_connections_in_use` and `..._capacity`: the SQLAlchemy pool at the scrape;
- `event_manager_mail_jobs{state}` (waiting, retrying, sending, failed) and
  `event_manager_mail_failed_attempts`: the mail queue, read from the database at each scrape;
- `event_manager_database_up`: whether that read succeeded;
- `event_manager_rate_limit_storage_errors_total`: throttled requests let through unchecked
  because the throttle's storage (RATE_LIMIT_STORAGE_URL) failed or timed out (api.ratelimit).

With several worker processes (`serve --workers N`) the command sets PROMETHEUS_MULTIPROC_DIR and
every scrape aggregates all workers (prometheus_client's multiprocess mode); the pool and queue
figures are then those of each worker's latest scrape.
"""

import asyncio
import os
from typing import Final

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from api.config import settings
from api.db import get_engine
from api.mail.service import SEND_EMAIL
from api.ratelimit import STORAGE_ERRORS

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
APP_METRICS = (
    POOL_IN_USE,
    POOL_CAPACITY,
    MAIL_JOBS,
    MAIL_FAILED_ATTEMPTS,
    DATABASE_UP,
    STORAGE_ERRORS,
)

# The HTTP series keep the names, help texts, labels and buckets that
# prometheus-fastapi-instrumentator 8.1.0 gave them (should_group_status_codes=False,
# excluded_handlers=["/metrics"]), so that dashboards and alerts read them as before.
HTTP_LABELS = ("handler", "method", "status")
# The handler of a request that matched no route: its path may hold ids, so it is not a label.
UNMATCHED_HANDLER: Final = "none"
# Excluded like the instrumentator's pattern: any handler (or unmatched path) containing it.
EXCLUDED_HANDLER: Final = "/metrics"
_Series = tuple[Counter, Histogram] | None


class HttpMetrics:
    """`http_requests_total` and `http_request_duration_seconds` of one app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            HTTP_LABELS,
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Duration of HTTP requests in seconds",
            HTTP_LABELS,
            registry=registry,
        )  # prometheus_client's default buckets, 5 ms to 10 s
        # The labelled children by (handler, method, status): `labels()` validates, converts and
        # locks on every call; a dict lookup is all a known series needs. Handlers are route
        # templates or UNMATCHED_HANDLER, so the keys are as bounded as the series themselves.
        self._series: dict[tuple[str, str, int], _Series] = {}

    def observe(
        self, route: str | None, path: str, method: str, status: int, seconds: float
    ) -> None:
        """Count one request answered by `route` (a template; None when no route matched)."""
        if route is None:
            if EXCLUDED_HANDLER in path:
                return
            route = UNMATCHED_HANDLER
        key = (route, method, status)
        try:
            series = self._series[key]
        except KeyError:
            series = self._series[key] = self._new_series(route, method, status)
        if series is not None:
            series[0].inc()
            series[1].observe(seconds)

    def _new_series(self, route: str, method: str, status: int) -> _Series:
        if EXCLUDED_HANDLER in route:
            return None
        labels = (route, method, str(int(status)))
        return self.requests.labels(*labels), self.duration.labels(*labels)


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


def install(app: FastAPI) -> HttpMetrics:
    """Serve /metrics for `app` (outside the OpenAPI document); returns the HTTP series for the
    middleware that records them."""
    registry = CollectorRegistry()
    if MULTIPROCESS_ENV not in os.environ:
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        for metric in APP_METRICS:
            registry.register(metric)
    POOL_CAPACITY.set(settings.DB_POOL_SIZE)
    http_metrics = HttpMetrics(registry)

    @app.get("/metrics", include_in_schema=False)
    async def scrape(_: Request) -> Response:
        await refresh()
        source = registry
        if MULTIPROCESS_ENV in os.environ:
            source = CollectorRegistry()
            multiprocess.MultiProcessCollector(source)  # type: ignore[no-untyped-call]
        return Response(generate_latest(source), media_type=CONTENT_TYPE_LATEST)

    return http_metrics
