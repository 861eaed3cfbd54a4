"""Loading series for routes, with the access checks of the event routes (404 before 403)."""

import uuid
from typing import Annotated

from fastapi import Depends

from api.db import SessionDep
from api.errors import Unauthorized
from api.events.queries import NotEventOwner, can_manage
from api.series import queries as series_queries
from api.series.models import Series, SeriesPublic
from api.users.auth import CurrentUser, ManagerUser, OptionalUser

# What a route acting on a series for its creator (or staff) can answer before it does anything.
OWNER_ERRORS = (Unauthorized, NotEventOwner, series_queries.SeriesNotFound)


async def get_public_series_or_404(
    series_id: uuid.UUID, session: SessionDep, viewer: OptionalUser
) -> SeriesPublic:
    """Any caller: the series when it is visible to them, else 404."""
    return await series_queries.get_public_series(session, series_id, viewer=viewer)


async def get_managed_series(
    series_id: uuid.UUID, session: SessionDep, user: CurrentUser
) -> Series:
    """The creator or an admin (delete, cancel)."""
    series = await series_queries.get_visible_series(session, series_id, viewer=user)
    if not can_manage(series, user):
        raise NotEventOwner(reason="Only the series' creator or an admin may")
    return series


async def get_own_series(series_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Series:
    """The creator alone (resubmit)."""
    series = await series_queries.get_visible_series(session, series_id, viewer=user)
    if series.created_by != user.id:
        raise NotEventOwner(reason="Only the series' creator may")
    return series


async def get_series_for_review(
    series_id: uuid.UUID, session: SessionDep, user: ManagerUser
) -> Series:
    """Managers and admins (approve, reject); the own-series rule is the service's."""
    return await series_queries.get_visible_series(session, series_id, viewer=user)


PublicSeriesDep = Annotated[SeriesPublic, Depends(get_public_series_or_404)]
ManagedSeriesDep = Annotated[Series, Depends(get_managed_series)]
OwnSeriesDep = Annotated[Series, Depends(get_own_series)]
ReviewSeriesDep = Annotated[Series, Depends(get_series_for_review)]
