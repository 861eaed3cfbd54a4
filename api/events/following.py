"""PATCH /events/{id}?scope=following: one edit to an occurrence of a series and to every later
occurrence not CANCELLED and not started, all or none.

Each occurrence keeps its local date. `starts_at` may change only the time of day, which each
takes on its own date in its time zone (api.wallclock's rules for the hours DST skips or
repeats); ends_at - starts_at, as the addressed event would have them, sets each one's length;
`registration_deadline` is taken as an offset before each start (unsent, each keeps its own
offset when its start moves); a new `timezone` keeps each one's local date and time. Every other
field is set as sent. Each occurrence is checked as PATCH checks one event before any is
changed, and each changed one then tells its own registrants, as PATCH does.
"""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.errors import invalid_body
from api.events.models import Event, EventStatus, EventUpdate, field_error
from api.events.queries import soonest_first
from api.events.service import (
    apply_update,
    check_editable,
    check_if_match,
    plan_update,
    update_event,
)
from api.wallclock import moment_of, wall_time

# The fields whose value is worked out for each occurrence; the others are set as sent.
TIMES = frozenset({"starts_at", "ends_at", "registration_deadline", "timezone"})


def _time_of_day(event: Event, sent: dict[str, Any]) -> datetime | None:
    """The new local start of the addressed event (its date unchanged), when starts_at is sent.
    422 when the sent start falls on another local date."""
    if "starts_at" not in sent:
        return None
    zone = sent.get("timezone", event.timezone)
    local = wall_time(sent["starts_at"], zone)
    current = wall_time(event.starts_at, event.timezone).date()
    if local.date() != current:
        raise invalid_body(
            field_error(
                "starts_at",
                sent["starts_at"],
                f"with scope=following starts_at may change only the time of day: keep "
                f"{current.isoformat()} in {zone}",
            ).errors(include_url=False)
        )
    return local


def _new_start(event: Event, sent: dict[str, Any], new_local: datetime | None) -> datetime:
    """Where the occurrence's start goes: its own local date at the new time of day, or, for a
    new time zone alone, its local date and time there; else where it is."""
    if new_local is None and "timezone" not in sent:
        return event.starts_at
    local = wall_time(event.starts_at, event.timezone)
    if new_local is not None:
        local = datetime.combine(local.date(), new_local.time())
    return moment_of(local, sent.get("timezone", event.timezone))


def _changes_for(
    event: Event,
    sent: dict[str, Any],
    new_local: datetime | None,
    duration: timedelta | None,
    before_start: timedelta | None,
) -> dict[str, Any]:
    """What the edit sets on one occurrence."""
    changes = {field: value for field, value in sent.items() if field not in TIMES}
    if "timezone" in sent:
        changes["timezone"] = sent["timezone"]
    starts_at = _new_start(event, sent, new_local)
    if "starts_at" in sent or starts_at != event.starts_at:
        changes["starts_at"] = starts_at
    if duration is not None or "starts_at" in changes:
        length = event.ends_at - event.starts_at if duration is None else duration
        changes["ends_at"] = starts_at + length
    if "registration_deadline" in sent:
        changes["registration_deadline"] = (
            None if before_start is None else starts_at - before_start
        )
    elif "starts_at" in changes and event.registration_deadline is not None:
        changes["registration_deadline"] = event.registration_deadline + (
            starts_at - event.starts_at
        )
    return changes


async def _lock_following(session: AsyncSession, event: Event) -> list[Event]:
    """The addressed event and the later occurrences of its series not CANCELLED and not
    started, locked in id order (as every change to several events takes them), soonest
    first; the addressed event re-read."""
    assert event.series_id is not None
    later = and_(
        col(Event.series_id) == event.series_id,
        col(Event.starts_at) > event.starts_at,
        col(Event.starts_at) > clock.now(),
        col(Event.status) != EventStatus.CANCELLED,
    )
    locked = await session.scalars(
        select(Event)
        .where(or_(col(Event.id) == event.id, later))
        .order_by(col(Event.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return soonest_first(locked)


async def update_following(
    session: AsyncSession, *, event: Event, event_in: EventUpdate, if_match: str | None = None
) -> Event:
    """Apply a PATCH to `event` and the later occurrences of its series (outside a series: to
    `event` alone, as update_event). `if_match` is checked against `event`."""
    if event.series_id is None:
        return await update_event(session, event=event, event_in=event_in, if_match=if_match)
    occurrences = await _lock_following(session, event)
    check_if_match(event, if_match)
    check_editable(event)
    sent = event_in.model_dump(exclude_unset=True)
    # The addressed event as PATCH would leave it: its checks first, and its new length.
    addressed, _ = plan_update(event, sent)
    new_local = _time_of_day(event, sent)
    duration = (
        addressed.ends_at - addressed.starts_at if {"starts_at", "ends_at"} & sent.keys() else None
    )
    deadline = sent.get("registration_deadline")
    before_start = None if deadline is None else _new_start(event, sent, new_local) - deadline
    plans = [
        plan_update(occurrence, _changes_for(occurrence, sent, new_local, duration, before_start))
        for occurrence in occurrences
    ]
    for occurrence, (merged, changed) in zip(occurrences, plans, strict=True):
        await apply_update(session, occurrence, merged, changed)
    return event
