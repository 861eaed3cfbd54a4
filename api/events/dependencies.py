"""Loading events for routes, with the access checks of API.md (404 before 403)."""

import uuid
from typing import Annotated

from fastapi import Depends

from api.db import SessionDep
from api.errors import Unauthorized
from api.events import queries as event_queries
from api.events.models import Event, EventPublic
from api.users.auth import CurrentUser, ManagerUser, OptionalUser, OptionalViewer

# What a route acting on an event for its creator (or staff) can answer before it does anything.
OWNER_ERRORS = (Unauthorized, event_queries.NotEventOwner, event_queries.EventNotFound)


async def get_event_or_404(event_id: uuid.UUID, session: SessionDep, viewer: OptionalUser) -> Event:
    """Any caller: the event when it is visible to them, else 404."""
    return await event_queries.get_visible_event(session, event_id, viewer=viewer)


async def get_public_event_or_404(
    event_id: uuid.UUID, session: SessionDep, viewer: OptionalViewer
) -> EventPublic:
    """Any caller, reading only: the event's public shape when it is visible to them, else 404."""
    return await event_queries.get_public_event(session, event_id, viewer=viewer)


async def get_managed_event(event_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Event:
    """The creator or an admin (edit, delete, cancel)."""
    event = await event_queries.get_visible_event(session, event_id, viewer=user)
    if not event_queries.can_manage(event, user):
        raise event_queries.NotEventOwner(reason="Only the event's creator or an admin may")
    return event


async def get_own_event(event_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Event:
    """The creator alone (resubmit)."""
    event = await event_queries.get_visible_event(session, event_id, viewer=user)
    if event.created_by != user.id:
        raise event_queries.NotEventOwner(reason="Only the event's creator may")
    return event


async def get_event_for_review(
    event_id: uuid.UUID, session: SessionDep, user: ManagerUser
) -> Event:
    """Managers and admins (approve, reject); the own-event rule is the service's."""
    return await event_queries.get_visible_event(session, event_id, viewer=user)


async def get_staffed_event(event_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Event:
    """The creator, managers and admins (attendee list, check-in)."""
    event = await event_queries.get_visible_event(session, event_id, viewer=user)
    if not event_queries.can_see_attendees(event, user):
        raise event_queries.NotEventOwner(
            reason="Only the event's creator, managers and admins may"
        )
    return event


EventDep = Annotated[Event, Depends(get_event_or_404)]
PublicEventDep = Annotated[EventPublic, Depends(get_public_event_or_404)]
ManagedEventDep = Annotated[Event, Depends(get_managed_event)]
OwnEventDep = Annotated[Event, Depends(get_own_event)]
ReviewEventDep = Annotated[Event, Depends(get_event_for_review)]
StaffedEventDep = Annotated[Event, Depends(get_staffed_event)]
