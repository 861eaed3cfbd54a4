"""Event insights: an event's statistics, as JSON and as a chart (creator, managers, admins).
The counting is in api/insights/service.py, the drawing in api/insights/chart.py."""

from functools import cache, partial

import anyio
from anyio.to_thread import run_sync
from fastapi import APIRouter, Response

from api.db import SessionDep
from api.events.dependencies import OWNER_ERRORS
from api.insights import chart
from api.insights import service as insights_service
from api.insights.models import EventStats
from api.openapi import error_responses
from api.registrations.dependencies import SettledStaffedEventDep
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope

router = APIRouter(prefix="/events", tags=["insights"])

# Charts drawn at once, across requests: each takes up to about 150 ms of CPU, which a
# burst of them must not take from every other request.
CHART_THREADS = 2


@cache
def _chart_limiter() -> anyio.CapacityLimiter:
    # Created on first use: a limiter belongs to a running event loop.
    return anyio.CapacityLimiter(CHART_THREADS)


@router.get(
    "/{event_id}/stats",
    summary="Get an event's statistics",
    response_model=EventStats,
    responses=error_responses(*OWNER_ERRORS),
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def get_event_stats(event: SettledStaffedEventDep, session: SessionDep) -> EventStats:
    """The event's registrations by status, no-show rate, waitlist conversion and day-by-day
    timeline (creator, managers, admins)."""
    return await insights_service.get_event_stats(session, event=event)


@router.get(
    "/{event_id}/stats.png",
    summary="Get an event's registration chart",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses(*OWNER_ERRORS),
    },
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def get_event_stats_chart(event: SettledStaffedEventDep, session: SessionDep) -> Response:
    """The event's cumulative registrations per day as a PNG chart (800 x 450): registered,
    still registered net of cancellations, and the capacity line (creator, managers, admins)."""
    stats = await insights_service.get_event_stats(session, event=event)
    # Drawn off the event loop, which other requests share, from plain values: no ORM object
    # crosses into the thread.
    draw = partial(chart.stats_png, stats, title=event.title, timezone=event.timezone)
    png = await run_sync(draw, limiter=_chart_limiter())
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})
