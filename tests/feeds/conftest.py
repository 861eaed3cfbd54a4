"""Helpers of the calendar feed tests: the caller's feed URL, the feed parsed, a clock to move."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import icalendar
import pytest

from api import clock

FEED = "/api/v1/users/me/calendar-feed"
PUBLIC_PREFIX = "http://testserver"


async def feed_path(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """The path of the caller's feed (the URL without PUBLIC_BASE_URL)."""
    response = await client.get(FEED, headers=headers)
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    assert url.startswith(PUBLIC_PREFIX)
    return url.removeprefix(PUBLIC_PREFIX)


async def read_feed(client: httpx.AsyncClient, path: str) -> icalendar.Calendar:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    return icalendar.Calendar.from_ical(response.content)


def vevents(calendar: icalendar.Calendar) -> dict[str, icalendar.Event]:
    """The feed's VEVENTs by UID."""
    return {str(item["UID"]): item for item in calendar.events}


class Clock:
    """clock.now() held at a time the test moves forward."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@pytest.fixture
def moving_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    # Whole seconds: DTSTAMP is written to the second.
    held = Clock(datetime.now(UTC).replace(microsecond=0))
    now: Callable[[], datetime] = lambda: held.at  # noqa: E731
    monkeypatch.setattr(clock, "now", now)
    return held
