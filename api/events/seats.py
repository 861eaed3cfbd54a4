"""The seat decision of a registration, in one statement.

A popular event's registrations queue on its row lock, which is held until the transaction
commits: every round trip between taking it and the commit is paid once per registrant, in
line. So the lock is taken by the one statement that decides: it locks the event row, re-checks
that registration is open on the row as locked (a cancellation or a close that happened while
waiting is seen: under READ COMMITTED a locking read that waited re-reads the newest version of
the row), inserts the registration with a seat or a place in line, and moves the counter that
matches. The notice is written after it, and everything else before it.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import aliased
from sqlmodel import col

from api.events.models import Event, EventStatus, Registration, RegistrationStatus

_status_type = Registration.__table__.c.status.type  # type: ignore[attr-defined]


def _status(value: RegistrationStatus) -> Any:
    return literal(value, type_=_status_type)


def seat_statement(
    *, event_id: uuid.UUID, user_id: uuid.UUID, registration_id: uuid.UUID, now: datetime
) -> Select[tuple[Any, ...]]:
    """Lock the event, register the user if it is still open, count them; one row back.

    The row: the event's status, start and deadline as locked (to say why it is closed), the new
    Registration (None when closed, or when the user already has a live one: the partial unique
    index refuses it, and the counters then stay as they were), and the counters afterwards.
    No row at all: the event is gone.
    """
    # FOR NO KEY UPDATE: the lock the counters' UPDATE takes anyway, taken first so that the
    # seat is decided on the newest counters and the arrival order (seq) is the lock's order.
    locked = (
        select(
            col(Event.id),
            col(Event.status),
            col(Event.starts_at),
            col(Event.registration_deadline),
            col(Event.registered_count),
            col(Event.waitlist_count),
            or_(
                col(Event.capacity).is_(None), col(Event.registered_count) < col(Event.capacity)
            ).label("seat_free"),
        )
        .where(col(Event.id) == event_id)
        .with_for_update(key_share=True)
        .cte("locked")
    )
    is_open = and_(
        locked.c.status == EventStatus.PUBLISHED,
        locked.c.starts_at > now,
        or_(locked.c.registration_deadline.is_(None), locked.c.registration_deadline >= now),
    )
    status = case(
        (locked.c.seat_free, _status(RegistrationStatus.CONFIRMED)),
        else_=_status(RegistrationStatus.WAITLISTED),
    )
    inserted = (
        pg_insert(Registration)
        .from_select(
            ["id", "event_id", "user_id", "status", "created_at", "updated_at"],
            select(
                literal(registration_id),
                locked.c.id,
                literal(user_id),
                status,
                literal(now),
                literal(now),
            ).where(is_open),
        )
        # The partial unique index: a parallel request of the same user got there first.
        .on_conflict_do_nothing(
            index_elements=["event_id", "user_id"],
            # Literal, as in the index: a bound parameter cannot prove the predicate in the
            # generic plan of a prepared statement.
            index_where=text("status <> 'CANCELLED'"),
        )
        .returning(*Registration.__table__.c)  # type: ignore[attr-defined]
        .cte("inserted")
    )

    def counted_if(value: RegistrationStatus) -> Any:
        return cast(inserted.c.status == _status(value), Integer)

    # Driven by the inserted row: no registration, no change to the counters.
    counted = (
        update(Event)
        .where(col(Event.id) == inserted.c.event_id)
        .values(
            registered_count=col(Event.registered_count) + counted_if(RegistrationStatus.CONFIRMED),
            waitlist_count=col(Event.waitlist_count) + counted_if(RegistrationStatus.WAITLISTED),
            updated_at=now,
        )
        .returning(col(Event.registered_count), col(Event.waitlist_count))
        .cte("counted")
    )
    registration = aliased(Registration, inserted)
    return (
        select(
            locked.c.status,
            locked.c.starts_at,
            locked.c.registration_deadline,
            registration,
            func.coalesce(counted.c.registered_count, locked.c.registered_count),
            func.coalesce(counted.c.waitlist_count, locked.c.waitlist_count),
        )
        .select_from(locked)
        .outerjoin(inserted, true())
        .outerjoin(counted, true())
    )
