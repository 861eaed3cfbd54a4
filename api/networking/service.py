"""The networking directory (API-attendees.md, Networking directory and connections): who is
in an event's directory, who may read it, and its pages.

A CONFIRMED registrant may opt in. Leaving CONFIRMED (unregistering, "can't come", the event's
cancellation, the account's deletion) or opting out takes them out at once, in the same
transaction, and withdraws the pending requests they are a party to at that event; accepted
connections stay (they are the person's contacts). Re-registering needs a new opt-in. The
registrations call in through api.registrations.hooks, joined at the end of this module.

Races: opting in locks the CONFIRMED registration it rests on (FOR SHARE) in the statement that
inserts the membership, so a release waits for it and then takes the new member out again, or
went first and the opt-in finds no CONFIRMED registration. A connection request locks the two
memberships it rests on (api.networking.connections), so taking a member out waits for it and
then withdraws the new request.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Result,
    Select,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.db import contains_pattern, shown_columns
from api.errors import Forbidden
from api.events import queries as event_queries
from api.events.models import TIMESTAMP, Event
from api.networking.models import (
    Connection,
    ConnectionStatus,
    DirectoryEntry,
    DirectoryMember,
    ExportedDirectoryMembership,
)
from api.pagination import PageParams, Total, paginate_rows
from api.registrations import hooks
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User, UserPublic


class NotConfirmedAttendee(Forbidden):
    """Only attendees with a CONFIRMED registration may join the event's directory."""

    code = "NOT_CONFIRMED_ATTENDEE"
    example_reason = "Only attendees with a CONFIRMED registration may join the directory"


class NotInDirectory(Forbidden):
    """Only members of the event's directory (and its creator, managers and admins) may do
    this."""

    code = "NOT_IN_DIRECTORY"
    example_reason = "Opt into the event's directory to see it"


# The columns of a public profile, read as Core rows (the directory only shows them).
PUBLIC_USER = shown_columns(User, UserPublic)


def in_directory(event_id: Any, user_id: Any) -> ColumnElement[bool]:
    """The SQL test of membership (values or SQL expressions)."""
    return exists().where(
        col(DirectoryMember.event_id) == event_id, col(DirectoryMember.user_id) == user_id
    )


def _holds_seat(event_id: Any, user_id: Any) -> ColumnElement[bool]:
    return exists().where(
        col(Registration.event_id) == event_id,
        col(Registration.user_id) == user_id,
        col(Registration.status) == RegistrationStatus.CONFIRMED,
    )


async def is_member(session: AsyncSession, event_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(in_directory(event_id, user_id))))


async def ensure_reader(session: AsyncSession, event: Event, user: User) -> None:
    """Members, the event's creator, managers and admins read its directory (also after the
    event); anyone else 403 NOT_IN_DIRECTORY."""
    if event_queries.can_see_attendees(event, user):
        return
    if not await is_member(session, event.id, user.id):
        raise NotInDirectory(reason="Opt into the event's directory to see it")


# --- opting in and out ------------------------------------------------------------------------


async def join_directory(session: AsyncSession, *, event: Event, user: User) -> datetime:
    """Put the user in the event's directory: when they joined (the first time, on a repeat).

    One statement: the CONFIRMED registration is read and locked (FOR SHARE) and the membership
    inserted from it; a repeat updates nothing and returns the first joined_at."""
    seat = (
        select(
            col(Registration.event_id),
            col(Registration.user_id),
            literal(clock.now(), TIMESTAMP),
        )
        .where(
            col(Registration.event_id) == event.id,
            col(Registration.user_id) == user.id,
            col(Registration.status) == RegistrationStatus.CONFIRMED,
        )
        .with_for_update(read=True)
    )
    insert = pg_insert(DirectoryMember).from_select(["event_id", "user_id", "joined_at"], seat)
    # DO UPDATE to the same value rather than DO NOTHING: it returns the row that is there,
    # also one a parallel request of the same user has just inserted.
    statement = insert.on_conflict_do_update(
        index_elements=["event_id", "user_id"],
        set_={"joined_at": col(DirectoryMember.joined_at)},
    ).returning(col(DirectoryMember.joined_at))
    joined_at: datetime | None = (await session.execute(statement)).scalar_one_or_none()
    if joined_at is None:
        raise NotConfirmedAttendee(
            reason="Only attendees with a CONFIRMED registration may join the directory"
        )
    return joined_at


async def _take_out(session: AsyncSession, event_ids: Sequence[uuid.UUID], *which: Any) -> None:
    """Delete the memberships of the events matching `which`; when any went, withdraw (delete)
    those events' pending requests whose requester or addressee is no longer a member there.

    Two statements, the second after the first: when the first waited for a request being made
    (which locks the two memberships), the second sees that request and withdraws it."""
    gone = await session.execute(
        delete(DirectoryMember).where(col(DirectoryMember.event_id).in_(event_ids), *which)
    )
    if not gone.rowcount:  # type: ignore[attr-defined]
        return
    event_id = col(Connection.event_id)
    await session.execute(
        delete(Connection).where(
            event_id.in_(event_ids),
            col(Connection.status) == ConnectionStatus.PENDING,
            or_(
                ~in_directory(event_id, col(Connection.requester_id)),
                ~in_directory(event_id, col(Connection.addressee_id)),
            ),
        )
    )


async def leave_directory(session: AsyncSession, *, event: Event, user: User) -> None:
    """Opt out: out of the directory, the pending requests at the event withdrawn; nothing
    when the user was not in it."""
    await _take_out(session, [event.id], col(DirectoryMember.user_id) == user.id)


async def prune_directory(
    session: AsyncSession, event_ids: Sequence[uuid.UUID], user_id: uuid.UUID | None
) -> None:
    """Take out of the events' directories `user_id` (None: anyone) unless they still hold a
    CONFIRMED registration of that event: after registrations left CONFIRMED
    (api.registrations.hooks)."""
    which = [~_holds_seat(col(DirectoryMember.event_id), col(DirectoryMember.user_id))]
    if user_id is not None:
        which.append(col(DirectoryMember.user_id) == user_id)
    await _take_out(session, event_ids, *which)


# --- reading ----------------------------------------------------------------------------------


def directory_query(
    event_id: uuid.UUID, *, is_professional: bool | None, q: str | None
) -> Select[Any]:
    """The event's members (public profile columns, then joined_at), by nickname.

    Nicknames are unique whatever their case (uq_user_nickname_lower), so lower(nickname) orders
    the members completely; the id only makes that explicit.

    The filters run on the members' user rows, read one by one by primary key: the membership's
    primary key (event first) finds the event's members, and the work grows with the directory,
    which the event's capacity bounds, never with the user table. The LATERAL subquery's OFFSET
    0 keeps PostgreSQL to that plan: as a plain join, the planner underrates the ILIKE filters
    and may scan or walk the whole user table instead (measured with 100,000 users and 2,000
    members: 55-100 ms, against 10-12 ms this way; the same for a directory of 200). No trigram
    index: the embedded PostgreSQL (pgserver) has no pg_trgm, and a scan of the members is what
    a directory needs anyway."""
    conditions = [col(User.id) == col(DirectoryMember.user_id)]
    if is_professional is not None:
        conditions.append(col(User.is_professional).is_(is_professional))
    if q:
        pattern = contains_pattern(q)
        conditions.append(
            or_(
                func.concat_ws(" ", col(User.first_name), col(User.last_name)).ilike(
                    pattern, escape="\\"
                ),
                col(User.nickname).ilike(pattern, escape="\\"),
                col(User.bio).ilike(pattern, escape="\\"),
            )
        )
    profile = select(*PUBLIC_USER).where(*conditions).offset(literal_column("0")).lateral("profile")
    return (
        select(*profile.c, col(DirectoryMember.joined_at))
        .select_from(DirectoryMember)
        .join(profile, true())
        .where(col(DirectoryMember.event_id) == event_id)
        .order_by(func.lower(profile.c.nickname), profile.c.id)
    )


def directory_entry(row: Any) -> DirectoryEntry:
    values = row._asdict()
    joined_at = values.pop("joined_at")
    return DirectoryEntry(user=UserPublic.model_validate(values), joined_at=joined_at)


async def list_directory(
    session: AsyncSession,
    *,
    event: Event,
    params: PageParams,
    is_professional: bool | None = None,
    q: str | None = None,
) -> tuple[list[DirectoryEntry], Total]:
    statement = directory_query(event.id, is_professional=is_professional, q=q)
    rows, total = await paginate_rows(session, statement, params)
    return [directory_entry(row) for row in rows], total


async def user_memberships(
    session: AsyncSession, *, user_id: uuid.UUID
) -> Sequence[ExportedDirectoryMembership]:
    """The user's directory memberships, newest first (the personal data export)."""
    rows: Result[Any] = await session.execute(
        select(
            col(DirectoryMember.event_id),
            col(Event.title).label("event_title"),
            col(DirectoryMember.joined_at),
        )
        .join(Event, col(Event.id) == col(DirectoryMember.event_id))
        .where(col(DirectoryMember.user_id) == user_id)
        .order_by(col(DirectoryMember.joined_at).desc(), col(DirectoryMember.event_id))
    )
    return [ExportedDirectoryMembership.model_validate(row._asdict()) for row in rows]


# Registrations leaving CONFIRMED take their holders out of the directory, in their transaction.
hooks.join_directory_rules(left_confirmed=prune_directory, in_directory=in_directory)
