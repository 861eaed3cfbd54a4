"""Which reminders went out: one row per event, offset and start time."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.events.models import TIMESTAMP


class EventReminder(SQLModel, table=True):
    """A reminder of `event_id` `hours_before` its start at `starts_at` counts as sent.

    Written in the transaction that queues the notices, so a crash before the commit leaves it
    due again; the primary key is what makes each one go once, whatever the number of workers.
    A new start time has no rows yet: its reminders are due again.
    """

    __tablename__ = "event_reminder"

    event_id: uuid.UUID = Field(foreign_key="event.id", ondelete="CASCADE", primary_key=True)
    starts_at: datetime = Field(sa_type=TIMESTAMP, primary_key=True)
    hours_before: int = Field(sa_type=sa.SmallInteger, primary_key=True)
    # When the round went out; larger offsets due at the same time are recorded alongside,
    # though only the smallest was sent.
    sent_at: datetime = Field(sa_type=TIMESTAMP)
