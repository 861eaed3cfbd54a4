"""Loading the event of a registration route, with its lapsed offers settled first.

API-attendees.md: the register, unregister, accept, decline, GET registrations/me, attendee-list,
check-in (and stats) routes settle their event's lapsed offers before their own work.
"""

import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import SessionDep
from api.events import queries as event_queries
from api.events.dependencies import StaffedEventDep
from api.events.models import Event
from api.registrations import waitlist
from api.users.auth import CurrentUser


async def settle_first(session: AsyncSession, event: Event) -> None:
    """Settle the event's lapsed offers before a route's own work, in a transaction of their
    own, committed at once.

    So the expiry stands whatever the route answers next (a 409 OFFER_EXPIRED rolls back only
    the route's own work), the event's lock is held no longer than the settlement, and a read
    (whose session runs its statements one by one, in autocommit) gets a real transaction for
    it: the first commit ends that run, and the session's next statement opens a transaction.
    Before it, a route has only looked up its caller and the event. An event without lapsed
    offers costs at most one indexed read, and none without open offers.
    """
    if not await waitlist.has_lapsed_offers(session, event):
        return
    await session.commit()
    await waitlist.settle_lapsed_offers(session, event)
    await session.commit()


async def get_registrant_event(
    event_id: uuid.UUID, session: SessionDep, user: CurrentUser
) -> Event:
    """The event the caller registers for or holds a registration of: visible to them, else
    404; its lapsed offers settled."""
    event = await event_queries.get_visible_event(session, event_id, viewer=user)
    await settle_first(session, event)
    return event


async def get_settled_staffed_event(event: StaffedEventDep, session: SessionDep) -> Event:
    """As StaffedEventDep (the creator, managers and admins), its lapsed offers settled."""
    await settle_first(session, event)
    return event


RegistrantEventDep = Annotated[Event, Depends(get_registrant_event)]
SettledStaffedEventDep = Annotated[Event, Depends(get_settled_staffed_event)]
