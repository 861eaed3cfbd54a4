"""No N+1: the SQL statements a list route runs do not grow with the page size.

Each route is called with size=1 and size=20 over more than 20 rows; the statements sent to
PostgreSQL (counted on the engine) must be the same number for both pages.
"""

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api import clock
from api.audit.models import AuditAction, AuditLog
from api.config import settings
from api.events.models import EventStatus
from api.feeds import service as feed_service
from api.notifications.models import Notification, NotificationKind
from api.registrations.models import RegistrationStatus
from api.reminders import service as reminder_service
from api.users.models import User, UserRole
from tests.factories import (
    api_token_headers,
    create_event,
    create_series,
    create_user,
    queued_mail,
    register,
)
from tests.networking.helpers import connect, member

ROWS = 22
# What the leak scanner (tests/conftest.py) reads beside each answer: every email, every code,
# the caller's contacts.
LEAK_SCANNER_READS = (
    'SELECT "user".id, "user".email',
    "SELECT registration.user_id, registration.checkin_code",
    "SELECT connection.requester_id, connection.addressee_id",
)


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0
        self.statements: list[str] = []

    def __call__(self, *args: Any) -> None:
        self.count += 1
        self.statements.append(args[2])


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    event.listen(engine.sync_engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", counter)


async def counted(
    client: httpx.AsyncClient,
    statements: StatementCounter,
    path: str,
    headers: dict[str, str] | None = None,
) -> dict[int, int]:
    """{page size: statements run} for size 1 and 20, after one call to warm caches."""
    separator = "&" if "?" in path else "?"
    await client.get(f"{path}{separator}size=1", headers=headers)
    counts: dict[int, int] = {}
    for size in (1, 20):
        before = statements.count
        response = await client.get(f"{path}{separator}size={size}", headers=headers)
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == size
        counts[size] = statements.count - before
    assert counts[1] > 0  # the listener sees the route's statements
    return counts


AuthAs = Callable[[User], Awaitable[dict[str, str]]]


async def test_events_listing(client, session: AsyncSession, manager: User, statements):
    for _ in range(ROWS):
        await create_event(session, owner=manager)

    counts = await counted(client, statements, "/api/v1/events")

    assert counts[1] == counts[20]


async def test_own_events_listing(
    client, session: AsyncSession, manager: User, auth_as: AuthAs, statements
):
    for n in range(ROWS):
        await create_event(
            session, owner=manager, status=EventStatus.PENDING if n % 2 else EventStatus.PUBLISHED
        )

    counts = await counted(
        client, statements, "/api/v1/events?created_by=me", await auth_as(manager)
    )

    assert counts[1] == counts[20]


async def test_series_occurrences_listing(
    client, session: AsyncSession, manager: User, auth_as: AuthAs, statements
):
    series, _ = await create_series(session, owner=manager, count=ROWS)

    counts = await counted(
        client, statements, f"/api/v1/events?series_id={series.id}", await auth_as(manager)
    )

    assert counts[1] == counts[20]


async def test_attendees(client, session: AsyncSession, manager: User, auth_as: AuthAs, statements):
    event = await create_event(session, owner=manager, capacity=ROWS // 2)
    for _ in range(ROWS):
        await register(session, event, await create_user(session))

    counts = await counted(
        client, statements, f"/api/v1/events/{event.id}/registrations", await auth_as(manager)
    )

    assert counts[1] == counts[20]


async def test_my_registrations(
    client, session: AsyncSession, user: User, manager: User, auth_as: AuthAs, statements
):
    other = await create_user(session)
    for n in range(ROWS):
        event = await create_event(session, owner=manager, capacity=1)
        if n % 3 == 0:  # a full event: the user waits in line
            await register(session, event, other)
        await register(session, event, user)

    counts = await counted(
        client, statements, "/api/v1/users/me/registrations", await auth_as(user)
    )

    assert counts[1] == counts[20]


async def test_users_list(client, session: AsyncSession, admin: User, auth_as: AuthAs, statements):
    for n in range(ROWS):
        await create_user(session, role=UserRole.MANAGER if n % 4 == 0 else UserRole.AUTHENTICATED)

    counts = await counted(client, statements, "/api/v1/users", await auth_as(admin))

    assert counts[1] == counts[20]


async def test_notification_inbox(
    client, session: AsyncSession, user: User, auth_as: AuthAs, statements
):
    session.add_all(
        Notification(
            user_id=user.id,
            kind=NotificationKind.EVENT_REMINDER,
            title=f"Reminder {n}",
            body="Tomorrow.",
            data={"n": n},
        )
        for n in range(ROWS)
    )
    await session.flush()

    counts = await counted(client, statements, "/api/v1/notifications", await auth_as(user))

    assert counts[1] == counts[20]


async def test_audit_log(client, session: AsyncSession, admin: User, auth_as: AuthAs, statements):
    session.add_all(
        AuditLog(
            actor_id=admin.id,
            action=AuditAction.ROLE_CHANGED,
            target_type="user",
            target_id=admin.id,
            before={"role": "MANAGER"},
            after={"role": "ADMIN"},
        )
        for _ in range(ROWS)
    )
    await session.flush()

    counts = await counted(client, statements, "/api/v1/audit-log", await auth_as(admin))

    assert counts[1] == counts[20]


async def test_event_directory(
    client, session: AsyncSession, manager: User, auth_as: AuthAs, statements
):
    event = await create_event(session, owner=manager, capacity=ROWS)
    for n in range(ROWS):
        await member(session, event, await create_user(session, is_professional=n % 11 == 0))

    counts = await counted(
        client, statements, f"/api/v1/events/{event.id}/directory", await auth_as(manager)
    )
    filtered = await counted(
        client,
        statements,
        f"/api/v1/events/{event.id}/directory?q=_&is_professional=false",
        await auth_as(manager),
    )

    assert (counts[1], filtered[1]) == (counts[20], filtered[20])


@pytest.mark.parametrize("status", ["ACCEPTED", "PENDING"])
async def test_my_connections(
    client, session: AsyncSession, manager: User, user: User, auth_as: AuthAs, statements, status
):
    event = await create_event(session, owner=manager)
    for n in range(ROWS):
        other = await create_user(session)
        requester, addressee = (user, other) if n % 2 else (other, user)
        await connect(session, event, requester, addressee, accepted=status == "ACCEPTED")

    counts = await counted(
        client, statements, f"/api/v1/users/me/connections?status={status}", await auth_as(user)
    )

    assert counts[1] == counts[20]


async def test_my_vcards(
    client, session: AsyncSession, manager: User, user: User, auth_as: AuthAs, statements
):
    event = await create_event(session, owner=manager)
    headers = await auth_as(user)
    await connect(session, event, user, await create_user(session), accepted=True)
    one = await statements_of(client, statements, "/api/v1/users/me/connections.vcf", headers)
    for _ in range(ROWS):
        await connect(session, event, await create_user(session), user, accepted=True)

    many = await statements_of(client, statements, "/api/v1/users/me/connections.vcf", headers)

    assert one == many


async def statements_of(
    client: httpx.AsyncClient, statements: StatementCounter, path: str, headers: dict[str, str]
) -> int:
    """The statements one read runs (after one call to warm caches)."""
    assert (await client.get(path, headers=headers)).status_code == 200
    before = statements.count
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return statements.count - before


@pytest.mark.parametrize(
    "path", ["/api/v1/users/me", "/api/v1/notifications", "/api/v1/events/{id}"]
)
async def test_an_api_token_read_costs_what_a_login_token_read_costs(
    client, session: AsyncSession, user: User, manager: User, auth_as: AuthAs, statements, path
):
    event = await create_event(session, owner=manager)
    path = path.replace("{id}", str(event.id))
    # Used a moment ago: last_used_at is not due (it is written at most once a minute).
    api = await api_token_headers(session, user, last_used_at=clock.now())

    login_count = await statements_of(client, statements, path, await auth_as(user))
    api_count = await statements_of(client, statements, path, api)

    assert api_count == login_count


async def test_personal_data_export(
    client, session: AsyncSession, manager: User, auth_as: AuthAs, statements
):
    """One statement per section, whatever the number of records in each."""
    headers = await auth_as(manager)
    other = await create_user(session)

    async def count() -> int:
        """The route's statements, not the savepoints the test harness wraps requests in."""
        before = statements.count
        response = await client.get("/api/v1/users/me/export", headers=headers)
        assert response.status_code == 200, response.text
        return sum("SAVEPOINT" not in sql for sql in statements.statements[before:])

    async def add_one_of_each() -> None:
        event = await create_event(session, owner=manager)
        await register(session, await create_event(session, owner=other), manager)
        session.add(
            Notification(
                user_id=manager.id, kind=NotificationKind.ROLE_CHANGED, title="t", body="b"
            )
        )
        session.add(
            AuditLog(
                actor_id=manager.id,
                action=AuditAction.EVENT_APPROVED,
                target_type="event",
                target_id=event.id,
            )
        )
        attended = await create_event(session, owner=other)
        await member(session, attended, manager)
        await connect(session, attended, manager, await create_user(session), accepted=True)
        await session.flush()

    await add_one_of_each()
    await count()  # warm caches
    few = await count()
    for _ in range(ROWS):
        await add_one_of_each()
    many = await count()

    assert few == many


async def test_calendar_feed(client, session: AsyncSession, manager: User, statements):
    """The feed: two statements (its owner, then its events) for one event as for many."""
    other = await create_user(session)
    path = (await feed_service.get_feed(session, user_id=manager.id)).url.removeprefix(
        settings.PUBLIC_BASE_URL
    )

    async def count() -> int:
        before = statements.count
        response = await client.get(path)
        assert response.status_code == 200, response.text
        # Not the savepoints of the test harness, nor the leak scanner's reads.
        return sum(
            "SAVEPOINT" not in sql and not sql.startswith(LEAK_SCANNER_READS)
            for sql in statements.statements[before:]
        )

    async def add_one_of_each() -> None:
        await create_event(session, owner=manager, status=EventStatus.PENDING)
        await register(session, await create_event(session, owner=other), manager)

    await add_one_of_each()
    await count()  # warm caches
    few = await count()
    for _ in range(ROWS):
        await add_one_of_each()
    many = await count()

    assert (few, many) == (2, 2)
    assert (await client.get(path)).text.count("BEGIN:VEVENT") == 2 * (ROWS + 1)


@pytest.mark.parametrize("path", ["stats", "stats.png"])
async def test_event_stats(
    client, session: AsyncSession, manager: User, auth_as: AuthAs, statements, path: str
):
    """The same statements for one registration as for many, over many days, with
    cancellations, promotions and check-ins: the counting is done in PostgreSQL."""
    event = await create_event(session, owner=manager, capacity=ROWS // 2)
    headers = await auth_as(manager)
    url = f"/api/v1/events/{event.id}/{path}"

    async def count() -> int:
        before = statements.count
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        # Not the savepoints of the test harness, nor the leak scanner's reads (its caller too).
        return sum(
            "SAVEPOINT" not in sql
            and not sql.startswith((*LEAK_SCANNER_READS, 'SELECT "user".id, "user".role'))
            for sql in statements.statements[before:]
        )

    await register(session, event, await create_user(session))
    await count()  # warm caches
    few = await count()
    start = clock.now() - timedelta(days=ROWS)
    for n in range(ROWS):
        registration = await register(session, event, await create_user(session))
        registration.created_at = start + timedelta(days=n, hours=n)
        if n % 3 == 0:
            registration.status = RegistrationStatus.CANCELLED
            registration.checkin_code = None
            registration.cancelled_at = registration.created_at + timedelta(days=2)
        elif n % 3 == 1:
            registration.checked_in_at = registration.created_at + timedelta(days=1)
        if registration.confirmed_at is None and n % 2:
            registration.promoted_at = registration.confirmed_at = clock.now()
        session.add(registration)
    await session.flush()
    many = await count()

    # The caller, the event, the counts by status, the timeline.
    assert few == many == 4


async def test_reminder_job(session: AsyncSession, manager: User, statements, monkeypatch):
    """The reminder job: the same statements for an event with one confirmed registrant as
    for one with twenty (and as many reminder mails)."""
    now = datetime(2031, 5, 6, 9, 0, tzinfo=UTC)  # years ahead: no other test's event is due
    monkeypatch.setattr(clock, "now", lambda: now)

    async def count(registrants: int) -> int:
        starts_at = now + timedelta(hours=3)
        event = await create_event(
            session,
            owner=manager,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
            capacity=None,
        )
        for _ in range(registrants):
            await register(session, event, await create_user(session))
        mails_before = len(await queued_mail(session))
        before = statements.count
        assert await reminder_service.send_due_reminders(session) == 1
        ran = sum("SAVEPOINT" not in sql for sql in statements.statements[before:])
        assert len(await queued_mail(session)) - mails_before == registrants
        return ran

    await count(1)  # warm caches
    # The due events, their marks, their registrants, their channels, the in-app notices (the
    # mail jobs go through the queue's own driver calls, outside this count).
    assert (await count(1), await count(ROWS)) == (5, 5)
