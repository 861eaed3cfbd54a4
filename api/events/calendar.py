"""RFC 5545 export of events (icalendar): one event's file, and the VEVENT every calendar shares.

`event_vevent` is the one place a VEVENT is built: GET /events/{id}/calendar.ics, the file
attached to reminder mails and the personal calendar feed (api.feeds) all use it, so that a
client that imported one and subscribed to another sees the same event (same UID, times, place
and status rules).
"""

from datetime import UTC, datetime
from urllib.parse import urlsplit

import icalendar

from api.config import settings
from api.events.models import Event, EventStatus

# What a calendar should make of each status.
ICAL_STATUS = {
    EventStatus.PUBLISHED: "CONFIRMED",
    EventStatus.PENDING: "TENTATIVE",
    EventStatus.REJECTED: "TENTATIVE",
    EventStatus.CANCELLED: "CANCELLED",
}
CANCELLED = ICAL_STATUS[EventStatus.CANCELLED]
PRODID = "-//event-manager//events//EN"
CONTENT_TYPE = "text/calendar"
TIMEZONE_PROPERTY = "X-EM-TIMEZONE"


def uid_domain() -> str:
    """The host of PUBLIC_BASE_URL: the UID must not depend on the address a file was fetched
    from, since calendars dedupe by it."""
    return urlsplit(settings.PUBLIC_BASE_URL).hostname or "localhost"


def event_url(event: Event) -> str:
    """The event's address in the API (GET /events/{id})."""
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/api/v1/events/{event.id}"


def event_vevent(
    event: Event,
    *,
    status: str | None = None,
    sequence: int | None = None,
    modified: datetime | None = None,
) -> icalendar.Event:
    """The VEVENT of `event`; times in UTC so every client reads them alike, the event's own
    zone in X-EM-TIMEZONE. `status` and `sequence` default to the event's own (a feed adds the
    reader's registration to both); DTSTAMP = LAST-MODIFIED = `modified`, by default the event's
    updated_at, so that the same data always gives the same bytes."""
    changed = (modified or event.updated_at).astimezone(UTC)
    vevent = icalendar.Event.new(
        uid=f"{event.id}@{uid_domain()}",
        stamp=changed,
        start=event.starts_at.astimezone(UTC),
        end=event.ends_at.astimezone(UTC),
        summary=event.title,
        description=event.description or None,
        location=event.location or event.online_url,
        url=event.online_url or event_url(event),
        status=status or ICAL_STATUS[event.status],  # type: ignore[arg-type]
        sequence=event.revision if sequence is None else sequence,
        categories=[str(event.event_type), *event.tags],
        last_modified=changed,
    )
    vevent.add(TIMEZONE_PROPERTY, event.timezone)
    return vevent


def calendar_filename(event: Event) -> str:
    """The name of the event's calendar file, wherever it is offered."""
    return f"event-{event.id}.ics"


def event_calendar(event: Event) -> bytes:
    """A VCALENDAR holding the event's one VEVENT; the same bytes for the same event data
    (icalendar would give the calendar a new random UID each time: it gets the event's id)."""
    calendar = icalendar.Calendar.new(
        prodid=PRODID, uid=event.id, subcomponents=[event_vevent(event)]
    )
    ical: bytes = calendar.to_ical()
    return ical
