"""Reading events: who may see and do what (the visibility rule, written once in SQL and used by
every read), the loaders (get_visible_event, get_public_event, and lock_event, which takes the
event's row lock for a change) and listing.

The errors a loader or an access check raises are here; the workflow's own are in
api/events/service.py.
"""

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, bindparam, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.db import contains_pattern, shown_columns
from api.errors import Forbidden, NotFound
from api.events.models import Event, EventPublic, EventStatus, EventType, seats_left
from api.pagination import PageParams, Total, paginate
from api.users.models import STAFF_ROLES, User, UserRole, Viewer


class EventNotFound(NotFound):
    """No event has this id, or the caller may not see it."""

    code = "EVENT_NOT_FOUND"


class NotEventOwner(Forbidden):
    """Only the creator may do this, and the staff the route names (admins; for the attendee
    list, check-in and statistics, managers too)."""

    code = "NOT_EVENT_OWNER"
    example_reason = "Only the event's creator or an admin may"


# --- who may see and do what ------------------------------------------------------------------


def is_staff(user: User | Viewer | None) -> bool:
    return user is not None and user.role in STAFF_ROLES


def can_see(event: Event, viewer: User | None) -> bool:
    """PUBLISHED events are public; the rest only for the creator, managers and admins."""
    return (
        event.status is EventStatus.PUBLISHED
        or is_staff(viewer)
        or (viewer is not None and event.created_by == viewer.id)
    )


class Created(Protocol):
    """What an ownership check reads: an event's, or a series', creator."""

    @property
    def created_by(self) -> uuid.UUID | None: ...


def can_manage(event: Created, user: User) -> bool:
    """Edit, delete, cancel: the creator or an admin."""
    return user.role is UserRole.ADMIN or event.created_by == user.id


def can_see_attendees(event: Event, user: User) -> bool:
    return is_staff(user) or event.created_by == user.id


def visibility_rule(
    viewer: User | Viewer | None, *, status: Any, created_by: Any, viewer_id: Any = None
) -> Any:
    """The SQL form of can_see(), over the status and creator columns given (an event's, or a
    series' in api/series: both follow this rule). `viewer_id` stands for the viewer's id when
    given (a bind parameter, in a statement built once for every viewer of the same kind)."""
    if is_staff(viewer):
        return true()
    published = status == EventStatus.PUBLISHED
    if viewer is None:
        return published
    return or_(published, created_by == (viewer.id if viewer_id is None else viewer_id))


def _visible_to(viewer: User | Viewer | None, *, viewer_id: Any = None) -> Any:
    """can_see() in SQL, on events."""
    return visibility_rule(
        viewer, status=col(Event.status), created_by=col(Event.created_by), viewer_id=viewer_id
    )


def event_by_id(event_id: uuid.UUID, *, lock: bool) -> Select[tuple[Event]]:
    """The event; with `lock`, its row lock taken and the row re-read (seats may have moved)."""
    statement = select(Event).where(col(Event.id) == event_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return statement


async def get_visible_event(
    session: AsyncSession, event_id: uuid.UUID, *, viewer: User | None, lock: bool = False
) -> Event:
    """The event, or 404 when it does not exist or the viewer may not see it."""
    event = await session.scalar(event_by_id(event_id, lock=lock))
    if event is None or not can_see(event, viewer):
        raise EventNotFound()
    return event


# The columns EventPublic shows (spots_left is computed from two of them).
PUBLIC_EVENT = select(*shown_columns(Event, EventPublic)).where(
    col(Event.id) == bindparam("event_id")
)
# PUBLIC_EVENT with the visibility rule, by kind of viewer (None: anonymous, True: staff, False:
# anyone else). Built once: building a select of two dozen columns and its cache key costs
# more CPU than running it.
_public_event_for: dict[bool | None, Select[Any]] = {}


async def get_public_event(
    session: AsyncSession, event_id: uuid.UUID, *, viewer: Viewer | None
) -> EventPublic:
    """GET /events/{id}: the event in its public shape, or 404 when the viewer may not see it.

    A read that changes nothing: a Core row of exactly the public columns, with the visibility
    rule in SQL, costs far less CPU than an ORM Event that nothing will track.
    """
    kind = None if viewer is None else is_staff(viewer)
    statement = _public_event_for.get(kind)
    if statement is None:
        visible = _visible_to(viewer, viewer_id=bindparam("viewer_id"))
        statement = _public_event_for[kind] = PUBLIC_EVENT.where(visible)
    parameters = {"event_id": event_id, "viewer_id": None if viewer is None else viewer.id}
    row = (await (await session.connection()).execute(statement, parameters)).first()
    if row is None:
        raise EventNotFound()
    values = row._asdict()
    values["spots_left"] = seats_left(values["capacity"], values["registered_count"])
    return EventPublic.model_validate(values)


def soonest_first(events: Iterable[Event]) -> list[Event]:
    """Events in the order listings show them: by start, then id."""
    return sorted(events, key=lambda event: (event.starts_at, event.id))


async def lock_event(session: AsyncSession, event: Event) -> Event:
    """Take the event's row lock and re-read it into `event`."""
    await session.execute(event_by_id(event.id, lock=True))
    return event


# --- listing ----------------------------------------------------------------------------------


async def list_events(
    session: AsyncSession,
    *,
    viewer: User | None,
    params: PageParams,
    q: str | None = None,
    event_type: EventType | None = None,
    tag: str | None = None,
    starts_after: datetime | None = None,
    starts_before: datetime | None = None,
    has_spots: bool | None = None,
    status: EventStatus | None = None,
    mine: bool = False,
    series_id: uuid.UUID | None = None,
) -> tuple[Sequence[Event], Total]:
    """Upcoming published events by default, soonest first; only what the viewer may see.

    `status` defaults to PUBLISHED, or to every status the viewer may see for the caller's own
    events (`mine`) and for the occurrences of a series (`series_id`); the time window
    defaults to events that have not started yet.
    """
    statement = select(Event).where(_visible_to(viewer))
    if mine:
        assert viewer is not None
        statement = statement.where(col(Event.created_by) == viewer.id)
    if series_id is not None:
        statement = statement.where(col(Event.series_id) == series_id)
    if status is not None or not (mine or series_id is not None):
        statement = statement.where(col(Event.status) == (status or EventStatus.PUBLISHED))
    statement = statement.where(col(Event.starts_at) >= (starts_after or clock.now()))
    if starts_before is not None:
        statement = statement.where(col(Event.starts_at) < starts_before)
    if q:
        pattern = contains_pattern(q)
        statement = statement.where(
            or_(
                col(Event.title).ilike(pattern, escape="\\"),
                col(Event.description).ilike(pattern, escape="\\"),
            )
        )
    if event_type is not None:
        statement = statement.where(col(Event.event_type) == event_type)
    if tag:
        statement = statement.where(col(Event.tags).contains([tag.strip().lower()]))
    if has_spots is not None:
        # The predicate of ix_event_open_status_starts_at: keep the two alike.
        open_seats = or_(
            col(Event.capacity).is_(None), col(Event.registered_count) < col(Event.capacity)
        )
        statement = statement.where(open_seats if has_spots else ~open_seats)
    ordered = statement.order_by(col(Event.starts_at).asc(), col(Event.id).asc())
    return await paginate(session, ordered, params)
