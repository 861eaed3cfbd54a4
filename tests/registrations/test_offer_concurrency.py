"""OFF-1: with waitlist offers on, races of registrations, accepts, declines and expiries never
exceed capacity, each freed seat is offered once, and the line keeps positions 1..n.

A real server with two worker processes serves a freshly migrated database of its own, on a
clock the test moves (tests/apps/clock_app.py: both workers and this process read one offset
file). In rounds, each at a later time, parallel requests leave seats, accept and decline
offers (some of them lapsed), register, read their registrations, list attendees and check in,
while this process runs the `expire_waitlist_offers` job twice alongside; a last read alone
settles lapsed offers itself. Between rounds and at the end, every registration's status, the
counters, the notices, the outbox and the line are compared with what the rules give.
"""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

import api.clock
from api.db import create_engine
from api.events.models import Event, WaitlistMode
from api.notifications.models import Notification, NotificationKind
from api.outbox.models import OutboxEvent
from api.registrations import waitlist
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User, UserRole
from tests.apps.clock_app import offset_now
from tests.factories import create_event, create_user, register, token_headers
from tests.leaks import LeakScanner
from tests.support import ServerProcess, TestDatabaseServer, run_server

pytestmark = pytest.mark.security("OFF-1")

CAPACITY = 6
WAITING = 30
NEWCOMERS_PER_ROUND = 6
OFFER_HOURS = 1
# Requests queue for a pooled connection, then on the event's row lock: wait rather than 503.
DB_TIMEOUT_SECONDS = 60
CONFIRMED = RegistrationStatus.CONFIRMED
OFFERED = RegistrationStatus.OFFERED
WAITLISTED = RegistrationStatus.WAITLISTED
CANCELLED = RegistrationStatus.CANCELLED
EXPIRED = RegistrationStatus.EXPIRED


@pytest.fixture(scope="module")
def offset_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "offset"
    path.write_text("0")
    return path


@pytest.fixture(scope="module")
def server(db_server: TestDatabaseServer, offset_file: Path) -> Iterator[ServerProcess]:
    env = {
        "AUTH_RATE_LIMIT": "off",
        "DB_POOL_SIZE": "10",
        "DB_POOL_TIMEOUT_SECONDS": str(DB_TIMEOUT_SECONDS),
        "DB_COMMAND_TIMEOUT_SECONDS": str(DB_TIMEOUT_SECONDS),
        # The clock moves hours ahead: login tokens made before must still be good.
        "ACCESS_TOKEN_EXPIRE_MINUTES": str(7 * 24 * 60),
        "TEST_CLOCK_OFFSET_FILE": str(offset_file),
    }
    with run_server(
        env, workers=2, target="tests.apps.clock_app:create_app", own_database=db_server
    ) as process:
        yield process


@pytest.fixture
async def database(server: ServerProcess) -> AsyncIterator[AsyncEngine]:
    """The server's own database, for this process's writes, reads and job runs."""
    engine = create_engine(server.database_url, pool_size=4, timed_statements=False)
    yield engine
    await engine.dispose()


@dataclass
class Clock:
    """Moves the clock of the server's workers and of this process together."""

    path: Path

    def set(self, minutes: float) -> None:
        self.path.write_text(str(minutes * 60))


@pytest.fixture
def moved_clock(offset_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    monkeypatch.setenv("TEST_CLOCK_OFFSET_FILE", str(offset_file))
    monkeypatch.setattr(api.clock, "now", offset_now)
    clock = Clock(offset_file)
    clock.set(0)
    yield clock
    clock.set(0)


@dataclass
class Account:
    user: User
    headers: dict[str, str]


@dataclass
class World:
    """The event and its people: `seated` hold the seats, `waiting` are the line, in order."""

    event: Event
    owner: Account
    seated: list[Account]
    waiting: list[Account]
    newcomers: list[list[Account]] = field(default_factory=list)


async def build_world(engine: AsyncEngine) -> World:
    async with AsyncSession(engine, expire_on_commit=False) as session:

        async def account(role: UserRole = UserRole.AUTHENTICATED) -> Account:
            user = await create_user(session, role=role)
            return Account(user, await token_headers(session, user))

        owner = await account(UserRole.MANAGER)
        event = await create_event(
            session,
            owner=owner.user,
            capacity=CAPACITY,
            waitlist_mode=WaitlistMode.OFFER,
            offer_hours=OFFER_HOURS,
        )
        seated = [await account() for _ in range(CAPACITY)]
        waiting = [await account() for _ in range(WAITING)]
        for person in [*seated, *waiting]:
            await register(session, event, person.user)
        newcomers = [[await account() for _ in range(NEWCOMERS_PER_ROUND)] for _ in range(4)]
        await session.commit()
    return World(event, owner, seated, waiting, newcomers)


def client_for(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base_url,
        timeout=2 * DB_TIMEOUT_SECONDS + 30,
        # No keep-alive: uvicorn closes idle connections between rounds.
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
        event_hooks=LeakScanner().hooks,  # AC-2
    )


async def all_at_once(work: list[Awaitable[Any]]) -> list[Any]:
    """Run the work concurrently, released together once every task has started."""
    start = asyncio.Event()

    async def after_start(item: Awaitable[Any]) -> Any:
        await start.wait()
        return await item

    tasks = [asyncio.create_task(after_start(item)) for item in work]
    await asyncio.sleep(0)
    start.set()
    return await asyncio.gather(*tasks)


async def run_job(engine: AsyncEngine) -> int:
    """The `expire_waitlist_offers` job's work, as a worker runs it: its own transaction."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        expired = await waitlist.expire_waitlist_offers(session)
        await session.commit()
    return expired


class Round:
    """Tagged requests (and job runs) started together; their answers by tag."""

    def __init__(self, client: httpx.AsyncClient, world: World) -> None:
        self.client = client
        self.world = world
        self.base = f"/api/v1/events/{world.event.id}/registrations"
        self.work: list[tuple[str, Awaitable[Any]]] = []

    def leave(self, tag: str, who: Account) -> None:
        self.work.append((tag, self.client.delete(f"{self.base}/me", headers=who.headers)))

    def join(self, tag: str, who: Account) -> None:
        self.work.append((tag, self.client.post(self.base, headers=who.headers)))

    def answer(self, tag: str, who: Account, action: str) -> None:
        self.work.append((tag, self.client.post(f"{self.base}/me/{action}", headers=who.headers)))

    def look(self, tag: str, who: Account) -> None:
        self.work.append((tag, self.client.get(f"{self.base}/me", headers=who.headers)))

    def list_offers(self, tag: str) -> None:
        self.work.append(
            (
                tag,
                self.client.get(
                    self.base, params={"status": "OFFERED"}, headers=self.world.owner.headers
                ),
            )
        )

    def check_in(self, tag: str, registration_id: uuid.UUID) -> None:
        self.work.append(
            (
                tag,
                self.client.post(
                    f"{self.base}/{registration_id}/check-in", headers=self.world.owner.headers
                ),
            )
        )

    def job(self, tag: str, engine: AsyncEngine) -> None:
        self.work.append((tag, run_job(engine)))

    async def run(self) -> dict[str, list[Any]]:
        answers = await all_at_once([item for _, item in self.work])
        by_tag: dict[str, list[Any]] = {}
        for (tag, _), answer in zip(self.work, answers, strict=True):
            by_tag.setdefault(tag, []).append(answer)
        return by_tag


def answers(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    """(status, registration status or error code) of each answer."""
    out: Counter[tuple[int, str]] = Counter()
    for response in responses:
        body = response.json() if response.content else None
        if body is None:
            out[(response.status_code, "")] += 1
        elif "status" in body:
            out[(response.status_code, body["status"])] += 1
        else:
            detail = body["detail"]
            out[(response.status_code, detail if isinstance(detail, str) else detail["code"])] += 1
    return out


async def rows(engine: AsyncEngine, event: Event) -> list[Registration]:
    async with AsyncSession(engine) as session:
        found = await session.scalars(
            select(Registration)
            .where(col(Registration.event_id) == event.id)
            .order_by(col(Registration.seq))
        )
        return list(found.all())


async def status_of(engine: AsyncEngine, world: World) -> dict[uuid.UUID, list[str]]:
    """Each user's registrations' statuses, oldest first."""
    found: dict[uuid.UUID, list[str]] = {}
    for row in await rows(engine, world.event):
        found.setdefault(row.user_id, []).append(str(row.status))
    return found


async def counters(engine: AsyncEngine, world: World) -> tuple[int, int, int]:
    """(registered, offered, waitlist) as stored, after checking them against the rows."""
    async with AsyncSession(engine) as session:
        event = await session.get(Event, world.event.id)
        assert event is not None
        stored = (event.registered_count, event.offered_count, event.waitlist_count)
    by_status = Counter(row.status for row in await rows(engine, world.event))
    assert stored == (
        by_status[CONFIRMED] + by_status[OFFERED],
        by_status[OFFERED],
        by_status[WAITLISTED],
    )
    assert stored[0] <= CAPACITY
    return stored


async def notices(engine: AsyncEngine, kind: NotificationKind) -> Counter[uuid.UUID]:
    """How many notices of `kind` each user has."""
    async with AsyncSession(engine) as session:
        found = await session.execute(
            select(col(Notification.user_id), func.count())
            .where(col(Notification.kind) == kind)
            .group_by(col(Notification.user_id))
        )
        return Counter(dict(found.tuples().all()))


async def expiries_announced(engine: AsyncEngine) -> Counter[str]:
    """How many `registration.cancelled` outbox rows announce each EXPIRED registration."""
    async with AsyncSession(engine) as session:
        found = await session.scalars(
            select(OutboxEvent).where(col(OutboxEvent.type) == "registration.cancelled")
        )
        return Counter(row.data["id"] for row in found if row.data["status"] == "EXPIRED")


def ids(accounts: list[Account]) -> list[uuid.UUID]:
    return [account.user.id for account in accounts]


def statuses_of(found: dict[uuid.UUID, list[str]], accounts: list[Account]) -> list[list[str]]:
    return [found[account.user.id] for account in accounts]


class TestOfferRaces:
    async def test_leaves_accepts_declines_expiries_and_registrations_in_parallel(
        self, server: ServerProcess, database: AsyncEngine, moved_clock: Clock
    ) -> None:
        world = await build_world(database)
        w = world.waiting
        async with client_for(server) as client:
            # A, at 0: three seats are left; three newcomers join; people in line look.
            moved_clock.set(0)
            a = Round(client, world)
            for person in world.seated[:3]:
                a.leave("leave", person)
            for person in world.newcomers[0]:
                a.join("join", person)
            for person in w[3:13]:
                a.look("look", person)
            got = await a.run()
            assert answers(got["leave"]) == {(204, ""): 3}
            assert answers(got["join"]) == {(201, "WAITLISTED"): NEWCOMERS_PER_ROUND}
            assert answers(got["look"]) == {(200, "WAITLISTED"): 10}
            found = await status_of(database, world)
            assert statuses_of(found, w[:4]) == [["OFFERED"]] * 3 + [["WAITLISTED"]]
            assert await counters(database, world) == (6, 3, 33)

            # B, at +30 min: the other three seats are left; w0 accepts, w1 declines.
            moved_clock.set(30)
            b = Round(client, world)
            for person in world.seated[3:]:
                b.leave("leave", person)
            b.answer("accept", w[0], "accept")
            b.answer("decline", w[1], "decline")
            for person in world.newcomers[1]:
                b.join("join", person)
            b.list_offers("list")
            got = await b.run()
            assert answers(got["leave"]) == {(204, ""): 3}
            assert answers(got["accept"]) == {(200, "CONFIRMED"): 1}
            assert answers(got["decline"]) == {(200, "CANCELLED"): 1}
            assert answers(got["join"]) == {(201, "WAITLISTED"): NEWCOMERS_PER_ROUND}
            assert [r.status_code for r in got["list"]] == [200]
            found = await status_of(database, world)
            assert statuses_of(found, w[:8]) == [
                ["CONFIRMED"],
                ["CANCELLED"],
                *[["OFFERED"]] * 5,
                ["WAITLISTED"],
            ]
            assert await counters(database, world) == (6, 5, 35)

            # C, at +61 min: w2's offer (made at 0) has lapsed, w3..w6's (made at +30) not.
            moved_clock.set(61)
            accepted = next(
                r for r in await rows(database, world.event) if r.user_id == w[0].user.id
            )
            c = Round(client, world)
            c.answer("late", w[2], "accept")
            c.answer("accept", w[3], "accept")
            c.answer("decline", w[4], "decline")
            c.leave("leave", w[5])
            c.job("job", database)
            c.job("job", database)
            for person in world.newcomers[2]:
                c.join("join", person)
            for person in w[10:15]:
                c.look("look", person)
            c.check_in("check-in", accepted.id)
            got = await c.run()
            assert answers(got["late"]) == {(409, "OFFER_EXPIRED"): 1}
            assert answers(got["accept"]) == {(200, "CONFIRMED"): 1}
            assert answers(got["decline"]) == {(200, "CANCELLED"): 1}
            assert answers(got["leave"]) == {(204, ""): 1}
            assert answers(got["join"]) == {(201, "WAITLISTED"): NEWCOMERS_PER_ROUND}
            assert answers(got["look"]) == {(200, "WAITLISTED"): 5}
            assert [r.status_code for r in got["check-in"]] == [200]
            assert sum(got["job"]) <= 1
            found = await status_of(database, world)
            assert statuses_of(found, w[:11]) == [
                ["CONFIRMED"],
                ["CANCELLED"],
                ["EXPIRED"],
                ["CONFIRMED"],
                ["CANCELLED"],
                ["CANCELLED"],
                *[["OFFERED"]] * 4,
                ["WAITLISTED"],
            ]
            assert await counters(database, world) == (6, 4, 38)

            # D, at +200 min: every open offer has lapsed; the job races the routes.
            moved_clock.set(200)
            d = Round(client, world)
            d.answer("late", w[6], "accept")
            d.answer("late", w[7], "decline")
            d.look("lapsed", w[8])
            d.look("lapsed", w[9])
            d.job("job", database)
            d.job("job", database)
            for person in world.newcomers[3]:
                d.join("join", person)
            for person in w[14:20]:
                d.look("look", person)
            got = await d.run()
            assert answers(got["late"]) == {(409, "OFFER_EXPIRED"): 2}
            assert answers(got["lapsed"]) == {(200, "EXPIRED"): 2}
            assert answers(got["join"]) == {(201, "WAITLISTED"): NEWCOMERS_PER_ROUND}
            assert answers(got["look"]) == {(200, "WAITLISTED"): 6}
            assert sum(got["job"]) <= 4

            # E, at +300 min, nobody else about: one read (a GET, whose session runs in
            # autocommit) settles the four lapsed offers in a transaction of its own.
            moved_clock.set(300)
            alone = await client.get(
                f"/api/v1/events/{world.event.id}/registrations/me", headers=w[10].headers
            )
            assert (alone.status_code, alone.json()["status"]) == (200, "EXPIRED")
            found = await status_of(database, world)
            assert statuses_of(found, w[10:19]) == [["EXPIRED"]] * 4 + [["OFFERED"]] * 4 + [
                ["WAITLISTED"]
            ]

            waitlisted = await client.get(
                f"/api/v1/events/{world.event.id}/registrations",
                params={"status": "WAITLISTED", "size": 100},
                headers=world.owner.headers,
            )

        found = await status_of(database, world)
        assert statuses_of(found, world.seated) == [["CANCELLED"]] * CAPACITY
        assert statuses_of(found, w) == [
            ["CONFIRMED"],
            ["CANCELLED"],
            ["EXPIRED"],
            ["CONFIRMED"],
            ["CANCELLED"],
            ["CANCELLED"],
            *[["EXPIRED"]] * 8,
            *[["OFFERED"]] * 4,
            *[["WAITLISTED"]] * (WAITING - 18),
        ]
        # Nobody who joined while the seats moved took one: they all queue behind the line.
        newcomers = [person for group in world.newcomers for person in group]
        assert statuses_of(found, newcomers) == [["WAITLISTED"]] * len(newcomers)
        # Never past capacity, and no seat left free while people wait: the 18 seats freed
        # (6 left, 3 declined, 9 expired) went as 18 offers, one to each of the first 18 in line.
        assert await counters(database, world) == (CAPACITY, 4, WAITING - 18 + len(newcomers))
        offers = await notices(database, NotificationKind.WAITLIST_OFFER)
        assert offers == Counter(dict.fromkeys(ids(w[:18]), 1))
        registration_rows = await rows(database, world.event)
        offered_rows = [row for row in registration_rows if row.offer_expires_at is not None]
        assert [row.user_id for row in offered_rows] == ids(w[:18])
        # Each lapsed offer expired once: one notice, one announcement.
        expired = [w[2], *w[6:14]]
        assert await notices(database, NotificationKind.WAITLIST_OFFER_EXPIRED) == Counter(
            dict.fromkeys(ids(expired), 1)
        )
        expired_ids = {row.id for row in registration_rows if row.status is EXPIRED}
        assert await expiries_announced(database) == Counter(
            dict.fromkeys((str(i) for i in expired_ids), 1)
        )
        # The line: positions 1..n in arrival order, the original line before the newcomers.
        assert waitlisted.status_code == 200
        line = waitlisted.json()["items"]
        in_line = [row for row in registration_rows if row.status is WAITLISTED]
        assert [(item["user"]["id"], item["waitlist_position"]) for item in line] == [
            (str(row.user_id), position) for position, row in enumerate(in_line, start=1)
        ]
        # Each round's newcomers (in their arrival order, which the race decides) behind the
        # line as it was, and behind the earlier rounds' newcomers.
        in_order = [row.user_id for row in in_line]
        assert in_order[: WAITING - 18] == ids(w[18:])
        joined = in_order[WAITING - 18 :]
        assert [
            set(joined[i * NEWCOMERS_PER_ROUND : (i + 1) * NEWCOMERS_PER_ROUND])
            for i in range(len(world.newcomers))
        ] == [set(ids(group)) for group in world.newcomers]
