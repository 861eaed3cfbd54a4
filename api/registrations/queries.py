"""Reading registrations: an event's attendee list (a page, or every row for the CSV), and the
caller's own registrations with their events, places in line and check-in codes (all of them,
or theirs of one event)."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.events.models import Event
from api.pagination import PageParams, Total, paginate_rows
from api.registrations import hooks
from api.registrations.models import ACTIVE_REGISTRATION, Registration, RegistrationStatus
from api.registrations.service import NotConfirmed, RegistrationNotFound
from api.users.models import User


def _positions(*conditions: Any) -> Any:
    """Each waitlisted registration's place in its event's line."""
    return (
        select(
            col(Registration.id).label("id"),
            func.row_number()
            .over(partition_by=col(Registration.event_id), order_by=col(Registration.seq))
            .label("position"),
        )
        .where(col(Registration.status) == RegistrationStatus.WAITLISTED, *conditions)
        .subquery()
    )


def attendees_query(event: Event, status: RegistrationStatus | None) -> Select[Any]:
    """Confirmed first, then open offers, then the waitlist in order (the status type's order);
    live registrations unless `status` says."""
    positions = _positions(col(Registration.event_id) == event.id)
    statement = (
        select(Registration, User, positions.c.position)
        .join(User, col(User.id) == col(Registration.user_id))
        .outerjoin(positions, positions.c.id == col(Registration.id))
        .where(col(Registration.event_id) == event.id)
    )
    if status is None:
        statement = statement.where(col(Registration.status).in_(ACTIVE_REGISTRATION))
    else:
        statement = statement.where(col(Registration.status) == status)
    return statement.order_by(col(Registration.status), col(Registration.seq))


async def list_attendees(
    session: AsyncSession,
    *,
    event: Event,
    params: PageParams,
    status: RegistrationStatus | None = None,
) -> tuple[Sequence[Any], Total]:
    return await paginate_rows(session, attendees_query(event, status), params)


async def all_attendees(
    session: AsyncSession, *, event: Event, status: RegistrationStatus | None = None
) -> Sequence[Any]:
    return (await session.execute(attendees_query(event, status))).all()


def user_registrations_query(user_id: uuid.UUID) -> Select[Any]:
    """Rows (registration, event, place in line) of the user's registrations, newest first."""
    own_events = select(col(Registration.event_id)).where(col(Registration.user_id) == user_id)
    positions = _positions(col(Registration.event_id).in_(own_events))
    return (
        select(Registration, Event, positions.c.position)
        .join(Event, col(Event.id) == col(Registration.event_id))
        .outerjoin(positions, positions.c.id == col(Registration.id))
        .where(col(Registration.user_id) == user_id)
        .order_by(col(Registration.created_at).desc(), col(Registration.seq).desc())
    )


def own_registration_query(event_id: uuid.UUID, user_id: uuid.UUID) -> Select[tuple[Registration]]:
    """The user's live registration of the event, else their latest (read through the user's
    registrations index: a user has few)."""
    return (
        select(Registration)
        .where(col(Registration.event_id) == event_id, col(Registration.user_id) == user_id)
        .order_by(
            col(Registration.status).in_(ACTIVE_REGISTRATION).desc(),
            col(Registration.seq).desc(),
        )
        .limit(1)
    )


async def get_own_event_registration(
    session: AsyncSession, *, user: User, event: Event
) -> tuple[Registration, int | None, bool]:
    """GET /events/{id}/registrations/me: the user's live registration of the event, else their
    latest, with its place in line and whether they are in the event's networking directory
    (read in the same statement); 404 when they never registered."""
    statement = own_registration_query(event.id, user.id).add_columns(
        hooks.in_directory(event.id, user.id)
    )
    row = (await session.execute(statement)).first()
    if row is None:
        raise RegistrationNotFound()
    registration, in_directory = row
    if registration.status is not RegistrationStatus.WAITLISTED:
        return registration, None, in_directory
    position = await session.scalar(
        select(func.count()).where(
            col(Registration.event_id) == event.id,
            col(Registration.status) == RegistrationStatus.WAITLISTED,
            col(Registration.seq) <= registration.seq,
        )
    )
    return registration, position, in_directory


async def get_user_registration(
    session: AsyncSession, *, user: User, registration_id: uuid.UUID
) -> tuple[Registration, Event, int | None]:
    """One of the user's registrations with its event and place in line; another's is 404."""
    statement = user_registrations_query(user.id).where(col(Registration.id) == registration_id)
    row = (await session.execute(statement)).first()
    if row is None:
        raise RegistrationNotFound()
    registration, event, position = row
    return registration, event, position


async def get_ticket_code(session: AsyncSession, *, user: User, registration_id: uuid.UUID) -> str:
    """The check-in code of one of the user's registrations: 404 for another's, 409 unless
    CONFIRMED."""
    registration = await session.scalar(
        select(Registration).where(
            col(Registration.id) == registration_id, col(Registration.user_id) == user.id
        )
    )
    if registration is None:
        raise RegistrationNotFound()
    if registration.status is not RegistrationStatus.CONFIRMED or not registration.checkin_code:
        raise NotConfirmed(reason=f"The registration is {registration.status}")
    return registration.checkin_code


async def list_user_registrations(
    session: AsyncSession, *, user: User, params: PageParams
) -> tuple[Sequence[Any], Total]:
    """The user's registrations, newest first, each with its event and place in line."""
    return await paginate_rows(session, user_registrations_query(user.id), params)
