"""Connections between the members of an event's directory (API-attendees.md, Networking
directory and connections): requests, their answers, and the caller's contacts.

Two members both checked in may connect. A pair of users has one request or connection at most,
whichever event it was made at (the unique index uq_connection_pair on the unordered pair): a
contact is a person, whom the vCard export names by a UID of their own. Accepting shares the
two users' emails; until then neither sees the other's.
"""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, case, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.errors import AppError, Conflict, Forbidden, NotFound, Unprocessable
from api.events.models import Event
from api.events.notices import event_summary
from api.networking import service as directory_service
from api.networking.models import (
    Connection,
    ConnectionDirection,
    ConnectionPublic,
    ConnectionStatus,
    ConnectionUser,
    DirectoryMember,
)
from api.notifications.models import NotificationKind
from api.notifications.service import notify
from api.pagination import PageParams, Total, paginate_rows
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User


class CannotConnectToSelf(Unprocessable):
    """`user_id` is the caller's own id."""

    code = "CANNOT_CONNECT_TO_SELF"
    example_reason = "You cannot connect to yourself"


class AttendeeNotFound(NotFound):
    """No member of the event's directory has this `user_id`."""

    code = "ATTENDEE_NOT_FOUND"
    example_reason = "No member of this event's directory has this id"


class NotCheckedIn(Conflict):
    """The caller or the other member has not checked in at the event."""

    code = "NOT_CHECKED_IN"
    example_reason = "They have not checked in at this event"


class AlreadyConnected(Conflict):
    """The two are connected already (an accepted request cannot be declined: delete the
    connection)."""

    code = "ALREADY_CONNECTED"
    example_reason = "You are already connected"


class ConnectionPending(Conflict):
    """A request between the two, either way, is waiting for an answer."""

    code = "CONNECTION_PENDING"
    example_reason = "A request between you two is waiting for an answer"


class ConnectionNotFound(NotFound):
    """No connection or request of the caller has this id."""

    code = "CONNECTION_NOT_FOUND"


class NotAddressee(Forbidden):
    """Only the user asked may answer a request."""

    code = "NOT_ADDRESSEE"
    example_reason = "Only the user asked may answer a request"


# The other party's columns a connection shows: the public profile and the email.
OTHER_USER = (*directory_service.PUBLIC_USER, col(User.email))


def _other_party(viewer_id: uuid.UUID) -> Any:
    """The id of the connection's other party, seen from `viewer_id`."""
    return case(
        (col(Connection.requester_id) == viewer_id, col(Connection.addressee_id)),
        else_=col(Connection.requester_id),
    )


def _party(viewer_id: uuid.UUID) -> Any:
    return or_(col(Connection.requester_id) == viewer_id, col(Connection.addressee_id) == viewer_id)


def _with_other(viewer_id: uuid.UUID) -> Select[Any]:
    """Connections of `viewer_id` with their event's title and the other party's columns."""
    return (
        select(Connection, col(Event.title).label("event_title"), *OTHER_USER)
        .join(Event, col(Event.id) == col(Connection.event_id))
        .join(User, col(User.id) == _other_party(viewer_id))
        .where(_party(viewer_id))
    )


def _shown(
    connection: Connection, title: str, other: ConnectionUser, viewer_id: uuid.UUID
) -> ConnectionPublic:
    """A connection as `viewer_id` sees it: the other party's email only once ACCEPTED."""
    if connection.status is not ConnectionStatus.ACCEPTED:
        other.email = None
    outgoing = connection.requester_id == viewer_id
    return ConnectionPublic(
        id=connection.id,
        event_id=connection.event_id,
        event_title=title,
        status=connection.status,
        direction=ConnectionDirection.OUTGOING if outgoing else ConnectionDirection.INCOMING,
        created_at=connection.created_at,
        accepted_at=connection.accepted_at,
        user=other,
    )


def connection_view(row: Any, viewer_id: uuid.UUID) -> ConnectionPublic:
    """A row of _with_other() as `viewer_id` sees it."""
    values = row._asdict()
    connection: Connection = values.pop("Connection")
    title: str = values.pop("event_title")
    return _shown(connection, title, ConnectionUser.model_validate(values), viewer_id)


def _view(
    connection: Connection, title: str, other: User, viewer_id: uuid.UUID
) -> ConnectionPublic:
    return _shown(connection, title, ConnectionUser.model_validate(other), viewer_id)


def _who(user: User) -> dict[str, str]:
    """How notices name a user (a dict: kept out of the notice's data)."""
    names = " ".join(filter(None, [user.first_name, user.last_name]))
    return {"name": names or user.nickname, "nickname": user.nickname}


# --- asking -----------------------------------------------------------------------------------


async def _pair_connection(
    session: AsyncSession, first: uuid.UUID, second: uuid.UUID
) -> Connection | None:
    """The pair's request or connection, at any event (read through uq_connection_pair)."""
    low, high = sorted([first, second])
    requester, addressee = col(Connection.requester_id), col(Connection.addressee_id)
    result = await session.scalars(
        select(Connection)
        .where(func.least(requester, addressee) == low, func.greatest(requester, addressee) == high)
        .execution_options(populate_existing=True)
    )
    return result.first()


def _refuse_existing(connection: Connection) -> AppError:
    if connection.status is ConnectionStatus.ACCEPTED:
        return AlreadyConnected(reason="You are already connected")
    return ConnectionPending(reason="A request between you two is waiting for an answer")


async def request_connection(
    session: AsyncSession, *, event: Event, requester: User, addressee_id: uuid.UUID
) -> ConnectionPublic:
    """Ask another member of the event's directory to connect: PENDING, CONNECTION_REQUESTED to
    them. The checks run in the contract's order: self, the caller a member, the other a
    member, both checked in, no connection or request between the two already."""
    if addressee_id == requester.id:
        raise CannotConnectToSelf(reason="You cannot connect to yourself")
    # Both memberships, each with its holder's check-in, in one statement; locked (FOR KEY
    # SHARE) so that neither member can be taken out before this request is committed.
    rows = (
        await session.execute(
            select(col(DirectoryMember.user_id), col(Registration.checked_in_at), User)
            .join(
                Registration,
                (col(Registration.event_id) == col(DirectoryMember.event_id))
                & (col(Registration.user_id) == col(DirectoryMember.user_id))
                & (col(Registration.status) == RegistrationStatus.CONFIRMED),
            )
            .join(User, col(User.id) == col(DirectoryMember.user_id))
            .where(
                col(DirectoryMember.event_id) == event.id,
                col(DirectoryMember.user_id).in_([requester.id, addressee_id]),
            )
            .with_for_update(of=DirectoryMember, key_share=True)
        )
    ).all()
    members = {user_id: (checked_in_at, user) for user_id, checked_in_at, user in rows}
    if requester.id not in members:
        raise directory_service.NotInDirectory(
            reason="Opt into the event's directory to connect with its members"
        )
    if addressee_id not in members:
        raise AttendeeNotFound(reason="No member of this event's directory has this id")
    if members[requester.id][0] is None:
        raise NotCheckedIn(reason="You have not checked in at this event")
    checked_in_at, addressee = members[addressee_id]
    if checked_in_at is None:
        raise NotCheckedIn(reason="They have not checked in at this event")
    existing = await _pair_connection(session, requester.id, addressee_id)
    if existing is not None:
        raise _refuse_existing(existing)
    connection = Connection(event_id=event.id, requester_id=requester.id, addressee_id=addressee_id)
    # A request racing this one for the same pair (either way): the unique index keeps the one
    # committed first; this statement then inserts nothing, and the answer says what is there.
    inserted = await session.scalar(
        pg_insert(Connection)
        .values(connection.model_dump())
        .on_conflict_do_nothing()
        .returning(col(Connection.id))
    )
    if inserted is None:
        existing = await _pair_connection(session, requester.id, addressee_id)
        assert existing is not None  # the index refused this one for it
        raise _refuse_existing(existing)
    await _tell(
        session, NotificationKind.CONNECTION_REQUESTED, addressee, requester, connection, event
    )
    return _view(connection, event.title, addressee, requester.id)


async def _tell(
    session: AsyncSession,
    kind: NotificationKind,
    to: User,
    other: User,
    connection: Connection,
    event: Event,
) -> None:
    """A connection notice to `to` about `other` (data event_id, connection_id, user_id)."""
    await notify(
        session,
        to,
        kind,
        event=event_summary(event),
        connection_id=connection.id,
        user_id=other.id,
        other=_who(other),
    )


# --- answering --------------------------------------------------------------------------------


async def _locked(
    session: AsyncSession, connection_id: uuid.UUID, viewer: User
) -> tuple[Connection, Event, User]:
    """The viewer's connection (its row locked), its event and the other party; 404 for one
    the viewer is no party to."""
    row = (
        await session.execute(
            select(Connection, Event, User)
            .join(Event, col(Event.id) == col(Connection.event_id))
            .join(User, col(User.id) == _other_party(viewer.id))
            .where(col(Connection.id) == connection_id, _party(viewer.id))
            .with_for_update(of=Connection)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        raise ConnectionNotFound()
    connection, event, other = row
    return connection, event, other


async def _addressed(
    session: AsyncSession, connection_id: uuid.UUID, addressee: User
) -> tuple[Connection, Event, User]:
    connection, event, other = await _locked(session, connection_id, addressee)
    if connection.addressee_id != addressee.id:
        raise NotAddressee(reason="Only the user asked may answer a request")
    return connection, event, other


async def accept_connection(
    session: AsyncSession, *, connection_id: uuid.UUID, addressee: User
) -> ConnectionPublic:
    """The addressee accepts: ACCEPTED, the emails shared, CONNECTION_ACCEPTED to the
    requester. Accepting again answers the connection unchanged (and tells no one)."""
    connection, event, requester = await _addressed(session, connection_id, addressee)
    if connection.status is ConnectionStatus.PENDING:
        connection.status = ConnectionStatus.ACCEPTED
        connection.accepted_at = clock.now()
        session.add(connection)
        await session.flush()
        await _tell(
            session, NotificationKind.CONNECTION_ACCEPTED, requester, addressee, connection, event
        )
    return _view(connection, event.title, requester, addressee.id)


async def decline_connection(
    session: AsyncSession, *, connection_id: uuid.UUID, addressee: User
) -> None:
    """The addressee declines: the request is deleted, and the requester is not told."""
    connection, _, _ = await _addressed(session, connection_id, addressee)
    if connection.status is ConnectionStatus.ACCEPTED:
        raise AlreadyConnected(reason="The request was accepted: delete the connection instead")
    await session.delete(connection)
    await session.flush()


async def delete_connection(session: AsyncSession, *, connection_id: uuid.UUID, user: User) -> None:
    """Either party withdraws a request or ends a connection; the other is not told."""
    deleted = await session.scalar(
        delete(Connection)
        .where(col(Connection.id) == connection_id, _party(user.id))
        .returning(col(Connection.id))
    )
    if deleted is None:
        raise ConnectionNotFound()


# --- reading ----------------------------------------------------------------------------------


def user_connections_query(user_id: uuid.UUID, status: ConnectionStatus | None) -> Select[Any]:
    """The user's connections (`status` None: both kinds), newest first: by accepted_at once
    accepted, else by created_at."""
    statement = _with_other(user_id)
    if status is not None:
        statement = statement.where(col(Connection.status) == status)
    newest = func.coalesce(col(Connection.accepted_at), col(Connection.created_at))
    return statement.order_by(newest.desc(), col(Connection.id).desc())


async def list_connections(
    session: AsyncSession, *, user: User, status: ConnectionStatus, params: PageParams
) -> tuple[list[ConnectionPublic], Total]:
    rows, total = await paginate_rows(session, user_connections_query(user.id, status), params)
    return [connection_view(row, user.id) for row in rows], total


async def all_connections(
    session: AsyncSession, *, user_id: uuid.UUID, status: ConnectionStatus | None = None
) -> Sequence[ConnectionPublic]:
    """Every connection of the user (the vCard export, the personal data export)."""
    rows = await session.execute(user_connections_query(user_id, status))
    return [connection_view(row, user_id) for row in rows]
