"""The service's notion of "now"; tests replace `now` to travel in time."""

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
