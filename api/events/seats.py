"""The seat decision of a registration, in one statement.

A popular event's registrations queue on its row lock, which is held until the transaction
commits: every round trip between taking it and the commit is paid once per registrant, in
line. So the lock is taken by the one statement that decides: it locks the event row, re-checks
that registration is open on the row as locked (a cancellation or a close that happened while
waiting is seen: under READ COMMITTED a locking read that waited re-reads the newest version of
the row), inserts the registration with a seat or a place in line, and moves the counter that
matches. The notice is written after it, and everything else before it.

The statement is SQL text, built once: SQLAlchemy 2.0 never caches a PostgreSQL INSERT (its
ON CONFLICT clause has no cache key), and compiling this statement anew cost 2.5 ms of CPU per
registration, more than a round trip.
"""

import sqlalchemy as sa
from sqlalchemy import bindparam, column, select, text

from api.events.models import TIMESTAMP, Event, Registration

# The registration's columns by name, in the model's order: the result is matched by position.
_COLUMNS = [c.name for c in Registration.__table__.c]  # type: ignore[attr-defined]

# FOR NO KEY UPDATE: the lock the counters' UPDATE takes anyway, taken first so that the seat is
# decided on the newest counters and the arrival order (seq) is the lock's order. No inserted
# row (closed, or the partial unique index refusing a second live registration of the user, as
# a parallel request of the same user got there first): no UPDATE, the counters stay as they
# were. The index's predicate is spelled literally, as in the index: a bound parameter could not
# prove it in the generic plan of a prepared statement.
_SQL = f"""
WITH locked AS (
    SELECT id, status, starts_at, registration_deadline, registered_count, waitlist_count,
        capacity IS NULL OR registered_count < capacity AS seat_free
    FROM event
    WHERE id = :event_id
    FOR NO KEY UPDATE
), inserted AS (
    INSERT INTO registration AS r
        (id, event_id, user_id, status, created_at, updated_at, confirmed_at)
    SELECT :registration_id, locked.id, :user_id,
        CASE WHEN seat_free THEN 'CONFIRMED' ELSE 'WAITLISTED' END::registration_status,
        :now, :now, CASE WHEN seat_free THEN :now END
    FROM locked
    WHERE status = 'PUBLISHED' AND starts_at > :now
        AND (registration_deadline IS NULL OR registration_deadline >= :now)
    ON CONFLICT (event_id, user_id) WHERE status <> 'CANCELLED' DO NOTHING
    RETURNING {", ".join(f"r.{name}" for name in _COLUMNS)}
), counted AS (
    UPDATE event SET
        registered_count = event.registered_count + (inserted.status = 'CONFIRMED')::int,
        waitlist_count = event.waitlist_count + (inserted.status = 'WAITLISTED')::int,
        updated_at = :now
    FROM inserted
    WHERE event.id = inserted.event_id
    RETURNING event.registered_count, event.waitlist_count
)
SELECT {", ".join(f"inserted.{name}" for name in _COLUMNS)},
    locked.status AS event_status,
    locked.starts_at AS event_starts_at,
    locked.registration_deadline AS event_registration_deadline,
    coalesce(counted.registered_count, locked.registered_count) AS event_registered_count,
    coalesce(counted.waitlist_count, locked.waitlist_count) AS event_waitlist_count
FROM locked LEFT JOIN inserted ON true LEFT JOIN counted ON true
"""

_STATEMENT = (
    text(_SQL)
    .bindparams(
        bindparam("event_id", type_=sa.Uuid()),
        bindparam("user_id", type_=sa.Uuid()),
        bindparam("registration_id", type_=sa.Uuid()),
        bindparam("now", type_=TIMESTAMP),
    )
    .columns(
        *Registration.__table__.c,  # type: ignore[attr-defined]
        column("event_status", Event.__table__.c.status.type),  # type: ignore[attr-defined]
        column("event_starts_at", TIMESTAMP),
        column("event_registration_deadline", TIMESTAMP),
        column("event_registered_count", sa.Integer),
        column("event_waitlist_count", sa.Integer),
    )
)
_EVENT = [
    _STATEMENT.selected_columns[name]
    for name in (
        "event_status",
        "event_starts_at",
        "event_registration_deadline",
        "event_registered_count",
        "event_waitlist_count",
    )
]
# One row back: the new Registration (None when the event is closed, or when the user already
# has a live one), then the event's status, start, deadline and counters, as locked and counted.
# No row at all: the event is gone. Parameters: event_id, user_id, registration_id, now.
SEAT = select(Registration, *_EVENT).from_statement(_STATEMENT)
