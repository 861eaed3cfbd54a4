"""Recurring series: a rule that made several events (its occurrences), reviewed as one.

The series row holds what belongs to the series as a whole (its rule, time zone, creator and
review); what it shows of its occurrences (title, count, first and last start) is read from
them, so it stays true when they are edited.
"""

import uuid
from datetime import datetime

from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

from api import clock
from api.events.models import TIMESTAMP, EventCreate, EventStatus
from api.examples import examples
from api.series import examples as series_examples

# The events' own status type: a series follows the same state machine.
SERIES_STATUS = postgresql.ENUM(EventStatus, name="event_status", create_type=False)


class Series(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    rrule: str = Field(max_length=500)
    timezone: str = Field(max_length=64)
    status: EventStatus = Field(default=EventStatus.PENDING, sa_type=SERIES_STATUS)
    created_by: uuid.UUID | None = Field(
        default=None, foreign_key="user.id", ondelete="SET NULL", index=True
    )
    reviewed_by: uuid.UUID | None = Field(
        default=None, foreign_key="user.id", ondelete="SET NULL", index=True
    )
    review_feedback: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)
    published_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    cancelled_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)


class SeriesCreate(EventCreate):
    """POST /series: the first occurrence, as POST /events takes an event, and the rule that
    repeats it. `registration_deadline` becomes an offset before each start."""

    model_config = examples(series_examples.SERIES_CREATE)

    rrule: str = Field(
        description="An RFC 5545 RRULE value: FREQ DAILY, WEEKLY or MONTHLY; INTERVAL, BYDAY, "
        "BYMONTHDAY, BYSETPOS, WKST; exactly one of COUNT or UNTIL (a date or a UTC date-time, "
        "inclusive). At most 52 occurrences within a year; starts_at is the first.",
        schema_extra={"examples": ["FREQ=WEEKLY;BYDAY=TU;COUNT=10"]},
    )


class SeriesPublic(SQLModel):
    model_config = examples(series_examples.SERIES_PUBLIC)

    id: uuid.UUID
    title: str = Field(description="the first occurrence's")
    rrule: str
    timezone: str
    status: EventStatus
    created_by: uuid.UUID | None
    reviewed_by: uuid.UUID | None
    review_feedback: str | None
    occurrence_count: int = Field(description="every occurrence, cancelled ones included")
    first_starts_at: datetime
    last_starts_at: datetime
    created_at: datetime
    published_at: datetime | None
    cancelled_at: datetime | None
