"""The application factory."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import structlog
from fastapi import Depends, FastAPI, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import cors, docs, embedded, lifecycle, metrics, ratelimit
from api.admin import router as admin_router
from api.audit import router as audit_router
from api.config import settings
from api.db import dispose_engine, get_engine
from api.errors import (
    RETRY_AFTER_SECONDS,
    RequestTooLarge,
    UnhandledErrorMiddleware,
    register_error_handlers,
)
from api.events import router as events_router
from api.exports import router as exports_router
from api.feeds import router as feeds_router
from api.idempotency.middleware import (
    IdempotencyMiddleware,
    document_idempotency,
)
from api.insights import router as insights_router
from api.logging import configure_logging
from api.networking import router as networking_router
from api.notifications import router as notifications_router
from api.observability import ObservabilityMiddleware
from api.openapi import JSON, RETRY_AFTER, check_operation_ids, document_api, operation_id
from api.outbox.openapi import document_domain_events
from api.registrations import router as registrations_router
from api.reminders import router as reminders_router
from api.series import router as series_router
from api.testing import router as testing_router
from api.testing import service as testing_service
from api.tokens import router as tokens_router
from api.users import pages
from api.users import router as users_router
from api.users.auth import auth_backend, fastapi_users, refusal_before_body
from api.users.models import UserCreate, UserRead
from api.users.openapi import document_auth_bodies, documented
from api.webhooks import router as webhooks_router

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 1024 * 1024


class ServiceStatus(BaseModel):
    """What the probes answer: ok, or (/ready only) unavailable when the database does not
    answer and draining while the process stops."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok", "unavailable", "draining"]


class BodySizeLimitMiddleware:
    """413 for a body over MAX_BODY_BYTES: a declared one before anything reads it, a chunked
    one (no Content-Length) as soon as the bytes read pass the limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            response = JSONResponse(
                {"detail": RequestTooLarge.code}, status_code=RequestTooLarge.status_code
            )
            await response(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                # An HTTPException passes through FastAPI's body parsing to api.errors.
                raise StarletteHTTPException(
                    RequestTooLarge.status_code, detail=RequestTooLarge.code
                )
            return message

        await self.app(scope, receive_within_limit, send)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    from api.users.bootstrap import ensure_first_admin
    from api.worker import InProcessWorker

    configure_logging()
    # ENVIRONMENT=test: this process follows the test clock (elsewhere None, nothing started).
    clock_follower = await testing_service.start_following()
    await ensure_first_admin()
    worker = InProcessWorker() if app.state.run_worker else None
    if worker is not None:
        await worker.start()
    log.info("started", docs=f"{settings.PUBLIC_BASE_URL}/docs")
    # What startup built lives as long as the process: out of the collector's way, so that a
    # full collection no longer walks every module, model and route on the request path.
    gc.freeze()
    try:
        yield
    finally:
        if worker is not None:
            await worker.stop()
        if clock_follower is not None:
            await clock_follower.stop()
        await dispose_engine()
        embedded.stop()


def _not_ready(state: Literal["unavailable", "draining"]) -> JSONResponse:
    return JSONResponse(
        {"status": state},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def create_app(*, run_worker: bool | None = None) -> FastAPI:
    app = FastAPI(
        title="event-manager",
        version="0.1.0",
        description="Professional networking events: accounts, events with approval, "
        "registrations with capacity and waitlist, notifications and an audit trail.",
        lifespan=lifespan,
        # Client function names (`list_events`, `auth_login`): renaming a handler renames them.
        generate_unique_id_function=operation_id,
        # Served by api.docs from the service's own copy of Swagger UI and ReDoc, not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.run_worker = settings.RUN_WORKER_IN_PROCESS if run_worker is None else run_worker
    register_error_handlers(app, refusal_before_body=refusal_before_body)
    # Innermost of ours: it sees bodies already capped, and its replays are logged and carry
    # their own request id.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(UnhandledErrorMiddleware)

    auth_routers = (
        # Verification is checked in UserManager.authenticate, so that logout stays open to
        # every token holder (a verified user who changes email keeps a working token).
        fastapi_users.get_auth_router(auth_backend),
        # UserCreate is a SQLModel, not a subclass of fastapi-users' BaseUserCreate: same interface.
        fastapi_users.get_register_router(UserRead, UserCreate),  # type: ignore[type-var]
        fastapi_users.get_verify_router(UserRead),
        fastapi_users.get_reset_password_router(),
    )
    for auth_router in auth_routers:
        app.include_router(
            documented(auth_router),
            prefix=f"{API_PREFIX}/auth",
            tags=["auth"],
            dependencies=[Depends(ratelimit.throttle_auth)],
        )
    app.include_router(tokens_router.router, prefix=API_PREFIX)
    app.include_router(users_router.router, prefix=API_PREFIX)
    app.include_router(registrations_router.me_router, prefix=API_PREFIX)
    app.include_router(exports_router.router, prefix=API_PREFIX)
    app.include_router(feeds_router.me_router, prefix=API_PREFIX)
    app.include_router(feeds_router.router, prefix=API_PREFIX)
    app.include_router(users_router.profiles_router, prefix=API_PREFIX)
    app.include_router(events_router.router, prefix=API_PREFIX)
    app.include_router(series_router.router, prefix=API_PREFIX)
    app.include_router(registrations_router.router, prefix=API_PREFIX)
    app.include_router(networking_router.router, prefix=API_PREFIX)
    app.include_router(networking_router.connections_router, prefix=API_PREFIX)
    app.include_router(networking_router.me_router, prefix=API_PREFIX)
    app.include_router(insights_router.router, prefix=API_PREFIX)
    app.include_router(notifications_router.preferences_router, prefix=API_PREFIX)
    app.include_router(notifications_router.router, prefix=API_PREFIX)
    app.include_router(audit_router.router, prefix=API_PREFIX)
    app.include_router(admin_router.router, prefix=API_PREFIX)
    app.include_router(webhooks_router.router, prefix=API_PREFIX)
    if testing_service.is_enabled():
        # The test clock and job triggers exist only in a test deployment (TEST-1).
        app.include_router(testing_router.router, prefix=API_PREFIX)
    app.include_router(pages.router)
    app.include_router(reminders_router.router)
    docs.install(app)
    document_domain_events(app)
    document_auth_bodies(app, prefix=f"{API_PREFIX}/auth")
    document_api(app, throttled=ratelimit.THROTTLED_PATHS)
    document_idempotency(app)

    @app.get("/health", tags=["operations"], summary="Liveness probe")
    async def check_health() -> ServiceStatus:
        """Liveness: answers without touching the database."""
        return ServiceStatus(status="ok")

    @app.get(
        "/ready",
        tags=["operations"],
        summary="Readiness probe",
        response_model=ServiceStatus,
        responses={
            503: {
                "model": ServiceStatus,
                "description": "Draining before a shutdown, or the database does not answer",
                "headers": RETRY_AFTER,
                "content": {
                    JSON: {
                        "examples": {
                            "unavailable": {
                                "summary": "The database did not answer within 3 s",
                                "value": {"status": "unavailable"},
                            },
                            "draining": {
                                "summary": "The process drains before it stops (SIGTERM)",
                                "value": {"status": "draining"},
                            },
                        }
                    }
                },
            }
        },
    )
    async def check_readiness() -> JSONResponse:
        """Readiness: 200 when the database answers within 3 s; 503 when it does not, or while
        the process drains before it stops (SIGTERM)."""
        if lifecycle.draining:
            # Another replica answers a retry: the balancer takes this one out.
            return _not_ready("draining")
        try:
            async with asyncio.timeout(3), get_engine().connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means not ready
            return _not_ready("unavailable")
        return JSONResponse({"status": "ok"})

    if settings.cors_origins:
        # Outside the idempotency replays (a stored answer never carries the grant of the origin
        # that first asked) and the error middlewares (a page reads its 413 or 503 too); inside
        # observability, so that preflights are logged and carry a request id too.
        cors.add_cors(app, settings.cors_origins)
    # Outermost (added last): every answer carries the request id, and is logged and counted.
    app.add_middleware(ObservabilityMiddleware, http_metrics=metrics.install(app))
    check_operation_ids(app)
    return app
