"""Wall-clock times in an IANA time zone: what a local date and time is as a moment, and back.

A recurring series keeps its local time across DST changes (api/series), and an edit to the
following occurrences of one keeps each one's local date (api/events/following.py): both turn
local times into moments here, with one rule for the two hours a year that are not one moment.
"""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


def wall_time(moment: datetime, zone: str) -> datetime:
    """The naive local date and time that `moment` reads on the clocks of `zone`."""
    return moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def moment_of(local: datetime, zone: str) -> datetime:
    """The moment (in UTC) at which the clocks of `zone` read `local` (naive).

    A local time that does not exist (in the gap when clocks spring forward) moves forward by
    the gap: 02:30 on the day clocks go from 02:00 to 03:00 is 03:30. One that exists twice
    (when clocks fall back) is the earlier of the two. Both are PEP 495's fold=0, which reads a
    time in a gap with the offset before the change.
    """
    return local.replace(tzinfo=ZoneInfo(zone), fold=0).astimezone(UTC)


def at_local(day: date, clock_time: time, zone: str) -> datetime:
    """The moment `day` at `clock_time` in `zone`, by moment_of()'s rules."""
    return moment_of(datetime.combine(day, clock_time), zone)
