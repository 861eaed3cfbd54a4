"""The event insights family (API-attendees.md, Event insights): read-only schemas, no table."""

import datetime as dt
import uuid

from sqlmodel import Field, SQLModel

from api.examples import examples
from api.insights import examples as insight_examples


class RegistrationCounts(SQLModel):
    """An event's registrations by current status."""

    confirmed: int
    waitlisted: int
    offered: int
    cancelled: int
    expired: int
    checked_in: int = Field(description="CONFIRMED registrations that have checked in")


class TimelineDay(SQLModel):
    """One day of an event's registrations, in the event's time zone."""

    date: dt.date
    registered: int = Field(description="Registrations made that day")
    cancelled: int = Field(description="Registrations cancelled (or expired) that day")


class EventStats(SQLModel):
    """GET /events/{id}/stats."""

    model_config = examples(insight_examples.EVENT_STATS)

    event_id: uuid.UUID
    capacity: int | None = Field(description="null: unlimited")
    registrations: RegistrationCounts
    no_show_rate: float | None = Field(
        description="1 - checked_in / confirmed, to 4 places; null before the event ends or "
        "when none is confirmed"
    )
    waitlist_conversion: float | None = Field(
        description="Promoted registrations / registrations ever waitlisted, to 4 places; null "
        "when none was ever waitlisted"
    )
    timeline: list[TimelineDay] = Field(
        description="Every day from the first registration to the last registration or "
        "cancellation, in the event's time zone, days without any included; [] when none"
    )
