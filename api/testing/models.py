"""The test clock's shared setting, and the shapes of the testing routes (ENVIRONMENT=test)."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

import sqlalchemy as sa
from pydantic import AfterValidator, AwareDatetime
from sqlmodel import Field, SQLModel

from api.examples import examples
from api.testing import examples as testing_examples

# The moments the test clock may be set to: far enough from the edges of the calendar that
# any date the service computes from "now" (a year ahead, ninety days back ...) still exists.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class ClockSetting(SQLModel, table=True):
    """The one row (id 1) every process of the service reads its clock offset from.

    `version` grows with every change, so that a process applies changes in the order they
    were committed whichever way they reach it (its own request, a notification, a re-read).
    No row: real time.
    """

    __tablename__ = "test_clock"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(default=1, primary_key=True)
    time_offset: timedelta = Field(sa_type=sa.Interval)
    version: int = Field(sa_type=sa.BigInteger)


def _within_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be from 2000-01-01T00:00:00Z up to 2100-01-01T00:00:00Z")
    return value


ClockMoment = Annotated[AwareDatetime, AfterValidator(_within_range)]


class ClockSet(SQLModel):
    model_config = examples(testing_examples.CLOCK_SET)

    now: ClockMoment = Field(
        description="The moment the clock reads from now on (it runs on from there): a date-time "
        "with a UTC offset, from 2000-01-01T00:00:00Z up to 2100-01-01T00:00:00Z."
    )


class ClockState(SQLModel):
    model_config = examples(testing_examples.CLOCK_STATE)

    now: datetime = Field(description="The moment set, in UTC.")
    offset_seconds: float = Field(
        description="How far the clock is ahead of the real time (negative: behind)."
    )


class JobRun(SQLModel):
    model_config = examples(testing_examples.JOB_RUN)

    job: str = Field(description="The job's name.")
    ran_at: datetime = Field(description="When it ran, on the service's clock.")
    count: int = Field(
        description="How many items it handled (send_event_reminders: the events whose "
        "reminders went out)."
    )
