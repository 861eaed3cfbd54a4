"""What the networking tests share: members written straight to the database, connections
between them, and the shapes the API shows."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api import clock
from api.events.models import Event
from api.networking.models import Connection, ConnectionStatus, DirectoryMember
from api.registrations.models import Registration
from api.users.models import User
from tests.factories import PUBLIC_FIELDS, register

API = "/api/v1"


def directory_url(event_id: uuid.UUID, tail: str = "") -> str:
    return f"{API}/events/{event_id}/directory{tail}"


def connections_url(event_id: uuid.UUID) -> str:
    return f"{API}/events/{event_id}/connections"


def connection_url(connection_id: uuid.UUID | str, tail: str = "") -> str:
    return f"{API}/connections/{connection_id}{tail}"


MY_CONNECTIONS = f"{API}/users/me/connections"
MY_VCARDS = f"{API}/users/me/connections.vcf"


async def member(
    session: AsyncSession, event: Event, user: User, *, checked_in: bool = True
) -> Registration:
    """A CONFIRMED registrant of `event` in its directory, checked in unless told."""
    registration = await register(session, event, user)
    if checked_in:
        registration.checked_in_at = clock.now()
        session.add(registration)
    session.add(DirectoryMember(event_id=event.id, user_id=user.id))
    await session.flush()
    return registration


async def connect(
    session: AsyncSession,
    event: Event,
    requester: User,
    addressee: User,
    *,
    accepted: bool = False,
) -> Connection:
    """A request from `requester` to `addressee` made at `event`, accepted when told."""
    connection = Connection(event_id=event.id, requester_id=requester.id, addressee_id=addressee.id)
    if accepted:
        connection.status, connection.accepted_at = ConnectionStatus.ACCEPTED, clock.now()
    session.add(connection)
    await session.flush()
    return connection


def public_profile(user: User) -> dict[str, Any]:
    """A user's public profile as API.md lists it."""
    return {field: getattr(user, field) for field in PUBLIC_FIELDS} | {"id": str(user.id)}
