"""Capacity and the waitlist under real concurrency (CON-1, CON-2, CON-3).

A real server with two worker processes and a small database pool (5 connections plus 5 of
overflow per worker) answers parallel requests. Everything a test needs is committed to the
test database first; every account, event, registration and queued mail a test makes lives
under its own email prefix or event id and is deleted when the test ends.
"""

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api.events import service as event_service
from api.events.models import Event, EventStatus
from api.mail.service import SEND_EMAIL, SUBJECTS, OutgoingMail
from api.registrations import service as registration_service
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, delete_mail_to, register, token_headers
from tests.leaks import LeakScanner
from tests.support import ServerProcess, run_server

DB_POOL_SIZE = 10
# Registrations for one event queue for a pooled connection, then on the event's row lock:
# on a busy machine the last of 200 waits over 3 s (the default pool timeout) for a
# connection, and up to 9 s for the lock (measured), near the default 10 s statement timeout.
# Either would answer 503; this server waits longer instead. The race itself is unchanged.
DB_TIMEOUT_SECONDS = 60
CONFIRMED = RegistrationStatus.CONFIRMED
WAITLISTED = RegistrationStatus.WAITLISTED
CANCELLED = RegistrationStatus.CANCELLED


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {
        "AUTH_RATE_LIMIT": "off",
        "DB_POOL_SIZE": str(DB_POOL_SIZE),
        "DB_POOL_TIMEOUT_SECONDS": str(DB_TIMEOUT_SECONDS),
        "DB_COMMAND_TIMEOUT_SECONDS": str(DB_TIMEOUT_SECONDS),
    }
    with run_server(env, workers=2) as process:
        yield process


@dataclass
class Account:
    user: User
    headers: dict[str, str]

    @property
    def email(self) -> str:
        return self.user.email


@dataclass
class Scenario:
    """What one test commits: accounts under `prefix`, and `event_ids`."""

    engine: AsyncEngine
    prefix: str
    event_ids: list[uuid.UUID] = field(default_factory=list)
    _count: int = 0

    def _email(self) -> str:
        self._count += 1
        return f"{self.prefix}{self._count:04d}@example.com"

    async def accounts(self, count: int, role: UserRole = UserRole.AUTHENTICATED) -> list[Account]:
        """`count` verified users, each with a bearer token, committed."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            accounts = []
            for _ in range(count):
                user = await create_user(session, role=role, email=self._email())
                accounts.append(Account(user, await token_headers(session, user)))
            await session.commit()
        return accounts

    async def event(
        self, owner: Account, capacity: int, *, confirmed: int = 0, waitlisted: int = 0
    ) -> tuple[Event, list[Account]]:
        """A published event; `confirmed` then `waitlisted` new registrants, in this order."""
        registrants = await self.accounts(confirmed + waitlisted)
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            event = await create_event(session, owner=owner.user, capacity=capacity)
            self.event_ids.append(event.id)
            for i, account in enumerate(registrants):
                status = CONFIRMED if i < confirmed else WAITLISTED
                await register(session, event, account.user, status)
            await session.commit()
        return event, registrants


@pytest.fixture
async def scenario(engine: AsyncEngine) -> AsyncIterator[Scenario]:
    prefix = f"evconc-{uuid.uuid4().hex[:10]}-"
    created = Scenario(engine, prefix)
    yield created
    async with AsyncSession(engine) as session:
        await delete_mail_to(session, prefix)
        # Registrations go with their event and their user (ON DELETE CASCADE).
        await session.execute(delete(Event).where(col(Event.id).in_(created.event_ids)))
        await session.execute(delete(User).where(func.lower(User.email).like(f"{prefix}%")))
        await session.commit()


@pytest.fixture
async def owner(scenario: Scenario) -> Account:
    [manager] = await scenario.accounts(1, role=UserRole.MANAGER)
    return manager


def client_for(server: ServerProcess, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base_url,
        timeout=2 * DB_TIMEOUT_SECONDS + 30,
        # No keep-alive: after a long race uvicorn closes idle connections (5 s), and a follow-up
        # request reusing one as it closes fails with "Server disconnected".
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=0),
        event_hooks=LeakScanner().hooks,  # AC-2
    )


async def all_at_once(requests: list[Awaitable[httpx.Response]]) -> list[httpx.Response]:
    """Run the requests concurrently, released together once every task has started."""
    start = asyncio.Event()

    async def after_start(request: Awaitable[httpx.Response]) -> httpx.Response:
        await start.wait()
        return await request

    tasks = [asyncio.create_task(after_start(request)) for request in requests]
    await asyncio.sleep(0)
    start.set()
    return await asyncio.gather(*tasks)


def registration_url(event: Event) -> str:
    return f"/api/v1/events/{event.id}/registrations"


async def stored_event(engine: AsyncEngine, event_id: uuid.UUID) -> Event:
    async with AsyncSession(engine) as session:
        event = await session.get(Event, event_id)
        assert event is not None
        return event


async def stored_registrations(engine: AsyncEngine, event_id: uuid.UUID) -> list[Registration]:
    """All registrations of the event, in arrival (seq) order."""
    async with AsyncSession(engine) as session:
        rows = await session.scalars(
            select(Registration)
            .where(col(Registration.event_id) == event_id)
            .order_by(col(Registration.seq))
        )
        return list(rows.all())


async def mail_for(engine: AsyncEngine, prefix: str) -> Counter[tuple[str, str]]:
    """How many committed mail jobs there are per (recipient, subject) under `prefix`."""
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            text(
                "SELECT payload FROM pgqueuer WHERE entrypoint = :entrypoint"
                " AND lower(convert_from(payload, 'UTF8')::jsonb ->> 'to') LIKE :pattern"
            ),
            {"entrypoint": SEND_EMAIL, "pattern": f"{prefix}%"},
        )
        mails = [OutgoingMail.model_validate_json(bytes(payload)) for (payload,) in rows]
    return Counter((mail.to, mail.subject) for mail in mails)


async def assert_counters_match_rows(engine: AsyncEngine, event_id: uuid.UUID) -> Event:
    """The event's counters equal its rows by status, and its CHECK constraint holds."""
    event = await stored_event(engine, event_id)
    rows = await stored_registrations(engine, event_id)
    by_status = Counter(row.status for row in rows)
    assert (event.registered_count, event.waitlist_count) == (
        by_status[CONFIRMED],
        by_status[WAITLISTED],
    )
    assert event.capacity is not None
    assert 0 <= event.registered_count <= event.capacity
    assert event.waitlist_count >= 0
    return event


def subject(template: str, event: Event) -> str:
    return SUBJECTS[template].format(title=event.title)


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def unexpected(
    server: ServerProcess, responses: list[httpx.Response], *expected: int
) -> tuple[list[tuple[int, str]], str]:
    """The answers with another status than `expected`, and the server's log, for a failure."""
    others = [(r.status_code, r.text) for r in responses if r.status_code not in expected]
    return others, server.log()[-5000:] if others else ""


class TestRegisterForEvent:
    @pytest.mark.parametrize("run", range(3))
    @pytest.mark.parametrize(
        ("capacity", "parallel"), [(10, 50), (50, 200)], ids=["N10-K50", "N50-K200"]
    )
    @pytest.mark.security("CON-1")
    async def test_k_parallel_registrations_fill_n_seats_then_the_waitlist_in_order(
        self,
        server: ServerProcess,
        engine: AsyncEngine,
        scenario: Scenario,
        owner: Account,
        capacity: int,
        parallel: int,
        run: int,
    ) -> None:
        del run  # each run repeats the same race afresh
        assert parallel > 2 * DB_POOL_SIZE  # more than the two workers' pools together
        waiting = parallel - capacity
        event, _ = await scenario.event(owner, capacity)
        accounts = await scenario.accounts(parallel)
        async with client_for(server, parallel) as client:
            responses = await all_at_once(
                [client.post(registration_url(event), headers=a.headers) for a in accounts]
            )
            assert statuses(responses) == {201: parallel}, unexpected(server, responses, 201)
            shown = await client.get(f"/api/v1/events/{event.id}")

        answers = [response.json() for response in responses]
        assert {a["user_id"] for a in answers} == {str(a.user.id) for a in accounts}
        assert {a["event_id"] for a in answers} == {str(event.id)}
        assert Counter(a["status"] for a in answers) == {CONFIRMED: capacity, WAITLISTED: waiting}
        assert {a["waitlist_position"] for a in answers if a["status"] == CONFIRMED} == {None}
        positions = {a["id"]: a["waitlist_position"] for a in answers if a["status"] == WAITLISTED}
        assert sorted(positions.values()) == list(range(1, waiting + 1))

        rows = await stored_registrations(engine, event.id)
        assert {str(row.id) for row in rows} == {a["id"] for a in answers}
        # The line is served in arrival order: the first N to take the lock got the seats.
        assert [row.status for row in rows] == [CONFIRMED] * capacity + [WAITLISTED] * waiting
        assert [positions[str(row.id)] for row in rows[capacity:]] == list(range(1, waiting + 1))

        stored = await assert_counters_match_rows(engine, event.id)
        assert (stored.registered_count, stored.waitlist_count) == (capacity, waiting)
        assert shown.status_code == 200
        body = shown.json()
        assert (body["spots_left"], body["registered_count"], body["waitlist_count"]) == (
            0,
            capacity,
            waiting,
        )
        received = subject("registration_confirmed", event)
        assert await mail_for(engine, scenario.prefix) == {(a.email, received): 1 for a in accounts}

    @pytest.mark.security("CON-2")
    async def test_one_user_20_parallel_registrations_make_one(
        self, server: ServerProcess, engine: AsyncEngine, scenario: Scenario, owner: Account
    ) -> None:
        event, _ = await scenario.event(owner, capacity=10)
        [account] = await scenario.accounts(1)
        async with client_for(server, 20) as client:
            responses = await all_at_once(
                [client.post(registration_url(event), headers=account.headers) for _ in range(20)]
            )
        assert statuses(responses) == {201: 1, 409: 19}, unexpected(server, responses, 201, 409)
        refused = [r.json() for r in responses if r.status_code == 409]
        assert refused == [{"detail": "ALREADY_REGISTERED"}] * 19
        [created] = [r.json() for r in responses if r.status_code == 201]
        assert (created["user_id"], created["status"], created["waitlist_position"]) == (
            str(account.user.id),
            CONFIRMED,
            None,
        )

        rows = await stored_registrations(engine, event.id)
        assert [(str(row.id), row.user_id, row.status) for row in rows] == [
            (created["id"], account.user.id, CONFIRMED)
        ]
        stored = await assert_counters_match_rows(engine, event.id)
        assert (stored.registered_count, stored.waitlist_count) == (1, 0)
        received = subject("registration_confirmed", event)
        assert await mail_for(engine, scenario.prefix) == {(account.email, received): 1}


@pytest.mark.security("CON-3")
class TestUnregisterFromEvent:
    async def test_parallel_unregistrations_and_registrations_promote_the_waitlist_in_order(
        self, server: ServerProcess, engine: AsyncEngine, scenario: Scenario, owner: Account
    ) -> None:
        capacity = 10
        event, originals = await scenario.event(
            owner, capacity, confirmed=capacity, waitlisted=capacity
        )
        leaving, waiting = originals[:capacity], originals[capacity:]
        newcomers = await scenario.accounts(20)
        await assert_counters_match_rows(engine, event.id)

        async with client_for(server, len(leaving) + len(newcomers)) as client:
            requests = [
                ("leave", client.delete(f"{registration_url(event)}/me", headers=a.headers))
                for a in leaving
            ] + [
                ("join", client.post(registration_url(event), headers=a.headers)) for a in newcomers
            ]
            random.Random(20).shuffle(requests)
            responses = await all_at_once([request for _, request in requests])
            line = await client.get(
                registration_url(event),
                params={"status": WAITLISTED, "size": 100},
                headers=owner.headers,
            )

        answers = list(zip((kind for kind, _ in requests), responses, strict=True))
        left = [response for kind, response in answers if kind == "leave"]
        assert statuses(left) == {204: capacity}, unexpected(server, left, 204)
        joins = [response for kind, response in answers if kind == "join"]
        assert statuses(joins) == {201: 20}, unexpected(server, joins, 201)
        joined = {r.json()["user_id"]: r.json() for r in joins}
        assert {a["status"] for a in joined.values()} == {WAITLISTED}

        rows = await stored_registrations(engine, event.id)
        row_of = {row.user_id: row for row in rows}
        assert len(rows) == len(row_of) == 40
        # Every seat given up went to the head of the line in the same transaction.
        assert {row_of[a.user.id].status for a in leaving} == {CANCELLED}
        promoted = [row_of[a.user.id] for a in waiting]  # in their original seq order
        assert {row.status for row in promoted} == {CONFIRMED}
        promoted_at = [row.promoted_at for row in promoted if row.promoted_at is not None]
        assert len(promoted_at) == capacity
        assert promoted_at == sorted(promoted_at)
        assert len(set(promoted_at)) == capacity
        # Each cancellation promoted the head of the line before the next one took the lock.
        cancelled_at = [row_of[a.user.id].cancelled_at for a in leaving]
        timeline = sorted(
            [(moment, "leave") for moment in cancelled_at if moment is not None]
            + [(moment, "promote") for moment in promoted_at]
        )
        assert [kind for _, kind in timeline] == ["leave", "promote"] * capacity
        # The newcomers all queued behind the original waitlist, in their arrival order.
        new_rows = [row for row in rows if str(row.user_id) in joined]
        assert [row.status for row in new_rows] == [WAITLISTED] * 20

        # A newcomer's answer counted the originals still waiting when it queued: never more
        # than 10, and fewer as later newcomers arrived.
        ahead = [
            joined[str(row.user_id)]["waitlist_position"] - rank
            for rank, row in enumerate(new_rows, start=1)
        ]
        assert all(0 <= count <= capacity for count in ahead), ahead
        assert ahead == sorted(ahead, reverse=True), ahead

        assert line.status_code == 200
        items = line.json()["items"]
        assert [(i["user"]["id"], i["waitlist_position"]) for i in items] == [
            (str(row.user_id), position) for position, row in enumerate(new_rows, start=1)
        ]
        assert line.json()["total"] == 20

        stored = await assert_counters_match_rows(engine, event.id)
        assert (stored.registered_count, stored.waitlist_count) == (capacity, 20)
        seat = subject("waitlist_promoted", event)
        received = subject("registration_confirmed", event)
        expected: dict[tuple[str, str], int] = {(a.email, seat): 1 for a in waiting}
        expected |= {(a.email, received): 1 for a in newcomers}
        assert await mail_for(engine, scenario.prefix) == expected


async def blocked_on_a_lock(engine: AsyncEngine, pid: int) -> None:
    """Return once the backend `pid` waits for a lock another transaction holds."""
    async with engine.connect() as connection:
        for _ in range(1000):
            # pg_blocking_pids is read live, unlike pg_stat_activity's per-transaction snapshot.
            query = text("SELECT cardinality(pg_blocking_pids(:pid))")
            if await connection.scalar(query, {"pid": pid}):
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


async def backend_pid(session: AsyncSession) -> int:
    pid = await session.scalar(text("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


class TestRegistrationWaitingForTheEventLock:
    """A registration that passed its checks, then waited for the event's row lock, decides on
    the row as the other transaction left it (the seat statement's re-check)."""

    async def test_event_cancelled_meanwhile_event_not_open_and_nothing_written(
        self, engine: AsyncEngine, scenario: Scenario, owner: Account
    ) -> None:
        event, [seated] = await scenario.event(owner, capacity=10, confirmed=1)
        [late] = await scenario.accounts(1)
        async with (
            AsyncSession(engine, expire_on_commit=False) as canceller,
            AsyncSession(engine, expire_on_commit=False) as registrant,
        ):
            loaded = await canceller.get(Event, event.id)
            assert loaded is not None
            await event_service.cancel_event(
                canceller, actor=owner.user, event=loaded, reason="Venue closed"
            )
            # Loaded (as the route loads it) before the cancellation commits: still PUBLISHED.
            seen = await registrant.get(Event, event.id)
            assert seen is not None
            pid = await backend_pid(registrant)
            registering = asyncio.create_task(
                registration_service.register_for_event(registrant, user=late.user, event=seen)
            )
            await blocked_on_a_lock(engine, pid)
            await canceller.commit()
            with pytest.raises(registration_service.EventNotOpen) as refused:
                await registering
            assert refused.value.reason == "The event is CANCELLED, not open for registration"
            await registrant.rollback()

        rows = await stored_registrations(engine, event.id)
        assert [(row.user_id, row.status) for row in rows] == [(seated.user.id, CANCELLED)]
        stored = await assert_counters_match_rows(engine, event.id)
        assert (stored.status, stored.registered_count, stored.waitlist_count) == (
            EventStatus.CANCELLED,
            0,
            0,
        )
        assert await mail_for(engine, scenario.prefix) == {
            (seated.email, subject("event_cancelled", event)): 1
        }

    async def test_same_user_registered_meanwhile_already_registered_and_counted_once(
        self, engine: AsyncEngine, scenario: Scenario, owner: Account
    ) -> None:
        event, _ = await scenario.event(owner, capacity=10)
        [account] = await scenario.accounts(1)
        async with (
            AsyncSession(engine, expire_on_commit=False) as first,
            AsyncSession(engine, expire_on_commit=False) as second,
        ):
            loaded = await first.get(Event, event.id)
            assert loaded is not None
            registration, position = await registration_service.register_for_event(
                first, user=account.user, event=loaded
            )
            assert (registration.status, position) == (CONFIRMED, None)
            seen = await second.get(Event, event.id)
            assert seen is not None
            pid = await backend_pid(second)
            again = asyncio.create_task(
                registration_service.register_for_event(second, user=account.user, event=seen)
            )
            await blocked_on_a_lock(engine, pid)
            await first.commit()
            with pytest.raises(registration_service.AlreadyRegistered):
                await again
            # Before its rollback: the refused insert moved no counter in its own transaction.
            counters = await second.execute(
                select(col(Event.registered_count), col(Event.waitlist_count)).where(
                    col(Event.id) == event.id
                )
            )
            assert counters.one() == (1, 0)
            await second.rollback()

        rows = await stored_registrations(engine, event.id)
        assert [(row.id, row.status) for row in rows] == [(registration.id, CONFIRMED)]
        stored = await assert_counters_match_rows(engine, event.id)
        assert (stored.registered_count, stored.waitlist_count) == (1, 0)
        received = subject("registration_confirmed", event)
        assert await mail_for(engine, scenario.prefix) == {(account.email, received): 1}
