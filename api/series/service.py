"""Series rules: creating a series (its occurrences, expanded from its rule) and moving it
through the events' state machine, its occurrences along with it.

A series follows the event workflow (api/events/service.py: its transitions and review rules),
and each step carries the occurrences not CANCELLED along in one statement. Notices go once per
series, with `series_id`; integrations hear of each occurrence as of any event (one outbox row
each). The series' row lock comes first, then its occurrences' in id order.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.audit import service as audit_service
from api.audit.models import AuditAction
from api.config import settings
from api.events import service as event_service
from api.events.models import Event, EventBase, EventDeleted, EventPublic, EventStatus
from api.events.notices import reviewers
from api.events.queries import soonest_first
from api.mail.service import local_time
from api.notifications.models import NotificationKind
from api.notifications.service import announce
from api.outbox.models import DomainEventType
from api.series.models import Series, SeriesCreate
from api.series.queries import lock_series, occurrences_of
from api.series.rrule import expand, parse_rrule
from api.users.models import User

EVENT_FIELDS = set(EventBase.model_fields)


def series_summary(series: Series, occurrences: Sequence[Event]) -> dict[str, Any]:
    """What mails say about a series (as api.events.notices.event_summary does of an event):
    its first occurrence's title and place, and the span of its dates. No `id`: the notice's
    data names the series (`series_id`), not one of its events."""
    first, last = occurrences[0], occurrences[-1]
    dates = f"{len(occurrences)} date{'s' * (len(occurrences) != 1)}"
    return {
        "title": first.title,
        "when": f"{dates}, {local_time(first.starts_at, first.timezone)}"
        + (f" to {local_time(last.starts_at, last.timezone)}" if last is not first else ""),
        "where": first.location or first.online_url,
        "timezone": series.timezone,
        "url": f"{settings.PUBLIC_BASE_URL.rstrip('/')}/api/v1/series/{series.id}",
    }


async def _announce(
    session: AsyncSession,
    series: Series,
    event_type: DomainEventType,
    changed: Sequence[Event],
    occurrences: Sequence[Event],
    *,
    notify: Iterable[User] = (),
    kind: NotificationKind | None = None,
    **context: Any,
) -> None:
    """One outbox row per changed occurrence; the notice, when `kind`, once for the series."""
    await session.flush()
    await announce(
        session,
        event_type,
        [EventPublic.model_validate(event) for event in changed],
        notify=notify,
        kind=kind,
        event=series_summary(series, occurrences),
        series_id=series.id,
        **context,
    )


async def create_series(session: AsyncSession, *, creator: User, series_in: SeriesCreate) -> Series:
    """The series and each of its occurrences, PENDING, in one INSERT for the occurrences; the
    reviewers hear once that it awaits approval."""
    rule = parse_rrule(series_in.rrule)
    duration = series_in.ends_at - series_in.starts_at
    deadline = series_in.registration_deadline
    before_start = None if deadline is None else series_in.starts_at - deadline
    starts = expand(rule, series_in.starts_at, series_in.timezone, duration)
    series = Series(rrule=rule.text, timezone=series_in.timezone, created_by=creator.id)
    session.add(series)
    await session.flush()  # before its occurrences: they refer to it
    fields = series_in.model_dump(include=EVENT_FIELDS)
    occurrences = [
        Event.model_validate(
            {
                **fields,
                "starts_at": starts_at,
                "ends_at": starts_at + duration,
                "registration_deadline": None if before_start is None else starts_at - before_start,
            },
            update={"created_by": creator.id, "series_id": series.id},
        )
        for starts_at in starts
    ]
    session.add_all(occurrences)
    await _announce(
        session,
        series,
        DomainEventType.EVENT_CREATED,
        occurrences,
        occurrences,
        notify=await reviewers(session, submitter=creator),
        kind=NotificationKind.EVENT_SUBMITTED,
    )
    return series


async def _lock_occurrences(session: AsyncSession, series: Series) -> list[Event]:
    """Every occurrence of the locked series, locked in id order, soonest first."""
    return soonest_first(await session.scalars(occurrences_of(series.id, lock=True)))


async def _carry(session: AsyncSession, occurrences: Sequence[Event], **values: Any) -> list[Event]:
    """Set `values` on every occurrence not CANCELLED (locked), in one statement; those
    changed, soonest first."""
    carried = [event for event in occurrences if event.status is not EventStatus.CANCELLED]
    if not carried:
        return []
    changed = await session.scalars(
        update(Event)
        .where(col(Event.id).in_([event.id for event in carried]))
        .values(**values, revision=col(Event.revision) + 1)
        .returning(Event)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    return soonest_first(changed)


async def _review(
    session: AsyncSession,
    *,
    reviewer: User,
    series: Series,
    target: EventStatus,
    feedback: str | None = None,
) -> Series:
    event_service.check_reviewer(reviewer, series.created_by)
    await lock_series(session, series)
    event_service.check_transition(series.status, target)
    before = series.status
    values, after = event_service.review_outcome(reviewer, target, feedback)
    for field, value in values.items():
        setattr(series, field, value)
    session.add(series)
    occurrences = await _lock_occurrences(session, series)
    changed = await _carry(session, occurrences, **values)
    published = target is EventStatus.PUBLISHED
    await audit_service.record(
        session,
        actor_id=reviewer.id,
        action=AuditAction.SERIES_APPROVED if published else AuditAction.SERIES_REJECTED,
        target_type="series",
        target_id=series.id,
        before={"status": before},
        after=after,
        reason=feedback,
    )
    creator = await session.get(User, series.created_by) if series.created_by else None
    kind, event_type = event_service.REVIEW_NOTICES[target]
    await _announce(
        session,
        series,
        event_type,
        changed,
        occurrences,
        notify=[] if creator is None else [creator],
        kind=kind,
        feedback=feedback,
    )
    return series


async def approve_series(session: AsyncSession, *, reviewer: User, series: Series) -> Series:
    return await _review(session, reviewer=reviewer, series=series, target=EventStatus.PUBLISHED)


async def reject_series(
    session: AsyncSession, *, reviewer: User, series: Series, feedback: str
) -> Series:
    return await _review(
        session, reviewer=reviewer, series=series, target=EventStatus.REJECTED, feedback=feedback
    )


async def submit_series(session: AsyncSession, *, creator: User, series: Series) -> Series:
    """A rejected series, its occurrences edited, goes back to review."""
    await lock_series(session, series)
    event_service.check_transition(series.status, EventStatus.PENDING)
    series.status = EventStatus.PENDING
    session.add(series)
    occurrences = await _lock_occurrences(session, series)
    changed = await _carry(session, occurrences, status=EventStatus.PENDING)
    await _announce(
        session,
        series,
        DomainEventType.EVENT_SUBMITTED,
        changed,
        occurrences,
        notify=await reviewers(session, submitter=creator),
        kind=NotificationKind.EVENT_SUBMITTED,
    )
    return series


async def delete_series(session: AsyncSession, *, series: Series) -> None:
    """A series nobody could register for yet (PENDING or REJECTED) goes with every occurrence."""
    await lock_series(session, series)
    if series.status not in event_service.DELETABLE:
        raise event_service.InvalidEventTransition(
            reason=f"A {series.status} series cannot be deleted; cancel it instead"
        )
    occurrences = await _lock_occurrences(session, series)
    await session.execute(
        delete(Event)
        .where(col(Event.series_id) == series.id)
        .execution_options(synchronize_session=False)
    )
    for event in occurrences:
        session.expunge(event)
    await session.delete(series)
    await session.flush()
    await announce(
        session,
        DomainEventType.EVENT_DELETED,
        [EventDeleted(id=event.id, created_by=event.created_by) for event in occurrences],
    )


async def cancel_series(
    session: AsyncSession, *, actor: User, series: Series, reason: str | None
) -> Series:
    """Cancel the series and each occurrence not started and not CANCELLED (their registrants
    told, each of their own); started ones stay as they are."""
    await lock_series(session, series)
    event_service.check_transition(series.status, EventStatus.CANCELLED)
    before = series.status
    now = clock.now()
    occurrences = await _lock_occurrences(session, series)
    upcoming = [
        event
        for event in occurrences
        if event.status is not EventStatus.CANCELLED and event.starts_at > now
    ]
    cancelled = await event_service.cancel_events(session, events=upcoming, reason=reason, now=now)
    series.status, series.cancelled_at = EventStatus.CANCELLED, now
    session.add(series)
    await audit_service.record(
        session,
        actor_id=actor.id,
        action=AuditAction.SERIES_CANCELLED,
        target_type="series",
        target_id=series.id,
        before={"status": before},
        after={
            "status": EventStatus.CANCELLED,
            "cancelled_at": now,
            "cancelled_event_ids": [str(event.id) for event in cancelled],
        },
        reason=reason,
    )
    return series
