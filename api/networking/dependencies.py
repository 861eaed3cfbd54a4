"""Loading the event of a networking route, with the directory's access rule (404 before 403)."""

import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy import select
from sqlmodel import col

from api.db import SessionDep
from api.events import queries as event_queries
from api.events.models import Event
from api.networking import service as directory_service
from api.users.auth import CurrentUser


async def get_attended_event(event_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Event:
    """The event, when the caller may see it, else 404 (what the route asks of the caller
    comes after)."""
    return await event_queries.get_visible_event(session, event_id, viewer=user)


async def get_attended_event_key_shared(
    event_id: uuid.UUID, session: SessionDep, user: CurrentUser
) -> Event:
    """As get_attended_event, for a route that inserts a row referring to the event (a
    membership, a request): the event's row locked FOR KEY SHARE, before anything else.

    The insert's foreign key would take that lock anyway, but only after the locks on the rows
    it rests on (a registration, two memberships), while the seat changes (unregistering, a
    cancellation) lock the event FOR UPDATE before they touch those rows: two orders, a
    deadlock. Taken first, the order is the seat changes' one, and the two wait for each
    other instead."""
    event = await session.scalar(
        select(Event)
        .where(col(Event.id) == event_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    if event is None or not event_queries.can_see(event, user):
        raise event_queries.EventNotFound()
    return event


AttendedEventDep = Annotated[Event, Depends(get_attended_event)]
KeySharedEventDep = Annotated[Event, Depends(get_attended_event_key_shared)]


async def get_directory_event(
    event: AttendedEventDep, session: SessionDep, user: CurrentUser
) -> Event:
    """The event whose directory the caller reads: a member, its creator, a manager or an
    admin; else 403 NOT_IN_DIRECTORY."""
    await directory_service.ensure_reader(session, event, user)
    return event


DirectoryEventDep = Annotated[Event, Depends(get_directory_event)]
