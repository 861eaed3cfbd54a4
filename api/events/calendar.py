"""RFC 5545 export of an event (icalendar)."""

from datetime import UTC

import icalendar

from api import clock
from api.events.models import Event, EventStatus

# What a calendar should make of each status.
ICAL_STATUS = {
    EventStatus.PUBLISHED: "CONFIRMED",
    EventStatus.PENDING: "TENTATIVE",
    EventStatus.REJECTED: "TENTATIVE",
    EventStatus.CANCELLED: "CANCELLED",
}
PRODID = "-//event-manager//events//EN"


def event_calendar(event: Event, *, event_url: str, domain: str) -> bytes:
    """A VCALENDAR holding one VEVENT; times in UTC so every client reads them alike."""
    vevent = icalendar.Event.new(
        uid=f"{event.id}@{domain}",
        stamp=clock.now().astimezone(UTC),
        start=event.starts_at.astimezone(UTC),
        end=event.ends_at.astimezone(UTC),
        summary=event.title,
        description=event.description or None,
        location=event.location or event.online_url,
        url=event.online_url or event_url,
        status=ICAL_STATUS[event.status],  # type: ignore[arg-type]
        categories=[str(event.event_type), *event.tags],
        last_modified=event.updated_at.astimezone(UTC),
    )
    calendar = icalendar.Calendar.new(prodid=PRODID, subcomponents=[vevent])
    ical: bytes = calendar.to_ical()
    return ical
