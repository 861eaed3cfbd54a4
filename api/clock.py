"""The service's notion of "now"; tests replace `now` to travel in time."""

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def current_time() -> datetime:
    """now(), looked up at call time: column defaults bound to this follow a patched clock."""
    return now()
