"""The machinery of the access-control matrix: a fresh target for every operation of EXPECTED
(an event of another manager in the status the operation needs, a registration, a connection,
a webhook...), a valid body, every caller's call on it and on an unknown id, the status each call
must get, and what the AC-2 scan of the answers needs."""

import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from secrets import token_urlsafe
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.events.models import Event, EventStatus
from api.feeds import service as feed_service
from api.networking.models import Connection, ConnectionStatus
from api.notifications.models import Notification, NotificationKind
from api.outbox.models import DomainEventType
from api.registrations.models import Registration, RegistrationStatus
from api.tokens.models import ApiToken, Scope
from api.users.models import User, UserRole
from api.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery, new_secret
from tests.access_control.callers import ANONYMOUS, CALLER_ROLES, CALLERS
from tests.access_control.expected import EXPECTED
from tests.factories import (
    DEFAULT_PASSWORD,
    create_event,
    create_series,
    create_user,
    event_body,
    register,
    token_headers,
)
from tests.networking.helpers import connect, member

# The status an event (or series) operation needs; the rest act on a PUBLISHED one.
EVENT_STATUS_FOR = {
    ("DELETE", "/api/v1/events/{event_id}"): EventStatus.PENDING,
    ("POST", "/api/v1/events/{event_id}/approve"): EventStatus.PENDING,
    ("POST", "/api/v1/events/{event_id}/reject"): EventStatus.PENDING,
    ("POST", "/api/v1/events/{event_id}/submit"): EventStatus.REJECTED,
    ("DELETE", "/api/v1/series/{series_id}"): EventStatus.PENDING,
    ("POST", "/api/v1/series/{series_id}/approve"): EventStatus.PENDING,
    ("POST", "/api/v1/series/{series_id}/reject"): EventStatus.PENDING,
    ("POST", "/api/v1/series/{series_id}/submit"): EventStatus.REJECTED,
}
# Where a 403 comes from the caller's role, checked before the target is looked up: it stays 403
# for an unknown id. Elsewhere a 403 is about the target (not its creator), and an unknown id 404.
ROLE_GATED_PREFIXES = (
    "/api/v1/users",
    "/api/v1/profiles",
    "/api/v1/webhooks",
    "/api/v1/testing",
)
ROLE_GATED = {
    ("POST", "/api/v1/events/{event_id}/approve"),
    ("POST", "/api/v1/events/{event_id}/reject"),
    ("POST", "/api/v1/series/{series_id}/approve"),
    ("POST", "/api/v1/series/{series_id}/reject"),
    ("POST", "/api/v1/events/{event_id}/registrations"),
}

CONNECT = ("POST", "/api/v1/events/{event_id}/connections")
# Minimal valid bodies; POST /users gets a fresh email per call.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/api/v1/users/me"): {"bio": "access control"},
    ("PATCH", "/api/v1/users/{user_id}"): {"bio": "access control"},
    ("PUT", "/api/v1/users/{user_id}/role"): {"role": "MANAGER", "reason": "access control"},
    ("PUT", "/api/v1/users/{user_id}/professional"): {"is_professional": True},
    ("PATCH", "/api/v1/events/{event_id}"): {"title": "Access control"},
    ("POST", "/api/v1/events/{event_id}/reject"): {"feedback": "Access control"},
    ("POST", "/api/v1/events/{event_id}/cancel"): {"reason": "Access control"},
    ("POST", "/api/v1/series/{series_id}/reject"): {"feedback": "Access control"},
    ("POST", "/api/v1/series/{series_id}/cancel"): {"reason": "Access control"},
    ("PATCH", "/api/v1/users/me/notification-preferences"): {"EVENT_APPROVED": {"email": False}},
    ("POST", "/api/v1/users/me/api-tokens"): {"name": "access control", "scopes": ["events:read"]},
    ("POST", "/api/v1/webhooks"): {
        "url": "http://127.0.0.1:9/access-control",
        "event_types": ["event.published"],
    },
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"description": "access control"},
    # Of no member (the target is unknown); a real target's body is in Run.bodies.
    CONNECT: {"user_id": str(uuid.UUID(int=1))},
}

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
LOGIN = ("POST", "/api/v1/auth/login")
CHECK_IN_BY_CODE = ("POST", "/api/v1/events/{event_id}/check-in")


def fresh_email() -> str:
    return f"ac-{uuid.uuid4().hex[:12]}@example.com"


LEAKING_KEYS = (
    "hashed_password",
    "failed_login_count",
    "locked_until",
    "reset_mail",
    "$argon2",
    "token_hash",
    # A webhook signing secret: shown only in the answers that create or rotate it (PRIV-1).
    "whsec_",
)


def documented_operations(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


@dataclass(frozen=True)
class Account:
    """What a test needs of a user, read before any request can expire the ORM object."""

    id: uuid.UUID
    email: str
    nickname: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str | None:
        authorization = self.headers.get("Authorization")
        return authorization.removeprefix("Bearer ") if authorization else None


@dataclass(frozen=True)
class Call:
    operation: tuple[str, str]
    caller: str
    actor: Account | None
    unknown_target: bool
    response: httpx.Response


@dataclass
class Run:
    calls: list[Call] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    # path -> the check-in code its request sends (POST /events/{event_id}/check-in).
    codes: dict[str, str] = field(default_factory=dict)
    # path -> the body its request sends, where it names the target (POST .../connections).
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def body(self, operation: tuple[str, str], path: str) -> dict[str, Any] | None:
        return self.bodies.get(path) or body_for(operation, self.codes.get(path))


async def new_account(session: AsyncSession, run: Run, role: UserRole) -> Account:
    """A user with a live token (targets too: their tokens must not leak either)."""
    user: User = await create_user(session, role=role)
    headers = await token_headers(session, user)
    account = Account(id=user.id, email=user.email, nickname=user.nickname, headers=headers)
    run.accounts.append(account)
    return account


async def event_path(
    session: AsyncSession, run: Run, operation: tuple[str, str], actor: Account | None
) -> str:
    """The path of an event operation on a fresh event of another manager."""
    owner = await new_account(session, run, UserRole.MANAGER)
    creator = await session.get(User, owner.id)
    assert creator is not None
    status = EVENT_STATUS_FOR.get(operation, EventStatus.PUBLISHED)
    event = await create_event(session, owner=creator, status=status)
    path = operation[1].replace("{event_id}", str(event.id))
    if operation[1].endswith(("/directory/me", "/connections")) and actor is not None:
        await networking_target(session, run, operation, event, actor, path)
    if "/registrations/me" in operation[1] and actor is not None:
        registrant = await session.get(User, actor.id)
        assert registrant is not None
        answers_offer = operation[1].endswith(("/accept", "/decline"))
        await register(
            session, event, registrant, RegistrationStatus.OFFERED if answers_offer else None
        )
    if "{registration_id}" in path or operation == CHECK_IN_BY_CODE:
        attendee = await new_account(session, run, UserRole.AUTHENTICATED)
        registrant = await session.get(User, attendee.id)
        assert registrant is not None
        registration = await register(session, event, registrant)
        path = path.replace("{registration_id}", str(registration.id))
        if operation == CHECK_IN_BY_CODE:
            assert registration.checkin_code is not None
            run.codes[path] = registration.checkin_code
    return path


async def networking_target(
    session: AsyncSession,
    run: Run,
    operation: tuple[str, str],
    event: Event,
    actor: Account,
    path: str,
) -> None:
    """The caller a CONFIRMED registrant of the event (PUT, DELETE directory/me); for a request,
    a checked-in member, and another one to ask."""
    caller = await session.get(User, actor.id)
    assert caller is not None
    if operation != CONNECT:
        await register(session, event, caller)
        return
    other = await session.get(User, (await new_account(session, run, UserRole.AUTHENTICATED)).id)
    assert other is not None
    await member(session, event, caller)
    await member(session, event, other)
    run.bodies[path] = {"user_id": str(other.id)}


async def connection_path(
    session: AsyncSession, run: Run, template: str, actor: Account | None
) -> str:
    """The path on a request made to the caller (to a new user for an anonymous caller) by a
    new user, at an event of another manager."""
    owner = await session.get(User, (await new_account(session, run, UserRole.MANAGER)).id)
    requester = await session.get(
        User, (await new_account(session, run, UserRole.AUTHENTICATED)).id
    )
    addressee = await session.get(
        User, (actor or await new_account(session, run, UserRole.AUTHENTICATED)).id
    )
    assert owner is not None
    assert requester is not None
    assert addressee is not None
    event = await create_event(session, owner=owner)
    connection = await connect(session, event, requester, addressee)
    return template.replace("{connection_id}", str(connection.id))


async def contacts_path(session: AsyncSession, run: Run, template: str, actor: Account) -> str:
    """The caller with one contact (an ACCEPTED connection), so that the vCards are not empty."""
    owner = await session.get(User, (await new_account(session, run, UserRole.MANAGER)).id)
    contact = await session.get(User, (await new_account(session, run, UserRole.AUTHENTICATED)).id)
    caller = await session.get(User, actor.id)
    assert owner is not None
    assert contact is not None
    assert caller is not None
    await connect(session, await create_event(session, owner=owner), contact, caller, accepted=True)
    return template


async def series_path(session: AsyncSession, run: Run, operation: tuple[str, str]) -> str:
    """The path of a series operation on a fresh series of another manager."""
    creator = await session.get(User, (await new_account(session, run, UserRole.MANAGER)).id)
    assert creator is not None
    status = EVENT_STATUS_FOR.get(operation, EventStatus.PUBLISHED)
    series, _ = await create_series(session, owner=creator, status=status)
    return operation[1].replace("{series_id}", str(series.id))


async def own_registration_path(
    session: AsyncSession, run: Run, operation: tuple[str, str], actor: Account | None
) -> str:
    """The path of an operation on a CONFIRMED registration of the caller (of a new user for an
    anonymous caller), for an event of another manager."""
    owner = await session.get(User, (await new_account(session, run, UserRole.MANAGER)).id)
    holder = actor or await new_account(session, run, UserRole.AUTHENTICATED)
    registrant = await session.get(User, holder.id)
    assert owner is not None
    assert registrant is not None
    event = await create_event(session, owner=owner)
    registration = await register(session, event, registrant)
    return operation[1].replace("{registration_id}", str(registration.id))


async def target_path(
    session: AsyncSession,
    run: Run,
    operation: tuple[str, str],
    actor: Account | None,
    *,
    unknown: bool,
) -> str:
    template = operation[1]
    if unknown:
        path = template.replace("{nickname}", f"nobody_{uuid.uuid4().hex}")
        for name in (
            "{user_id}",
            "{event_id}",
            "{series_id}",
            "{registration_id}",
            "{notification_id}",
            "{token_id}",
            "{webhook_id}",
            "{delivery_id}",
            "{connection_id}",
        ):
            path = path.replace(name, str(uuid.uuid4()))
        path = path.replace("{name}", "no_such_job")
        return path.replace("{feed_token}", token_urlsafe(24))
    if "{event_id}" in template:
        return await event_path(session, run, operation, actor)
    if "{series_id}" in template:
        return await series_path(session, run, operation)
    if "{registration_id}" in template:
        return await own_registration_path(session, run, operation, actor)
    if "{notification_id}" in template:
        owner = actor.id if actor else (await new_account(session, run, UserRole.AUTHENTICATED)).id
        notification = Notification(
            user_id=owner, kind=NotificationKind.ROLE_CHANGED, title="Access", body="control"
        )
        session.add(notification)
        await session.flush()
        return template.replace("{notification_id}", str(notification.id))
    if "{feed_token}" in template:
        # The feed of another user, opened by its URL.
        holder = await new_account(session, run, UserRole.AUTHENTICATED)
        feed = await feed_service.get_feed(session, user_id=holder.id)
        return feed.url.removeprefix(settings.PUBLIC_BASE_URL)
    if "{webhook_id}" in template:
        keeper = await new_account(session, run, UserRole.MANAGER)
        return await webhook_path(session, template, keeper.id)
    if "{name}" in template:
        return template.replace("{name}", "send_event_reminders")
    if "{connection_id}" in template:
        return await connection_path(session, run, template, actor)
    if template == CONTACTS and actor is not None:
        return await contacts_path(session, run, template, actor)
    if "{token_id}" in template:
        holder = actor or await new_account(session, run, UserRole.AUTHENTICATED)
        token_id = await api_token_of(session, holder.id)
        return template.replace("{token_id}", str(token_id))
    if "{" not in template:
        return template
    target = await new_account(session, run, UserRole.AUTHENTICATED)
    return template.replace("{user_id}", str(target.id)).replace("{nickname}", target.nickname)


async def webhook_path(session: AsyncSession, template: str, owner_id: uuid.UUID) -> str:
    """The path on a new webhook of `owner_id`, with a delivery that has finished."""
    webhook = Webhook(
        owner_id=owner_id,
        url="http://127.0.0.1:9/access-control",
        event_types=[DomainEventType.EVENT_PUBLISHED],
        secret=new_secret(),
    )
    session.add(webhook)
    await session.flush()
    path = template.replace("{webhook_id}", str(webhook.id))
    if "{delivery_id}" in template:
        delivery = WebhookDelivery(
            webhook_id=webhook.id,
            event_id=-int(uuid.uuid4().int % 1_000_000_000),
            event_type=DomainEventType.EVENT_PUBLISHED,
            status=DeliveryStatus.SUCCEEDED,
            payload={"id": 0, "type": "event.published", "occurred_at": None, "data": {}},
        )
        session.add(delivery)
        await session.flush()
        path = path.replace("{delivery_id}", str(delivery.id))
    return path


async def api_token_of(session: AsyncSession, user_id: uuid.UUID) -> uuid.UUID:
    """The id of a new API token of the user (its value is never used)."""
    api_token = ApiToken(
        user_id=user_id,
        name="target",
        scopes=[Scope.EVENTS_READ],
        expires_at=clock.now() + timedelta(days=1),
        token_hash=uuid.uuid4().hex,
        token_prefix="em_pat_xxxxx",
    )
    session.add(api_token)
    await session.flush()
    return api_token.id


def body_for(operation: tuple[str, str], code: str | None = None) -> dict[str, Any] | None:
    """A valid body; `code` is the check-in code for POST /events/{event_id}/check-in (a code of
    no registration when None: the target is unknown)."""
    if operation == CHECK_IN_BY_CODE:
        return {"code": code or "0000000000"}
    fresh = fresh_email()
    if operation in {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/request-verify-token"),
        ("POST", "/api/v1/auth/forgot-password"),
    }:
        return {"email": fresh, "password": DEFAULT_PASSWORD}
    if operation == ("POST", "/api/v1/auth/verify"):
        return {"token": "not-a-token"}
    if operation == ("POST", "/api/v1/auth/reset-password"):
        return {"token": "not-a-token", "password": DEFAULT_PASSWORD}
    if operation == ("POST", "/api/v1/users"):
        return {"email": f"ac-{uuid.uuid4().hex[:12]}@example.com", "password": DEFAULT_PASSWORD}
    if operation == ("POST", "/api/v1/events"):
        return event_body()
    if operation == ("POST", "/api/v1/series"):
        return event_body(rrule="FREQ=WEEKLY;COUNT=2")
    if operation == ("PUT", "/api/v1/testing/clock"):
        return {"now": clock.now().isoformat()}
    return BODIES.get(operation)


# The matrix makes hundreds of accounts and targets in its one transaction, which the committed
# statistics of a fresh database know nothing of: planned as if "user" were empty, each token
# lookup walks every user. ANALYZE counts the transaction's own rows, and the planner scales the
# estimate as the tables grow after it.
ANALYZE_AFTER = frozenset({2, 10, 40})


async def analyze_own_rows(session: AsyncSession) -> None:
    await session.execute(text('ANALYZE "user", accesstoken, event, registration'))


async def run_matrix(client: httpx.AsyncClient, session: AsyncSession) -> Run:
    """Every operation of EXPECTED as every caller, on a fresh target, then on an unknown id."""
    run = Run()
    # Keeps an admin in place when the admin callers leave or are demoted.
    await new_account(session, run, UserRole.ADMIN)
    for number, operation in enumerate(EXPECTED):
        if number in ANALYZE_AFTER:
            await analyze_own_rows(session)
        for caller in CALLERS:
            for unknown_target in (False, True):
                if unknown_target and "{" not in operation[1]:
                    continue
                actor = (
                    None
                    if caller == ANONYMOUS
                    else await new_account(session, run, CALLER_ROLES[caller])
                )
                path = await target_path(session, run, operation, actor, unknown=unknown_target)
                body = run.body(operation, path)
                response = await client.request(
                    operation[0],
                    path,
                    headers=actor.headers if actor else {},
                    # The login is a form (OAuth2 password flow): a wrong password.
                    **(
                        {"data": {"username": fresh_email(), "password": DEFAULT_PASSWORD}}
                        if operation == LOGIN
                        else {"json": body}
                    ),
                )
                run.calls.append(Call(operation, caller, actor, unknown_target, response))
    return run


def expected_status(item: Call) -> int:
    """An unknown id is 404, except where the caller is turned away before any lookup."""
    status = EXPECTED[item.operation][item.caller]
    if not item.unknown_target or status == 401:
        return status
    role_gated = item.operation in ROLE_GATED or item.operation[1].startswith(ROLE_GATED_PREFIXES)
    if status == 403 and role_gated:
        return status
    return 404


CALENDAR = ("GET", "/api/v1/events/{event_id}/calendar.ics")
CONTACTS = "/api/v1/users/me/connections.vcf"
OWN_REGISTRATION = ("GET", "/api/v1/users/me/registrations/{registration_id}")
TICKET = ("GET", "/api/v1/users/me/registrations/{registration_id}/ticket.png")
STATS_CHART = ("GET", "/api/v1/events/{event_id}/stats.png")
CALENDAR_FEED = ("GET", "/api/v1/calendar/{feed_token}.ics")
# The two answers that show a feed URL (and so its token) to its owner.
FEED_URL_ANSWERS = {
    ("GET", "/api/v1/users/me/calendar-feed"),
    ("POST", "/api/v1/users/me/calendar-feed/rotate"),
}
# The answers that show a webhook's signing secret (PRIV-1): its creation and its rotation.
SHOWS_WEBHOOK_SECRET = {
    (("POST", "/api/v1/webhooks"), 201),
    (("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"), 200),
}


def shows_webhook_secret(item: "Call") -> bool:
    return (item.operation, item.response.status_code) in SHOWS_WEBHOOK_SECRET


CREATE_API_TOKEN = ("POST", "/api/v1/users/me/api-tokens")


FEED_URL = re.compile(r"/api/v1/calendar/([A-Za-z0-9_-]{32})\.ics")


def feed_token_of(url: str) -> str:
    match = FEED_URL.search(url)
    assert match is not None, url
    return match.group(1)


def content_type(item: Call) -> str:
    if item.operation in (CALENDAR, CALENDAR_FEED) and item.response.status_code == 200:
        return "text/calendar; charset=utf-8"
    if item.operation in (TICKET, STATS_CHART) and item.response.status_code == 200:
        return "image/png"
    if item.operation == ("GET", CONTACTS) and item.response.status_code == 200:
        return "text/vcard; charset=utf-8"
    return "application/json"


async def checkin_codes(session: AsyncSession) -> list[tuple[uuid.UUID, str]]:
    """(registrant, code) of every registration holding a check-in code."""
    rows = await session.execute(
        select(col(Registration.user_id), col(Registration.checkin_code)).where(
            col(Registration.checkin_code).is_not(None)
        )
    )
    return [(user_id, code) for user_id, code in rows]


async def accepted_contacts(session: AsyncSession) -> dict[uuid.UUID, set[uuid.UUID]]:
    """user -> the users it is connected with (ACCEPTED, either way)."""
    rows = await session.execute(
        select(col(Connection.requester_id), col(Connection.addressee_id)).where(
            col(Connection.status) == ConnectionStatus.ACCEPTED
        )
    )
    contacts: dict[uuid.UUID, set[uuid.UUID]] = {}
    for requester, addressee in rows:
        contacts.setdefault(requester, set()).add(addressee)
        contacts.setdefault(addressee, set()).add(requester)
    return contacts
