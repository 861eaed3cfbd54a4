"""The personal calendar feed: its URL (/users/me/calendar-feed) and the feed itself
(/calendar/{feed_token}.ics), which the token in its URL opens: it takes no Authorization."""

from typing import Any

from fastapi import APIRouter, Request, Response

from api.db import SessionDep
from api.errors import Unauthorized
from api.feeds import service as feed_service
from api.feeds.models import CalendarFeedPublic
from api.http_cache import body_with_etag
from api.openapi import error_responses
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users.auth import CurrentUser

me_router = APIRouter(prefix="/users/me/calendar-feed", tags=["calendar-feed"])
router = APIRouter(prefix="/calendar", tags=["calendar-feed"])

# The feed is the owner's alone (the URL is a secret): no shared cache keeps it, and clients
# revalidate (a 304 when nothing changed).
FEED_CACHE_CONTROL = "private, no-cache"
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: If-None-Match holds the current ETag"}
}


@me_router.get(
    "",
    summary="Get your calendar feed URL",
    response_model=CalendarFeedPublic,
    responses=error_responses(Unauthorized),
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def get_calendar_feed(user: CurrentUser, session: SessionDep) -> CalendarFeedPublic:
    """The caller's personal calendar feed URL (made on the first call); keep it private."""
    return await feed_service.get_feed(session, user_id=user.id)


@me_router.post(
    "/rotate",
    summary="Replace your calendar feed URL",
    response_model=CalendarFeedPublic,
    responses=error_responses(Unauthorized),
)
async def rotate_calendar_feed(user: CurrentUser, session: SessionDep) -> CalendarFeedPublic:
    """Replace the caller's feed URL (login tokens only): the old URL is not found from now on."""
    return await feed_service.rotate_feed(session, user_id=user.id)


@router.get(
    "/{feed_token}.ics",
    summary="Read a calendar feed",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {"schema": {"type": "string"}}}},
        **NOT_MODIFIED,
        **error_responses(feed_service.CalendarFeedNotFound),
    },
)
async def get_calendar_feed_file(
    feed_token: str, session: SessionDep, request: Request
) -> Response:
    """The feed (RFC 5545) for calendar applications to subscribe to; the URL is its key."""
    body = await feed_service.read_feed(session, token=feed_token)
    return body_with_etag(
        request, body, media_type="text/calendar", cache_control=FEED_CACHE_CONTROL
    )
