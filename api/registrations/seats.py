"""The seat decision of a registration, in one statement.

A popular event's registrations queue on its row lock, which is held until the transaction
commits: every round trip between taking it and the commit is paid once per registrant, in
line. So the lock is taken by the one statement that decides: it locks the event row, re-checks
that registration is open on the row as locked (a cancellation or a close that happened while
waiting is seen: under READ COMMITTED a locking read that waited re-reads the newest version of
the row), inserts the registration with a seat or a place in line, and moves the counter that
matches, and writes the registration's domain event to the outbox (the caller passes its data
both ways, CONFIRMED and WAITLISTED: the statement keeps the one that happened and fills in the
place in line). The notice is written after it, and everything else before it.

The statement is SQL text, built once: SQLAlchemy 2.0 never caches a PostgreSQL INSERT (its
ON CONFLICT clause has no cache key), and compiling this statement anew cost 2.5 ms of CPU per
registration, more than a round trip.
"""

import sqlalchemy as sa
from sqlalchemy import bindparam, column, select, text
from sqlalchemy.dialects.postgresql import JSONB

from api.events.models import TIMESTAMP, Event
from api.outbox.models import DomainEventType
from api.registrations.models import Registration

# The registration's columns by name, in the model's order: the result is matched by position.
_COLUMNS = [c.name for c in Registration.__table__.c]  # type: ignore[attr-defined]

# FOR NO KEY UPDATE: the lock the counters' UPDATE takes anyway, taken first so that the seat is
# decided on the newest counters and the arrival order (seq) is the lock's order. A seat comes
# with the check-in code chosen beforehand (:checkin_code). No inserted row (closed, or a unique
# index refusing the row: the user's second live registration, as a parallel request of the
# same user got there first, or, about never, a check-in code already taken): no UPDATE, the
# counters stay as they were, and the caller tells the two apart. ON CONFLICT names no target so
# that every unique index, the code's too, turns a duplicate into no row rather than an error
# that would abort the transaction.
_SQL = f"""
WITH locked AS (
    SELECT id, status, starts_at, registration_deadline, registered_count, waitlist_count,
        capacity IS NULL OR registered_count < capacity AS seat_free
    FROM event
    WHERE id = :event_id
    FOR NO KEY UPDATE
), inserted AS (
    INSERT INTO registration AS r (
        id, event_id, user_id, status, created_at, updated_at, checkin_code, confirmed_at
    )
    SELECT :registration_id, locked.id, :user_id,
        CASE WHEN seat_free THEN 'CONFIRMED' ELSE 'WAITLISTED' END::registration_status,
        :now, :now, CASE WHEN seat_free THEN :checkin_code END, CASE WHEN seat_free THEN :now END
    FROM locked
    WHERE status = 'PUBLISHED' AND starts_at > :now
        AND (registration_deadline IS NULL OR registration_deadline >= :now)
    ON CONFLICT DO NOTHING
    RETURNING {", ".join(f"r.{name}" for name in _COLUMNS)}
), counted AS (
    UPDATE event SET
        registered_count = event.registered_count + (inserted.status = 'CONFIRMED')::int,
        waitlist_count = event.waitlist_count + (inserted.status = 'WAITLISTED')::int,
        updated_at = :now
    FROM inserted
    WHERE event.id = inserted.event_id
    RETURNING event.registered_count, event.waitlist_count
), announced AS (
    INSERT INTO outbox_event (type, occurred_at, data)
    SELECT
        CASE WHEN inserted.status = 'CONFIRMED'
            THEN '{DomainEventType.REGISTRATION_CONFIRMED}'
            ELSE '{DomainEventType.REGISTRATION_WAITLISTED}' END,
        :now,
        CASE WHEN inserted.status = 'CONFIRMED' THEN CAST(:confirmed AS jsonb)
            ELSE jsonb_set(
                CAST(:waitlisted AS jsonb), '{{waitlist_position}}',
                to_jsonb(counted.waitlist_count)
            ) END
    FROM inserted, counted
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
        bindparam("checkin_code", type_=sa.String()),
        bindparam("confirmed", type_=JSONB),
        bindparam("waitlisted", type_=JSONB),
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
# No row at all: the event is gone. Parameters: event_id, user_id, registration_id, now,
# checkin_code (kept when the seat is a confirmed one), and the data of the
# `registration.confirmed` and `registration.waitlisted` domain events (the attendee-list row as
# JSON; the waitlisted one's waitlist_position is set here).
SEAT = select(Registration, *_EVENT).from_statement(_STATEMENT)
