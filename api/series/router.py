"""The /series routes: recurring series and their review, as the event routes do for one event
(each occurrence is an event: GET /events?series_id= lists them)."""

from fastapi import APIRouter, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import SessionDep
from api.errors import Forbidden, Unauthorized
from api.events import service as event_service
from api.events.models import Cancellation, ReviewFeedback
from api.openapi import error_responses
from api.series import queries as series_queries
from api.series import service as series_service
from api.series.dependencies import (
    OWNER_ERRORS,
    ManagedSeriesDep,
    OwnSeriesDep,
    PublicSeriesDep,
    ReviewSeriesDep,
)
from api.series.models import Series, SeriesCreate, SeriesPublic
from api.series.rrule import InvalidRrule
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users.auth import CurrentUser, ManagerUser
from api.users.models import User

router = APIRouter(prefix="/series", tags=["series"])

READ = token_scope(Scope.EVENTS_READ)
WRITE = token_scope(Scope.EVENTS_WRITE)
TRANSITION_ERRORS = error_responses(*OWNER_ERRORS, event_service.InvalidEventTransition)
REVIEW_ERRORS = error_responses(
    Unauthorized,
    Forbidden,
    event_service.CannotReviewOwnEvent,
    series_queries.SeriesNotFound,
    event_service.InvalidEventTransition,
)


async def _public(session: AsyncSession, series: Series, viewer: User) -> SeriesPublic:
    """The series as GET /series/{id} shows it after the change."""
    return await series_queries.get_public_series(session, series.id, viewer=viewer)


@router.post(
    "",
    summary="Propose a recurring series",
    response_model=SeriesPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(Unauthorized, Forbidden, InvalidRrule),
    openapi_extra=WRITE,
)
async def create_series(
    series_in: SeriesCreate, creator: ManagerUser, session: SessionDep
) -> SeriesPublic:
    """Propose a recurring series (managers and admins): its occurrences are PENDING events
    that wait, as one, for another's approval."""
    series = await series_service.create_series(session, creator=creator, series_in=series_in)
    return await _public(session, series, creator)


@router.get(
    "/{series_id}",
    summary="Get a series",
    response_model=SeriesPublic,
    responses=error_responses(series_queries.SeriesNotFound),
    openapi_extra=READ,
)
async def get_series(series: PublicSeriesDep) -> SeriesPublic:
    """One series, visible as an event is (PUBLISHED to everyone)."""
    return series


@router.post(
    "/{series_id}/approve",
    summary="Approve a series",
    response_model=SeriesPublic,
    responses=REVIEW_ERRORS,
    openapi_extra=WRITE,
)
async def approve_series(
    series: ReviewSeriesDep, reviewer: ManagerUser, session: SessionDep
) -> SeriesPublic:
    """Publish a PENDING series and its occurrences (a manager other than its creator, or an
    admin); audited."""
    approved = await series_service.approve_series(session, reviewer=reviewer, series=series)
    return await _public(session, approved, reviewer)


@router.post(
    "/{series_id}/reject",
    summary="Reject a series",
    response_model=SeriesPublic,
    responses=REVIEW_ERRORS,
    openapi_extra=WRITE,
)
async def reject_series(
    review: ReviewFeedback, series: ReviewSeriesDep, reviewer: ManagerUser, session: SessionDep
) -> SeriesPublic:
    """Send a PENDING series back with feedback, its occurrences with it; audited."""
    rejected = await series_service.reject_series(
        session, reviewer=reviewer, series=series, feedback=review.feedback
    )
    return await _public(session, rejected, reviewer)


@router.post(
    "/{series_id}/submit",
    summary="Resubmit a series",
    response_model=SeriesPublic,
    responses=TRANSITION_ERRORS,
    openapi_extra=WRITE,
)
async def submit_series(
    series: OwnSeriesDep, creator: CurrentUser, session: SessionDep
) -> SeriesPublic:
    """Resubmit a REJECTED series for review after editing its occurrences (its creator)."""
    submitted = await series_service.submit_series(session, creator=creator, series=series)
    return await _public(session, submitted, creator)


@router.delete(
    "/{series_id}",
    summary="Delete a series",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=TRANSITION_ERRORS,
    openapi_extra=WRITE,
)
async def delete_series(series: ManagedSeriesDep, session: SessionDep) -> Response:
    """Delete a PENDING or REJECTED series and its occurrences (creator or admin)."""
    await series_service.delete_series(session, series=series)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{series_id}/cancel",
    summary="Cancel a series",
    response_model=SeriesPublic,
    responses=TRANSITION_ERRORS,
    openapi_extra=WRITE,
)
async def cancel_series(
    series: ManagedSeriesDep,
    actor: CurrentUser,
    session: SessionDep,
    cancellation: Cancellation | None = None,
) -> SeriesPublic:
    """Cancel a PENDING or PUBLISHED series (creator or admin): every occurrence not started
    and not cancelled is cancelled, and its registrants are told."""
    cancelled = await series_service.cancel_series(
        session, actor=actor, series=series, reason=cancellation.reason if cancellation else None
    )
    return await _public(session, cancelled, actor)
