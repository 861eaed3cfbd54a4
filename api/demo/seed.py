"""`event-manager seed-demo`: realistic fake users, events and registrations for a demo.

Everything is generated in Python from one seed (Faker and `random`), then written with bulk
INSERTs in batches: no per-row ORM objects, no notices and no mail. Registrations are simulated
in arrival order under the service's own rules (a seat while one is free, else the waitlist; a
cancelled seat goes to the head of the waitlist), inserted in that order so `seq` is FIFO, and
the counters on each event are the counts of its rows.
"""

import itertools
import random
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from faker import Faker
from sqlalchemy.ext.asyncio import AsyncSession

import api.models  # noqa: F401 - every table: the foreign keys of those seeded resolve (event.series_id)
from api import clock
from api.db import create_engine
from api.demo.accounts import (
    ADMIN_EMAIL,
    DEMO_PASSWORD,
    EMAIL_DOMAIN,
    demo_admin,
    insert_rows,
    people_rows,
)
from api.demo.lines import registration_line
from api.demo.texts import (
    CANCELLATION_REASONS,
    DURATIONS_MINUTES,
    FEEDBACK,
    REQUIREMENTS,
    TIMEZONES,
    TYPE_TAGS,
    Pools,
    title,
)
from api.events.models import Event, EventStatus, EventType
from api.registrations import checkin
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User, UserRole
from api.users.passwords import password_helper

# Events are generated, and written with their registrations, this many at a time.
EVENT_CHUNK = 2_000
HORIZON_DAYS = 60
# The most registrations one event receives: enough to fill the small rooms and show waitlists.
MAX_APPLICANTS = 30
# About how many events each demo user signs up for: with many more events than users, only
# some events draw a crowd (and a big run stays a matter of seconds).
REGISTRATIONS_PER_USER = 12

STATUS_WEIGHTS = {
    EventStatus.PUBLISHED: 70,
    EventStatus.PENDING: 12,
    EventStatus.REJECTED: 8,
    EventStatus.CANCELLED: 10,
}


@dataclass(frozen=True)
class SeedSummary:
    """What one run added to the database."""

    users: int
    managers: int
    admin_email: str
    admin_created: bool
    events: dict[EventStatus, int] = field(default_factory=dict)
    registrations: dict[RegistrationStatus, int] = field(default_factory=dict)
    password: str = DEMO_PASSWORD


def _events(
    rng: random.Random,
    pools: Pools,
    *,
    first_index: int,
    count: int,
    creators: Sequence[uuid.UUID],
    reviewers: Sequence[uuid.UUID],
    attendees: Sequence[uuid.UUID],
    popular: float,
    per_event: float | None,
    now: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` events with their registrations, each registration list in arrival order."""
    types, statuses = list(EventType), list(STATUS_WEIGHTS)
    cumulative = list(itertools.accumulate(STATUS_WEIGHTS.values()))
    events: list[dict[str, Any]] = []
    registrations: list[dict[str, Any]] = []
    for index in range(first_index, first_index + count):
        # The first events cover every type and status; the very first shows a waitlist.
        event_type = types[index] if index < len(types) else rng.choice(types)
        status = (
            statuses[index]
            if index < len(statuses)
            else rng.choices(statuses, cum_weights=cumulative)[0]
        )
        starts_at = (now + timedelta(minutes=rng.randint(180, HORIZON_DAYS * 24 * 60))).replace(
            second=0, microsecond=0
        )
        starts_at -= timedelta(minutes=starts_at.minute % 15)
        mode = rng.random()
        address = f"{rng.choice(pools.companies)}, {rng.choice(pools.addresses)}"
        online = f"https://meet.{EMAIL_DOMAIN}/{rng.getrandbits(48):012x}"
        roll = rng.random()
        capacity: int | None
        if index == 0:
            capacity = max(1, min(8, len(attendees) // 2))
        elif roll < 0.15:
            capacity = None
        elif roll < 0.5:
            capacity = rng.randint(5, 12)
        elif roll < 0.85:
            capacity = rng.randint(15, 40)
        else:
            capacity = rng.randint(50, 150)
        deadline = starts_at - timedelta(hours=rng.choice((2, 24, 48)))
        creator = rng.choice(creators)
        others = [r for r in reviewers if r != creator] or list(reviewers)
        created_at = now - timedelta(days=rng.uniform(1, 30))
        event_id = uuid.uuid4()
        row: dict[str, Any] = {
            "id": event_id,
            "title": title(rng, pools, event_type),
            "description": rng.choice(pools.paragraphs),
            "event_type": event_type,
            "starts_at": starts_at,
            "ends_at": starts_at + timedelta(minutes=rng.choice(DURATIONS_MINUTES)),
            "timezone": rng.choice(TIMEZONES),
            "location": address if mode < 0.75 else None,
            "online_url": online if mode >= 0.55 else None,
            "capacity": capacity,
            "registration_deadline": deadline if rng.random() < 0.3 and deadline > now else None,
            "requirements": rng.choice(REQUIREMENTS) if rng.random() < 0.3 else None,
            "tags": rng.sample(TYPE_TAGS[event_type], k=rng.randint(1, 3)),
            "status": status,
            "created_by": creator,
            "reviewed_by": None,
            "review_feedback": None,
            "cancellation_reason": None,
            "registered_count": 0,
            "waitlist_count": 0,
            "created_at": created_at,
            "updated_at": created_at,
            "published_at": None,
            "cancelled_at": None,
        }
        # Cancelled events: half of them were published (and had registrations) first.
        was_published = status is EventStatus.PUBLISHED or (
            status is EventStatus.CANCELLED and rng.random() < 0.5
        )
        if status is EventStatus.REJECTED:
            row.update(reviewed_by=rng.choice(others), review_feedback=rng.choice(FEEDBACK))
            row["updated_at"] = created_at + (now - created_at) * rng.uniform(0.1, 0.5)
        if was_published:
            published_at = created_at + (now - created_at) * rng.uniform(0.05, 0.4)
            row.update(reviewed_by=rng.choice(others), published_at=published_at)
            row["updated_at"] = published_at
        if status is EventStatus.CANCELLED:
            cancelled_at = row["updated_at"] + (now - row["updated_at"]) * rng.uniform(0.5, 0.95)
            row.update(
                cancelled_at=cancelled_at,
                updated_at=cancelled_at,
                cancellation_reason=rng.choice(CANCELLATION_REASONS),
            )
        if was_published and attendees and (index == 0 or rng.random() < popular):
            if index == 0:
                wanted = min((capacity or 0) + 3, MAX_APPLICANTS)
            elif per_event is not None:
                # A registrations target: about per_event each, whatever the capacity.
                wanted = round(per_event * rng.uniform(0.5, 1.5))
            else:
                wanted = min(int((capacity or 25) * rng.uniform(0.2, 1.3)), MAX_APPLICANTS)
            applicants = rng.sample(attendees, k=min(wanted, len(attendees)))
            line = registration_line(
                rng,
                event_id=event_id,
                capacity=capacity,
                applicants=applicants,
                opened=row["published_at"],
                closed=row["cancelled_at"] or now,
                leavers=0.0 if row["cancelled_at"] else 0.08,
            )
            if row["cancelled_at"]:
                # Cancelling an event releases every registration (api.registrations.service).
                for registration in line:
                    registration.update(
                        status=RegistrationStatus.CANCELLED,
                        cancelled_at=row["cancelled_at"],
                        updated_at=row["cancelled_at"],
                    )
            for registration in line:
                confirmed = registration["status"] is RegistrationStatus.CONFIRMED
                registration["checkin_code"] = checkin.generate() if confirmed else None
            counts = Counter(r["status"] for r in line)
            row["registered_count"] = counts[RegistrationStatus.CONFIRMED]
            row["waitlist_count"] = counts[RegistrationStatus.WAITLISTED]
            registrations.extend(line)
        events.append(row)
    return events, registrations


async def seed(
    session: AsyncSession,
    *,
    users: int = 40,
    managers: int = 5,
    events: int = 30,
    registrations: int | None = None,
    seed: int = 42,
    on_progress: Callable[[int], None] | None = None,
) -> SeedSummary:
    """Add fake users, managers, the demo admin, events and registrations; flush, never commit.

    Every account is verified and shares DEMO_PASSWORD. Emails and nicknames carry a random
    run tag, so running again adds more data instead of colliding with the last run.
    `registrations` asks for about that many registrations in all (spread over every event that
    was published; one user registers at most once per event), instead of about
    REGISTRATIONS_PER_USER per user. `on_progress` is told how many events are done, after the
    accounts and after each chunk of events.
    """
    if min(users, managers, events, registrations or 0) < 0:
        raise ValueError("counts must not be negative")
    fake = Faker()
    fake.seed_instance(seed)
    rng = random.Random(seed)
    now = clock.now()
    run = uuid.uuid4().hex[:6]
    # One hash for every account: hashing is deliberately slow.
    hashed = await password_helper.hash_async(DEMO_PASSWORD)
    pools = Pools.draw(fake)
    people = people_rows(
        rng,
        pools,
        role=UserRole.AUTHENTICATED,
        count=users,
        first_number=1,
        run=run,
        hashed_password=hashed,
        now=now,
    )
    staff = people_rows(
        rng,
        pools,
        role=UserRole.MANAGER,
        count=managers,
        first_number=users + 1,
        run=run,
        hashed_password=hashed,
        now=now,
    )
    admin_id, admin_created = await demo_admin(session, run=run, hashed_password=hashed, now=now)
    await insert_rows(session, User, people + staff)
    if on_progress is not None:
        on_progress(0)

    staff_ids = [row["id"] for row in staff]
    creators = staff_ids or [admin_id]
    reviewers = [*staff_ids, admin_id]
    attendees = [row["id"] for row in people]
    # The share of the (about 80% once) published events that get registrations, about 15 each,
    # so that a demo user signs up for about REGISTRATIONS_PER_USER events.
    popular = min(1.0, users * REGISTRATIONS_PER_USER / max(1.0, events * 0.8 * 15))
    per_event = None
    if registrations is not None:
        # PUBLISHED events and the half of the CANCELLED ones that were published first.
        published_share = (
            STATUS_WEIGHTS[EventStatus.PUBLISHED] + STATUS_WEIGHTS[EventStatus.CANCELLED] / 2
        ) / sum(STATUS_WEIGHTS.values())
        popular, per_event = 1.0, registrations / max(1.0, events * published_share)
    event_counts: Counter[EventStatus] = Counter()
    registration_counts: Counter[RegistrationStatus] = Counter()
    for first in range(0, events, EVENT_CHUNK):
        event_rows, registration_rows = _events(
            rng,
            pools,
            first_index=first,
            count=min(EVENT_CHUNK, events - first),
            creators=creators,
            reviewers=reviewers,
            attendees=attendees,
            popular=popular,
            per_event=per_event,
            now=now,
        )
        await insert_rows(session, Event, event_rows)
        # In arrival order: the identity column numbers each line first come, first served.
        registration_rows.sort(key=lambda r: r["created_at"])
        await insert_rows(session, Registration, registration_rows)
        event_counts.update(r["status"] for r in event_rows)
        registration_counts.update(r["status"] for r in registration_rows)
        if on_progress is not None:
            on_progress(first + len(event_rows))
    await session.flush()
    return SeedSummary(
        users=users,
        managers=managers,
        admin_email=ADMIN_EMAIL,
        admin_created=admin_created,
        events={status: event_counts[status] for status in EventStatus},
        registrations={status: registration_counts[status] for status in RegistrationStatus},
    )


# seed_database's `seed` parameter hides the function of that name.
_seed = seed


async def seed_database(
    *,
    users: int,
    managers: int,
    events: int,
    seed: int,
    registrations: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SeedSummary:
    """seed() in one transaction on the configured database (the CLI's entry point).

    Its bulk statements may take longer than DB_COMMAND_TIMEOUT_SECONDS, which bounds requests,
    not batch work: the seed runs on an engine of its own without that timeout."""
    engine = create_engine(pool_size=1, timed_statements=False)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            return await _seed(
                session,
                users=users,
                managers=managers,
                events=events,
                registrations=registrations,
                seed=seed,
                on_progress=on_progress,
            )
    finally:
        await engine.dispose()
