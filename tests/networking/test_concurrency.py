"""The directory and connections under real concurrency (DIR-1): racing requests between the
same two members make one request, whichever way they go; a member leaving while being asked
leaves no pending request behind; an attendee opting in while unregistering is left out.

A real server with two worker processes answers parallel requests. Everything a test needs is
committed first, under its own email prefix and event; both are deleted when the test ends (the
memberships, connections and registrations go with them: ON DELETE CASCADE).
"""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api.events.models import Event
from api.networking.models import Connection, ConnectionStatus, DirectoryMember
from api.notifications.models import Notification, NotificationKind
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, delete_mail_to, register, token_headers
from tests.leaks import LeakScanner
from tests.networking.helpers import connections_url, member
from tests.support import ServerProcess, run_server

pytestmark = pytest.mark.security("DIR-1")

RACERS = 10


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with run_server({"AUTH_RATE_LIMIT": "off"}, workers=2) as process:
        yield process


@dataclass
class Member:
    user: User
    headers: dict[str, str]


@dataclass
class World:
    engine: AsyncEngine
    prefix: str
    event_ids: list[uuid.UUID] = field(default_factory=list)

    async def event_with_members(
        self, count: int, *, opted_in: bool = True
    ) -> tuple[Event, list[Member]]:
        """A published event and `count` checked-in members of its directory (CONFIRMED
        registrants only, unless `opted_in`), committed."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            owner = await create_user(
                session, role=UserRole.MANAGER, email=f"{self.prefix}owner@example.com"
            )
            event = await create_event(session, owner=owner, capacity=count)
            self.event_ids.append(event.id)
            members = []
            for n in range(count):
                user = await create_user(session, email=f"{self.prefix}{n:03d}@example.com")
                if opted_in:
                    await member(session, event, user)
                else:
                    await register(session, event, user)
                members.append(Member(user, await token_headers(session, user)))
            await session.commit()
        return event, members


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    prefix = f"netconc-{uuid.uuid4().hex[:10]}-"
    made = World(engine, prefix)
    yield made
    async with AsyncSession(engine) as session:
        await delete_mail_to(session, prefix)
        await session.execute(delete(Event).where(col(Event.id).in_(made.event_ids)))
        await session.execute(delete(User).where(func.lower(User.email).like(f"{prefix}%")))
        await session.commit()


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.base_url,
        timeout=30,
        event_hooks=LeakScanner().hooks,  # AC-2
    ) as client:
        yield client


async def test_racing_requests_between_two_members_make_one(
    world: World, http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event, (first, second) = await world.event_with_members(2)
    calls = [
        http.post(connections_url(event.id), json={"user_id": str(b.user.id)}, headers=a.headers)
        for _ in range(RACERS)
        for a, b in ((first, second), (second, first))
    ]

    responses = await asyncio.gather(*calls)

    outcomes = Counter(
        (r.status_code, r.json()["detail"]["code"] if r.status_code == 409 else None)
        for r in responses
    )
    assert outcomes == Counter({(201, None): 1, (409, "CONNECTION_PENDING"): 2 * RACERS - 1})
    async with AsyncSession(engine) as session:
        rows = (
            await session.scalars(select(Connection).where(col(Connection.event_id) == event.id))
        ).all()
        [made] = [r for r in responses if r.status_code == 201]
        assert [(str(c.id), c.status) for c in rows] == [
            (made.json()["id"], ConnectionStatus.PENDING)
        ]
        notices = await session.scalar(
            select(func.count()).where(
                col(Notification.kind) == NotificationKind.CONNECTION_REQUESTED,
                col(Notification.user_id).in_([first.user.id, second.user.id]),
            )
        )
        assert notices == 1


async def test_leaving_while_being_asked_leaves_no_pending_request(
    world: World, http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Half the members ask the other half, who unregister at the same time: whatever order
    PostgreSQL settles them in, a pending request joins two members."""
    event, members = await world.event_with_members(2 * RACERS)
    askers, leavers = members[:RACERS], members[RACERS:]
    calls = [
        call
        for asker, leaver in zip(askers, leavers, strict=True)
        for call in (
            http.post(
                connections_url(event.id),
                json={"user_id": str(leaver.user.id)},
                headers=asker.headers,
            ),
            http.delete(f"/api/v1/events/{event.id}/registrations/me", headers=leaver.headers),
        )
    ]

    responses = await asyncio.gather(*calls)

    asked, left = responses[0::2], responses[1::2]
    assert {r.status_code for r in left} == {204}
    assert {
        (r.status_code, r.json()["detail"]["code"] if r.status_code != 201 else None) for r in asked
    } <= {(201, None), (404, "ATTENDEE_NOT_FOUND")}
    async with AsyncSession(engine) as session:
        remaining = set(
            (
                await session.scalars(
                    select(col(DirectoryMember.user_id)).where(
                        col(DirectoryMember.event_id) == event.id
                    )
                )
            ).all()
        )
        pending = (
            await session.scalars(select(Connection).where(col(Connection.event_id) == event.id))
        ).all()
    assert remaining == {asker.user.id for asker in askers}
    assert pending == []


async def test_opting_in_while_unregistering_leaves_no_member(
    world: World, http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Each CONFIRMED registrant opts in and unregisters at once: whichever goes first, the
    directory ends empty (a member holds a CONFIRMED registration) and nothing fails."""
    event, registrants = await world.event_with_members(RACERS, opted_in=False)
    calls = [
        call
        for registrant in registrants
        for call in (
            http.put(f"/api/v1/events/{event.id}/directory/me", headers=registrant.headers),
            http.delete(f"/api/v1/events/{event.id}/registrations/me", headers=registrant.headers),
        )
    ]

    responses = await asyncio.gather(*calls)

    joined, left = responses[0::2], responses[1::2]
    assert {r.status_code for r in left} == {204}
    assert {
        (r.status_code, None if r.status_code == 200 else r.json()["detail"]["code"])
        for r in joined
    } <= {(200, None), (403, "NOT_CONFIRMED_ATTENDEE")}
    async with AsyncSession(engine) as session:
        remaining = await session.scalar(
            select(func.count()).where(col(DirectoryMember.event_id) == event.id)
        )
    assert remaining == 0
