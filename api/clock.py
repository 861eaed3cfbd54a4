"""The service's notion of "now"; tests replace `now` to travel in time.

With ENVIRONMENT=test an admin can also move it for every process at once (the test clock,
api/testing): now() is then the real time plus an offset, and time runs on from there.
"""

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def real_now() -> datetime:
    """The real time, whatever the test clock says: only for computing its offset."""
    return datetime.now(UTC)


def now() -> datetime:
    return real_now() + _offset


def current_time() -> datetime:
    """now(), looked up at call time: column defaults bound to this follow a patched clock."""
    return now()


def offset() -> timedelta:
    """How far now() is from the real time (zero unless the test clock is set)."""
    return _offset


def set_offset(value: timedelta) -> None:
    global _offset
    _offset = value


def offset_to(moment: datetime) -> timedelta:
    """The offset that makes now() read `moment` at once."""
    return moment - real_now()
