"""From outbox rows to deliveries (in the test's transaction): who hears of what, made once;
and the retention of deliveries."""

from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.outbox import service as outbox_service
from api.outbox.models import DomainEventType
from api.users.models import User, UserRole
from api.webhooks import delivery
from api.webhooks.models import WebhookDelivery
from tests.factories import create_event, create_user, register
from tests.webhooks.helpers import add_webhook

ALL_TYPES: list[DomainEventType] = [
    t for t in DomainEventType if t is not DomainEventType.WEBHOOK_TEST
]


async def publish(session: AsyncSession, event_type: DomainEventType, **data: object) -> int:
    event = await outbox_service.record(session, event_type, data)
    await session.flush()
    assert event.id is not None
    return event.id


async def dispatch_jobs(session: AsyncSession, outbox_id: int) -> int:
    return int(
        await session.scalar(
            text(
                "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'webhook_dispatch'"
                " AND convert_from(payload, 'UTF8') = :id"
            ),
            {"id": str(outbox_id)},
        )
        or 0
    )


async def test_the_outbox_queues_a_dispatch_only_when_a_webhook_listens(session, admin):
    unheard = await publish(session, DomainEventType.USER_DELETED, id="x")
    await add_webhook(session, admin.id, event_types=[DomainEventType.USER_DELETED])
    heard = await publish(session, DomainEventType.USER_DELETED, id="y")

    assert (await dispatch_jobs(session, unheard), await dispatch_jobs(session, heard)) == (0, 1)


async def test_each_matching_active_webhook_gets_one_delivery_once(session, admin):
    other_admin = await create_user(session, role=UserRole.ADMIN)
    first = await add_webhook(session, admin.id, event_types=ALL_TYPES)
    second = await add_webhook(session, other_admin.id, event_types=[DomainEventType.USER_CREATED])
    await add_webhook(session, admin.id, event_types=[DomainEventType.USER_DELETED])
    await add_webhook(
        session, admin.id, event_types=[DomainEventType.USER_CREATED], is_active=False
    )
    outbox_id = await publish(session, DomainEventType.USER_CREATED, id="u")

    made = await delivery.dispatch_event(session, outbox_id)
    again = await delivery.dispatch_event(session, outbox_id)

    assert again == []
    rows = (
        await session.scalars(
            select(WebhookDelivery).where(col(WebhookDelivery.event_id) == outbox_id)
        )
    ).all()
    assert sorted(r.id for r in rows) == sorted(made)
    assert {r.webhook_id for r in rows} == {first.id, second.id}
    assert {(r.status, r.event_type, r.counted) for r in rows} == {
        ("PENDING", "user.created", True)
    }
    assert rows[0].payload["data"] == {"id": "u"}
    attempts = await session.scalar(
        text(
            "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'webhook_attempt'"
            " AND convert_from(payload, 'UTF8') = ANY(:ids)"
        ),
        {"ids": [str(i) for i in made]},
    )
    assert attempts == 2


async def test_a_manager_hears_only_of_their_own_events_and_their_registrations(
    session, manager, user
):
    other = await create_user(session, role=UserRole.MANAGER)
    hook = await add_webhook(
        session,
        manager.id,
        event_types=[DomainEventType.EVENT_CANCELLED, DomainEventType.REGISTRATION_CONFIRMED],
    )
    mine = await create_event(session, owner=manager)
    theirs = await create_event(session, owner=other)
    on_mine = await register(session, mine, user)
    on_theirs = await register(session, theirs, user)
    heard = [
        await publish(
            session, DomainEventType.EVENT_CANCELLED, id=str(mine.id), created_by=str(manager.id)
        ),
        await publish(
            session,
            DomainEventType.REGISTRATION_CONFIRMED,
            id=str(on_mine.id),
            event_id=str(mine.id),
        ),
    ]
    unheard = [
        await publish(
            session, DomainEventType.EVENT_CANCELLED, id=str(theirs.id), created_by=str(other.id)
        ),
        await publish(
            session,
            DomainEventType.REGISTRATION_CONFIRMED,
            id=str(on_theirs.id),
            event_id=str(theirs.id),
        ),
    ]

    for outbox_id in [*heard, *unheard]:
        await delivery.dispatch_event(session, outbox_id)

    events = await session.scalars(
        select(col(WebhookDelivery.event_id)).where(col(WebhookDelivery.webhook_id) == hook.id)
    )
    assert sorted(events.all()) == sorted(heard)


async def test_a_demoted_or_deactivated_owner_hears_nothing(session):
    demoted = await create_user(session, role=UserRole.ADMIN)
    gone = await create_user(session, role=UserRole.ADMIN)
    hooks = [
        await add_webhook(session, owner.id, event_types=[DomainEventType.USER_UPDATED])
        for owner in (demoted, gone)
    ]
    demoted.role = UserRole.AUTHENTICATED
    gone.is_active = False
    session.add_all([demoted, gone])
    outbox_id = await publish(session, DomainEventType.USER_UPDATED, id="u")

    assert await delivery.dispatch_event(session, outbox_id) == []
    # A manager keeps event.* only: a former admin's user.* webhook hears nothing.
    demoted.role, gone.is_active = UserRole.MANAGER, True
    session.add_all([demoted, gone])
    made = await delivery.dispatch_event(session, outbox_id)
    rows = await session.scalars(
        select(col(WebhookDelivery.webhook_id)).where(col(WebhookDelivery.id).in_(made))
    )
    assert rows.all() == [hooks[1].id]


async def test_old_deliveries_are_removed(session, admin: User):
    hook = await add_webhook(session, admin.id)
    days = settings.WEBHOOK_DELIVERY_RETENTION_DAYS
    for event_id, age in ((1, days + 1), (2, days - 1)):
        session.add(
            WebhookDelivery(
                webhook_id=hook.id,
                event_id=event_id,
                event_type=DomainEventType.EVENT_PUBLISHED,
                payload={},
                created_at=clock.now() - timedelta(days=age),
            )
        )
    await session.flush()

    await delivery.delete_old_deliveries(session)

    kept = await session.scalars(
        select(col(WebhookDelivery.event_id)).where(col(WebhookDelivery.webhook_id) == hook.id)
    )
    assert kept.all() == [2]


def test_retries_follow_the_schedule_with_up_to_ten_percent_jitter():
    delays = [float(d) for d in settings.WEBHOOK_RETRY_SCHEDULE.split(",")]
    waits = [delivery._next_delay(tried) for tried in range(1, len(delays) + 2)]

    assert waits[-1] is None
    for wait, delay in zip(waits, delays, strict=False):
        assert wait is not None
        assert delay <= wait.total_seconds() <= delay * 1.1
    # With the default schedule the last try comes about 20.6 hours after the first.
    assert sum(delays) == 74170
    assert round(sum(delays) / 3600, 1) == 20.6
