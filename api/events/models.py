"""The event model family: one SQLModel base for the table and its schemas."""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Self
from urllib.parse import urlsplit
from zoneinfo import available_timezones

import sqlalchemy as sa
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from api import clock
from api.events import examples as event_examples
from api.examples import EVENT_ID, GRACE_ID, examples
from api.pagination import Page

TIMESTAMP = sa.DateTime(timezone=True)
MAX_TAGS = 10
MAX_TAG_LENGTH = 30
# Times outside this window are typing mistakes, and some cannot be stored once shifted to UTC.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


class EventType(StrEnum):
    COMPANY_TOUR = "COMPANY_TOUR"
    MOCK_INTERVIEW = "MOCK_INTERVIEW"
    GUEST_LECTURE = "GUEST_LECTURE"
    WORKSHOP = "WORKSHOP"
    NETWORKING = "NETWORKING"
    OTHER = "OTHER"


class EventStatus(StrEnum):
    PENDING = "PENDING"
    PUBLISHED = "PUBLISHED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


class WaitlistMode(StrEnum):
    """What a freed seat does: AUTO gives it at once to the head of the waitlist; OFFER offers
    it to the head of the waitlist, who has `offer_hours` to accept it."""

    AUTO = "AUTO"
    OFFER = "OFFER"


# An event's revision (a calendar's SEQUENCE) rises when one of these, or its status, changes.
REVISED_FIELDS = frozenset({"starts_at", "ends_at", "location", "online_url"})


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _iana_timezone(value: str) -> str:
    if value not in _timezones():
        raise ValueError("must be an IANA time zone name such as Europe/Berlin or UTC")
    return value


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 1970 and 9998")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value


def _tags(value: Any) -> Any:
    """Tags compare case-insensitively: stored trimmed, lower-case and without repeats."""
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        return value  # the list[str] check reports it
    return list(dict.fromkeys(tag.strip().lower() for tag in value))


EventTime = Annotated[AwareDatetime, AfterValidator(_in_range)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=10_000)]
Timezone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_iana_timezone)]
Location = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
OnlineUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)]
Capacity = Annotated[int, Field(ge=1, le=100_000)]
OfferHours = Annotated[int, Field(ge=1, le=168)]
DEFAULT_OFFER_HOURS = 12
Requirements = Annotated[str, StringConstraints(max_length=2000)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_LENGTH)]
Tags = Annotated[list[Tag], BeforeValidator(_tags), Field(max_length=MAX_TAGS)]


def field_error(field: str, value: Any, message: str) -> ValidationError:
    """A rule across fields, reported on the field at fault (a 422 whose loc names it)."""
    error = PydanticCustomError("value_error", "Value error, {reason}", {"reason": message})
    return ValidationError.from_exception_data(
        "Event", [InitErrorDetails(type=error, loc=(field,), input=value)]
    )


def check_event_fields(
    starts_at: datetime,
    ends_at: datetime,
    location: str | None,
    online_url: str | None,
    registration_deadline: datetime | None,
) -> None:
    """The rules across fields, for a new event and for an edited one alike."""
    if ends_at <= starts_at:
        raise field_error("ends_at", ends_at, "ends_at must be after starts_at")
    if location is None and online_url is None:
        raise field_error("location", location, "give a location, an online_url, or both")
    if registration_deadline is not None and registration_deadline > starts_at:
        raise field_error(
            "registration_deadline",
            registration_deadline,
            "registration_deadline must not be after starts_at",
        )


def check_start_in_future(starts_at: datetime) -> None:
    """New events, and edits that move an event, must start in the future."""
    if starts_at <= clock.now():
        raise field_error("starts_at", starts_at, "starts_at must be in the future")


class EventBase(SQLModel):
    title: Title = Field(max_length=200)
    description: Description = Field(default="", max_length=10_000)
    event_type: EventType = Field(sa_type=sa.Enum(EventType, name="event_type"), index=True)
    starts_at: EventTime = Field(sa_type=TIMESTAMP)
    ends_at: EventTime = Field(sa_type=TIMESTAMP)
    timezone: Timezone = Field(default="UTC", max_length=64)
    location: Location | None = Field(default=None, max_length=500)
    online_url: OnlineUrl | None = Field(default=None, max_length=2048)
    capacity: Capacity | None = Field(default=None, description="null: unlimited")
    registration_deadline: EventTime | None = Field(default=None, sa_type=TIMESTAMP)
    requirements: Requirements | None = Field(default=None, max_length=2000)
    tags: Tags = Field(default_factory=list, sa_type=ARRAY(sa.String(MAX_TAG_LENGTH)))
    waitlist_mode: WaitlistMode = Field(
        default=WaitlistMode.AUTO,
        sa_type=sa.Enum(WaitlistMode, name="waitlist_mode"),
        sa_column_kwargs={"server_default": WaitlistMode.AUTO.value},
        description="AUTO: a freed seat goes at once to the head of the waitlist; "
        "OFFER: it is offered to the head of the waitlist for offer_hours",
    )
    offer_hours: OfferHours = Field(
        default=DEFAULT_OFFER_HOURS,
        sa_column_kwargs={"server_default": str(DEFAULT_OFFER_HOURS)},
        description="How long an offered seat is held (OFFER mode), at most until the start",
    )

    @model_validator(mode="after")
    def _check_fields(self) -> Self:
        check_event_fields(
            self.starts_at,
            self.ends_at,
            self.location,
            self.online_url,
            self.registration_deadline,
        )
        return self


class Event(EventBase, table=True):
    __table_args__ = (
        # The default listing: published, upcoming, by start.
        sa.Index("ix_event_status_starts_at", "status", "starts_at", "id"),
        # The listing by event_type, read in order and counted from the index alone.
        sa.Index("ix_event_status_event_type_starts_at", "status", "event_type", "starts_at", "id"),
        # The listing with has_spots=true (its condition in list_events must imply this one).
        # Naming registered_count makes a seat change a non-HOT update (~20 us more each,
        # measured), for a has_spots count that no longer reads the table.
        sa.Index(
            "ix_event_open_status_starts_at",
            "status",
            "starts_at",
            "id",
            postgresql_where=sa.text("capacity IS NULL OR registered_count < capacity"),
        ),
        sa.Index("ix_event_tags", "tags", postgresql_using="gin"),
        # A series' occurrences in order (GET /events?series_id=, and the later ones of an
        # occurrence); most events are in none.
        sa.Index(
            "ix_event_series_id_starts_at",
            "series_id",
            "starts_at",
            "id",
            postgresql_where=sa.text("series_id IS NOT NULL"),
        ),
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        sa.CheckConstraint(
            "location IS NOT NULL OR online_url IS NOT NULL", name="has_location_or_url"
        ),
        sa.CheckConstraint(
            "registration_deadline IS NULL OR registration_deadline <= starts_at",
            name="deadline_before_start",
        ),
        sa.CheckConstraint(
            "capacity IS NULL OR capacity BETWEEN 1 AND 100000", name="capacity_range"
        ),
        sa.CheckConstraint("offer_hours BETWEEN 1 AND 168", name="offer_hours_range"),
        # The guarantee behind "never overbooked", whatever the code above it does.
        sa.CheckConstraint(
            "registered_count >= 0 AND waitlist_count >= 0"
            " AND (capacity IS NULL OR registered_count <= capacity)",
            name="counts_within_capacity",
        ),
        # Open offers hold seats: they are counted in registered_count too.
        sa.CheckConstraint(
            "offered_count >= 0 AND offered_count <= registered_count",
            name="offers_within_registered",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    status: EventStatus = Field(
        default=EventStatus.PENDING, sa_type=sa.Enum(EventStatus, name="event_status")
    )
    created_by: uuid.UUID | None = Field(
        default=None, foreign_key="user.id", ondelete="SET NULL", index=True
    )
    reviewed_by: uuid.UUID | None = Field(
        default=None, foreign_key="user.id", ondelete="SET NULL", index=True
    )
    review_feedback: str | None = Field(default=None, max_length=2000)
    cancellation_reason: str | None = Field(default=None, max_length=2000)
    # The recurring series the event is an occurrence of (api/series), if any.
    series_id: uuid.UUID | None = Field(default=None, foreign_key="series.id")
    # Kept in step with the registrations under the event's row lock
    # (see api.registrations.service): registered_count counts CONFIRMED and OFFERED ones,
    # offered_count the OFFERED ones, waitlist_count the WAITLISTED ones.
    registered_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    waitlist_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    offered_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)
    updated_at: datetime = Field(
        default_factory=clock.current_time,
        sa_type=TIMESTAMP,
        sa_column_kwargs={"onupdate": clock.current_time},
    )
    published_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    cancelled_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    # Raised with every change of REVISED_FIELDS or of the status: a calendar's SEQUENCE.
    revision: int = Field(default=0, sa_column_kwargs={"server_default": "0"})

    @property
    def spots_left(self) -> int | None:
        return seats_left(self.capacity, self.registered_count)


def seats_left(capacity: int | None, registered_count: int) -> int | None:
    """Free seats of an event; None when its capacity is unlimited."""
    return None if capacity is None else capacity - registered_count


class EventCreate(EventBase):
    """POST /events. The event starts as PENDING, awaiting approval."""

    model_config = examples(event_examples.EVENT_CREATE, event_examples.ONLINE_EVENT_CREATE)

    @model_validator(mode="after")
    def _check_start(self) -> Self:
        check_start_in_future(self.starts_at)
        return self


class EventUpdate(SQLModel):
    """PATCH /events/{id}: any field; the result is checked as a whole."""

    model_config = examples(event_examples.EVENT_UPDATE)

    title: Title | None = None
    description: Description | None = None
    event_type: EventType | None = None
    starts_at: EventTime | None = None
    ends_at: EventTime | None = None
    timezone: Timezone | None = None
    location: Location | None = None
    online_url: OnlineUrl | None = None
    capacity: Capacity | None = Field(default=None, description="null: unlimited")
    registration_deadline: EventTime | None = None
    requirements: Requirements | None = None
    tags: Tags | None = None
    waitlist_mode: WaitlistMode | None = None
    offer_hours: OfferHours | None = None


class EventPublic(EventBase):
    model_config = examples(event_examples.EVENT_PUBLIC, list_path="/api/v1/events")

    id: uuid.UUID
    status: EventStatus
    created_by: uuid.UUID | None
    reviewed_by: uuid.UUID | None
    review_feedback: str | None
    cancellation_reason: str | None
    series_id: uuid.UUID | None = Field(
        description="the recurring series the event is an occurrence of; null: none"
    )
    registered_count: int = Field(description="CONFIRMED and OFFERED registrations")
    waitlist_count: int
    offered_count: int = Field(description="OFFERED registrations (each holds a seat)")
    spots_left: int | None = Field(description="null when capacity is unlimited")
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    cancelled_at: datetime | None


class EventPage(Page[EventPublic]):
    """A page of events."""


class ReviewFeedback(SQLModel):
    model_config = examples(event_examples.REVIEW_FEEDBACK)

    feedback: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ]


class Cancellation(SQLModel):
    model_config = examples(event_examples.CANCELLATION)

    reason: str | None = Field(default=None, max_length=2000)


class EventDeleted(SQLModel):
    """The data of an `event.deleted` domain event: the event is gone, only its ids remain."""

    model_config = examples({"id": EVENT_ID, "created_by": GRACE_ID})

    id: uuid.UUID
    created_by: uuid.UUID | None
