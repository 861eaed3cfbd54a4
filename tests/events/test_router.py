"""The Events section of API.md: create, read, edit, delete, the review workflow, cancellation
and the calendar export (listing and registrations are tested elsewhere)."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.audit.models import AuditAction, AuditLog
from api.events.models import Event, EventStatus
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, event_body, event_view, queued_mail, register

API = "/api/v1/events"
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
FORBIDDEN = {"detail": "FORBIDDEN"}
EVENT_NOT_FOUND = {"detail": "EVENT_NOT_FOUND"}
NOT_MANAGER_OF_EVENT = {
    "detail": {"code": "NOT_EVENT_OWNER", "reason": "Only the event's creator or an admin may"}
}
NOT_CREATOR = {"detail": {"code": "NOT_EVENT_OWNER", "reason": "Only the event's creator may"}}
CANNOT_REVIEW_OWN = {
    "detail": {
        "code": "CANNOT_REVIEW_OWN_EVENT",
        "reason": "Another manager or an admin must review this event",
    }
}
CANCELLED_NOT_EDITABLE = {
    "detail": {"code": "INVALID_EVENT_TRANSITION", "reason": "A cancelled event cannot be edited"}
}
DATETIME_FIELDS = (
    "starts_at",
    "ends_at",
    "registration_deadline",
    "created_at",
    "updated_at",
    "published_at",
    "cancelled_at",
)
FEEDBACK = "Please add an agenda and say who the speakers are."

Headers = dict[str, str]
AuthAs = Callable[[User], Awaitable[Headers]]


# --- helpers ----------------------------------------------------------------------------------


def transition_error(source: EventStatus | str, target: EventStatus | str) -> dict[str, Any]:
    return {
        "detail": {
            "code": "INVALID_EVENT_TRANSITION",
            "reason": f"An event cannot go from {source} to {target}",
        }
    }


def not_deletable(status: EventStatus | str) -> dict[str, Any]:
    return {
        "detail": {
            "code": "INVALID_EVENT_TRANSITION",
            "reason": f"A {status} event cannot be deleted; cancel it instead",
        }
    }


def parsed(body: dict[str, Any]) -> dict[str, Any]:
    """An event body with its datetimes parsed, to compare with event_view."""
    return {
        key: datetime.fromisoformat(value) if key in DATETIME_FIELDS and value else value
        for key, value in body.items()
    }


def iso(value: datetime) -> str:
    return value.isoformat()


def validation_errors(response: httpx.Response) -> list[tuple[str, list[str | int]]]:
    assert response.status_code == 422, response.text
    return [(error["type"], error["loc"]) for error in response.json()["detail"]]


async def db_event(session: AsyncSession, event_id: uuid.UUID | str) -> Event | None:
    """The event row as the database holds it now (None when gone)."""
    statement = (
        select(Event)
        .where(col(Event.id) == uuid.UUID(str(event_id)))
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).first()


async def event_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Event)) or 0)


async def db_registration(session: AsyncSession, registration: Registration) -> Registration:
    statement = (
        select(Registration)
        .where(col(Registration.id) == registration.id)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).one()


async def audit_entries(session: AsyncSession, target_id: uuid.UUID) -> list[dict[str, Any]]:
    statement = (
        select(AuditLog)
        .where(col(AuditLog.target_id) == target_id)
        .order_by(col(AuditLog.at))
        .execution_options(populate_existing=True)
    )
    return [
        {
            "actor_id": entry.actor_id,
            "action": entry.action,
            "target_type": entry.target_type,
            "target_id": entry.target_id,
            "before": entry.before,
            "after": entry.after,
            "reason": entry.reason,
        }
        for entry in (await session.scalars(statement)).all()
    ]


async def mail_summary(session: AsyncSession) -> list[tuple[str, str]]:
    """(recipient, subject) of every queued mail, sorted."""
    return sorted((mail.to, mail.subject) for mail in await queued_mail(session))


async def people(session: AsyncSession, n: int) -> list[User]:
    return [await create_user(session) for _ in range(n)]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The service clock, frozen at the current second."""
    frozen = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(clock, "now", lambda: frozen)
    return frozen


@pytest.fixture
async def other_manager(session: AsyncSession) -> User:
    return await create_user(session, role=UserRole.MANAGER)


async def event_with_status(session: AsyncSession, owner: User, status: EventStatus) -> Event:
    fields: dict[str, Any] = {}
    if status is EventStatus.REJECTED:
        fields = {"review_feedback": FEEDBACK}
    if status is EventStatus.CANCELLED:
        fields = {"cancelled_at": clock.now()}
    return await create_event(session, owner=owner, status=status, **fields)


# --- POST /events -----------------------------------------------------------------------------


class TestCreateEvent:
    async def test_anonymous_401(self, client, session):
        response = await client.post(API, json=event_body())

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await event_count(session) == 0

    async def test_unverified_403(self, client, session, unverified_user, auth_as):
        response = await client.post(API, json=event_body(), headers=await auth_as(unverified_user))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        assert await event_count(session) == 0

    async def test_user_403(self, client, session, user, auth_as):
        response = await client.post(API, json=event_body(), headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        assert await event_count(session) == 0

    async def test_manager_201(self, client, session, manager, auth_as, now):
        body = event_body(tags=[" Career ", "career", "INTERVIEWS"], requirements="A laptop")

        response = await client.post(API, json=body, headers=await auth_as(manager))

        assert response.status_code == 201
        created = response.json()
        assert parsed(created) == {
            "id": created["id"],
            "title": body["title"],
            "description": body["description"],
            "event_type": "MOCK_INTERVIEW",
            "starts_at": datetime.fromisoformat(body["starts_at"]),
            "ends_at": datetime.fromisoformat(body["ends_at"]),
            "timezone": "Europe/Berlin",
            "location": "ACME HQ, Berlin",
            "online_url": None,
            "capacity": 20,
            "registration_deadline": None,
            "requirements": "A laptop",
            "tags": ["career", "interviews"],
            "waitlist_mode": "AUTO",
            "offer_hours": 12,
            "status": "PENDING",
            "created_by": str(manager.id),
            "reviewed_by": None,
            "review_feedback": None,
            "cancellation_reason": None,
            "series_id": None,
            "registered_count": 0,
            "waitlist_count": 0,
            "offered_count": 0,
            "spots_left": 20,
            "created_at": now,
            "updated_at": now,
            "published_at": None,
            "cancelled_at": None,
        }
        stored = await db_event(session, created["id"])
        assert stored is not None
        assert parsed(created) == event_view(stored)

    async def test_unlimited_capacity_has_no_spots_left(self, client, session, manager, auth_as):
        response = await client.post(
            API, json=event_body(capacity=None), headers=await auth_as(manager)
        )

        assert response.status_code == 201
        assert (response.json()["capacity"], response.json()["spots_left"]) == (None, None)
        stored = await db_event(session, response.json()["id"])
        assert stored is not None
        assert stored.capacity is None

    async def test_online_only_201(self, client, session, manager, auth_as):
        body = event_body(location=None, online_url="https://meet.example.com/abc")

        response = await client.post(API, json=body, headers=await auth_as(manager))

        assert response.status_code == 201
        stored = await db_event(session, response.json()["id"])
        assert stored is not None
        assert (stored.location, stored.online_url) == (None, "https://meet.example.com/abc")

    async def test_admin_201(self, client, session, admin, auth_as):
        response = await client.post(API, json=event_body(), headers=await auth_as(admin))

        assert response.status_code == 201
        assert (response.json()["status"], response.json()["created_by"]) == (
            "PENDING",
            str(admin.id),
        )
        stored = await db_event(session, response.json()["id"])
        assert stored is not None
        assert (stored.status, stored.created_by) == (EventStatus.PENDING, admin.id)

    @pytest.mark.usefixtures("user")
    async def test_other_active_staff_are_mailed(
        self, client, session, manager, other_manager, admin, auth_as
    ):
        await create_user(session, role=UserRole.MANAGER, is_active=False)
        body = event_body(title="Guest lecture on compilers")

        response = await client.post(API, json=body, headers=await auth_as(manager))

        assert response.status_code == 201
        subject = "Event awaiting approval: Guest lecture on compilers"
        assert await mail_summary(session) == sorted(
            [(other_manager.email, subject), (admin.email, subject)]
        )
        mail = (await queued_mail(session))[0]
        assert f"http://testserver/api/v1/events/{response.json()['id']}" in mail.text

    async def test_admin_creator_is_not_mailed(self, client, session, manager, admin, auth_as):
        response = await client.post(
            API, json=event_body(title="Admin event"), headers=await auth_as(admin)
        )

        assert response.status_code == 201
        assert await mail_summary(session) == [
            (manager.email, "Event awaiting approval: Admin event")
        ]

    @pytest.mark.parametrize(
        ("overrides", "error"),
        [
            pytest.param(
                {"title": "ab"}, ("string_too_short", ["body", "title"]), id="title-short"
            ),
            pytest.param(
                {"title": "x" * 201}, ("string_too_long", ["body", "title"]), id="title-long"
            ),
            pytest.param(
                {"starts_at": "2099-01-01T10:00:00", "ends_at": "2099-01-01T12:00:00+00:00"},
                ("timezone_aware", ["body", "starts_at"]),
                id="naive-datetime",
            ),
            pytest.param(
                {"starts_at": "2099-01-01T10:00:00+00:00", "ends_at": "2099-01-01T09:00:00+00:00"},
                ("value_error", ["body", "ends_at"]),
                id="ends-before-starts",
            ),
            pytest.param(
                {"starts_at": "2099-01-01T10:00:00+00:00", "ends_at": "2099-01-01T10:00:00+00:00"},
                ("value_error", ["body", "ends_at"]),
                id="ends-when-starts",
            ),
            pytest.param(
                {"starts_at": "2020-01-01T10:00:00+00:00", "ends_at": "2020-01-01T12:00:00+00:00"},
                ("value_error", ["body", "starts_at"]),
                id="starts-in-the-past",
            ),
            pytest.param(
                {"location": None, "online_url": None},
                ("value_error", ["body", "location"]),
                id="no-location-no-url",
            ),
            pytest.param(
                {"online_url": "ftp://files.example.com/event"},
                ("value_error", ["body", "online_url"]),
                id="ftp-url",
            ),
            pytest.param(
                {"capacity": 0}, ("greater_than_equal", ["body", "capacity"]), id="capacity-0"
            ),
            pytest.param(
                {"capacity": 100_001},
                ("less_than_equal", ["body", "capacity"]),
                id="capacity-100001",
            ),
            pytest.param(
                {
                    "starts_at": "2099-01-01T10:00:00+00:00",
                    "ends_at": "2099-01-01T12:00:00+00:00",
                    "registration_deadline": "2099-01-01T10:00:01+00:00",
                },
                ("value_error", ["body", "registration_deadline"]),
                id="deadline-after-start",
            ),
            pytest.param(
                {"tags": [f"tag{i}" for i in range(11)]},
                ("too_long", ["body", "tags"]),
                id="11-tags",
            ),
            pytest.param(
                {"tags": ["ok", "t" * 31]},
                ("string_too_long", ["body", "tags", 1]),
                id="tag-31-chars",
            ),
            pytest.param(
                {"timezone": "Mars/Olympus"},
                ("value_error", ["body", "timezone"]),
                id="bad-timezone",
            ),
            pytest.param(
                {"description": "d" * 10_001},
                ("string_too_long", ["body", "description"]),
                id="description-10001",
            ),
            pytest.param(
                {"requirements": "r" * 2001},
                ("string_too_long", ["body", "requirements"]),
                id="requirements-2001",
            ),
            pytest.param(
                {"event_type": "PARTY"}, ("enum", ["body", "event_type"]), id="unknown-event-type"
            ),
        ],
    )
    @pytest.mark.usefixtures("admin")
    async def test_invalid_422(self, client, session, manager, auth_as, overrides, error):
        response = await client.post(
            API, json=event_body(**overrides), headers=await auth_as(manager)
        )

        assert validation_errors(response) == [error]
        assert await event_count(session) == 0
        assert await queued_mail(session) == []

    async def test_boundaries_201(self, client, session, manager, auth_as):
        body = event_body(
            title="abc",
            capacity=100_000,
            tags=[f"tag{i}" for i in range(9)] + ["t" * 30],
            description="d" * 10_000,
            requirements="r" * 2000,
            timezone="America/Argentina/Buenos_Aires",
            starts_at="2099-01-01T10:00:00+00:00",
            ends_at="2099-01-01T12:00:00+00:00",
            registration_deadline="2099-01-01T10:00:00+00:00",
        )

        response = await client.post(API, json=body, headers=await auth_as(manager))

        assert response.status_code == 201
        assert await event_count(session) == 1


# --- GET /events/{id} -------------------------------------------------------------------------


HIDDEN_STATUSES = [EventStatus.PENDING, EventStatus.REJECTED, EventStatus.CANCELLED]


class TestGetEvent:
    async def test_published_anonymous_200(self, client, event):
        response = await client.get(f"{API}/{event.id}")

        assert response.status_code == 200
        assert parsed(response.json()) == event_view(event)

    async def test_published_user_200(self, client, event, user, auth_as):
        response = await client.get(f"{API}/{event.id}", headers=await auth_as(user))

        assert response.status_code == 200
        assert parsed(response.json()) == event_view(event)

    @pytest.mark.parametrize("status", HIDDEN_STATUSES)
    @pytest.mark.security("AC-3")
    async def test_hidden_anonymous_404(self, client, session, manager, status):
        hidden = await event_with_status(session, manager, status)

        response = await client.get(f"{API}/{hidden.id}")

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    @pytest.mark.parametrize("status", HIDDEN_STATUSES)
    @pytest.mark.security("AC-3")
    async def test_hidden_user_404(self, client, session, manager, user, auth_as, status):
        hidden = await event_with_status(session, manager, status)

        response = await client.get(f"{API}/{hidden.id}", headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    @pytest.mark.parametrize("status", HIDDEN_STATUSES)
    async def test_hidden_creator_200(self, client, session, manager, auth_as, status):
        hidden = await event_with_status(session, manager, status)

        response = await client.get(f"{API}/{hidden.id}", headers=await auth_as(manager))

        assert response.status_code == 200
        assert parsed(response.json()) == event_view(hidden)

    @pytest.mark.parametrize("status", HIDDEN_STATUSES)
    async def test_hidden_other_manager_200(
        self, client, session, manager, other_manager, auth_as, status
    ):
        hidden = await event_with_status(session, manager, status)

        response = await client.get(f"{API}/{hidden.id}", headers=await auth_as(other_manager))

        assert response.status_code == 200
        assert parsed(response.json()) == event_view(hidden)

    @pytest.mark.parametrize("status", HIDDEN_STATUSES)
    async def test_hidden_admin_200(self, client, session, manager, admin, auth_as, status):
        hidden = await event_with_status(session, manager, status)

        response = await client.get(f"{API}/{hidden.id}", headers=await auth_as(admin))

        assert response.status_code == 200
        assert parsed(response.json()) == event_view(hidden)

    async def test_hidden_creator_now_a_plain_user_200(self, client, session, user, auth_as):
        # A former manager, now a plain user, still sees the events they created.
        hidden = await event_with_status(session, user, EventStatus.PENDING)

        response = await client.get(f"{API}/{hidden.id}", headers=await auth_as(user))

        assert response.status_code == 200
        assert response.json()["id"] == str(hidden.id)

    async def test_unknown_404(self, client, admin, auth_as):
        response = await client.get(f"{API}/{uuid.uuid4()}", headers=await auth_as(admin))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_malformed_id_422(self, client):
        response = await client.get(f"{API}/not-a-uuid")

        assert validation_errors(response) == [("uuid_parsing", ["path", "event_id"])]


# --- PATCH /events/{id} -----------------------------------------------------------------------


class TestUpdateEvent:
    async def test_creator_200(self, client, session, pending_event, manager, auth_as, now):
        response = await client.patch(
            f"{API}/{pending_event.id}",
            json={"title": "  Renamed workshop ", "capacity": 15, "tags": [" AI ", "ai", "ML"]},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert (stored.title, stored.capacity, stored.tags, stored.updated_at) == (
            "Renamed workshop",
            15,
            ["ai", "ml"],
            now,
        )
        assert parsed(response.json()) == event_view(stored)
        assert response.json()["spots_left"] == 15

    async def test_admin_200(self, client, session, event, admin, auth_as):
        response = await client.patch(
            f"{API}/{event.id}",
            json={"description": "Bring a laptop."},
            headers=await auth_as(admin),
        )

        assert response.status_code == 200
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.description == "Bring a laptop."
        assert parsed(response.json()) == event_view(stored)

    async def test_other_manager_403(self, client, session, event, other_manager, auth_as):
        title = event.title

        response = await client.patch(
            f"{API}/{event.id}", json={"title": "Hijacked"}, headers=await auth_as(other_manager)
        )

        assert response.status_code == 403
        assert response.json() == NOT_MANAGER_OF_EVENT
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.title == title

    async def test_user_on_pending_404(self, client, session, pending_event, user, auth_as):
        title = pending_event.title

        response = await client.patch(
            f"{API}/{pending_event.id}", json={"title": "Hijacked"}, headers=await auth_as(user)
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert stored.title == title

    async def test_user_on_published_403(self, client, session, event, user, auth_as):
        title = event.title

        response = await client.patch(
            f"{API}/{event.id}", json={"title": "Hijacked"}, headers=await auth_as(user)
        )

        assert response.status_code == 403
        assert response.json() == NOT_MANAGER_OF_EVENT
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.title == title

    async def test_anonymous_401(self, client, event):
        response = await client.patch(f"{API}/{event.id}", json={"title": "Hijacked"})

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"

    async def test_unknown_404(self, client, admin, auth_as):
        response = await client.patch(
            f"{API}/{uuid.uuid4()}", json={"title": "Whatever"}, headers=await auth_as(admin)
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_capacity_below_registered_409(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=5)
        for attendee in await people(session, 3):
            await register(session, event, attendee)

        response = await client.patch(
            f"{API}/{event.id}", json={"capacity": 2}, headers=await auth_as(manager)
        )

        assert response.status_code == 409
        assert response.json() == {
            "detail": {
                "code": "CAPACITY_BELOW_REGISTERED",
                "reason": "3 people are registered; "
                "cancel registrations before lowering the capacity below that",
                "registered_count": 3,
            }
        }
        stored = await db_event(session, event.id)
        assert stored is not None
        assert (stored.capacity, stored.registered_count) == (5, 3)

    async def test_capacity_equal_to_registered_200(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=5)
        for attendee in await people(session, 3):
            await register(session, event, attendee)

        response = await client.patch(
            f"{API}/{event.id}", json={"capacity": 3}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        assert (response.json()["capacity"], response.json()["spots_left"]) == (3, 0)
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.capacity == 3

    async def test_raising_capacity_promotes_waitlist_in_order(
        self, client, session, manager, auth_as
    ):
        event = await create_event(session, owner=manager, capacity=2, title="Small workshop")
        attendees = await people(session, 5)
        registrations = [await register(session, event, attendee) for attendee in attendees]
        assert [r.status for r in registrations] == [RegistrationStatus.CONFIRMED] * 2 + [
            RegistrationStatus.WAITLISTED
        ] * 3

        response = await client.patch(
            f"{API}/{event.id}", json={"capacity": 4}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        body = response.json()
        assert (body["registered_count"], body["waitlist_count"], body["spots_left"]) == (4, 1, 0)
        statuses = [(await db_registration(session, r)).status for r in registrations]
        assert statuses == [RegistrationStatus.CONFIRMED] * 4 + [RegistrationStatus.WAITLISTED]
        stored = await db_event(session, event.id)
        assert stored is not None
        assert (stored.capacity, stored.registered_count, stored.waitlist_count) == (4, 4, 1)
        assert await mail_summary(session) == sorted(
            (attendee.email, "You have a seat: Small workshop") for attendee in attendees[2:4]
        )

    async def test_unlimited_capacity_promotes_everyone(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1, title="Open lecture")
        attendees = await people(session, 3)
        registrations = [await register(session, event, attendee) for attendee in attendees]

        response = await client.patch(
            f"{API}/{event.id}", json={"capacity": None}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        body = response.json()
        assert (body["capacity"], body["spots_left"]) == (None, None)
        assert (body["registered_count"], body["waitlist_count"]) == (3, 0)
        statuses = [(await db_registration(session, r)).status for r in registrations]
        assert statuses == [RegistrationStatus.CONFIRMED] * 3
        assert await mail_summary(session) == sorted(
            (attendee.email, "You have a seat: Open lecture") for attendee in attendees[1:]
        )

    @pytest.mark.parametrize(
        "field", ["location", "starts_at", "online_url", "timezone"], ids=lambda f: f
    )
    async def test_time_or_place_change_mails_live_registrants(
        self, client, session, manager, auth_as, field
    ):
        event = await create_event(session, owner=manager, capacity=1, title="Career fair")
        confirmed, waitlisted, cancelled = await people(session, 3)
        await register(session, event, confirmed)
        await register(session, event, waitlisted)
        await register(session, event, cancelled, status=RegistrationStatus.CANCELLED)
        change = {
            "location": "Room 202",
            "starts_at": iso(event.starts_at + timedelta(hours=1)),
            "online_url": "https://meet.example.com/fair",
            "timezone": "Asia/Tokyo",
        }[field]

        response = await client.patch(
            f"{API}/{event.id}", json={field: change}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        subject = "Event changed: Career fair"
        assert await mail_summary(session) == sorted(
            [(confirmed.email, subject), (waitlisted.email, subject)]
        )

    async def test_location_change_mail_names_new_place(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, title="Career fair")
        attendee = await create_user(session)
        await register(session, event, attendee)

        response = await client.patch(
            f"{API}/{event.id}", json={"location": "Main hall"}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        [mail] = await queued_mail(session)
        assert "at Main hall" in mail.text

    async def test_title_change_mails_nobody(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager)
        await register(session, event, await create_user(session))

        response = await client.patch(
            f"{API}/{event.id}", json={"title": "A better title"}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        assert await queued_mail(session) == []

    async def test_same_location_mails_nobody(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, location="Room 101")
        await register(session, event, await create_user(session))

        response = await client.patch(
            f"{API}/{event.id}", json={"location": "Room 101"}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        assert await queued_mail(session) == []

    async def test_pending_location_change_mails_nobody(
        self, client, session, pending_event, manager, auth_as
    ):
        response = await client.patch(
            f"{API}/{pending_event.id}",
            json={"location": "Elsewhere"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert await queued_mail(session) == []

    async def test_ends_before_existing_start_422(self, client, session, event, manager, auth_as):
        ends_at = event.ends_at

        response = await client.patch(
            f"{API}/{event.id}",
            json={"ends_at": iso(event.starts_at - timedelta(hours=1))},
            headers=await auth_as(manager),
        )

        assert validation_errors(response) == [("value_error", ["body", "ends_at"])]
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.ends_at == ends_at

    async def test_title_null_422(self, client, session, event, manager, auth_as):
        title = event.title

        response = await client.patch(
            f"{API}/{event.id}", json={"title": None}, headers=await auth_as(manager)
        )

        assert validation_errors(response) == [("string_type", ["body", "title"])]
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.title == title

    async def test_starts_in_the_past_422(self, client, session, event, manager, auth_as):
        starts_at = event.starts_at

        response = await client.patch(
            f"{API}/{event.id}",
            json={"starts_at": iso(clock.now() - timedelta(days=1))},
            headers=await auth_as(manager),
        )

        assert validation_errors(response) == [("value_error", ["body", "starts_at"])]
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.starts_at == starts_at

    async def test_removing_the_only_place_422(self, client, session, event, manager, auth_as):
        response = await client.patch(
            f"{API}/{event.id}", json={"location": None}, headers=await auth_as(manager)
        )

        assert validation_errors(response) == [("value_error", ["body", "location"])]
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.location == "Room 101"

    async def test_capacity_0_422(self, client, event, manager, auth_as):
        response = await client.patch(
            f"{API}/{event.id}", json={"capacity": 0}, headers=await auth_as(manager)
        )

        assert validation_errors(response) == [("greater_than_equal", ["body", "capacity"])]

    async def test_cancelled_409(self, client, session, manager, auth_as):
        cancelled = await event_with_status(session, manager, EventStatus.CANCELLED)
        title = cancelled.title

        response = await client.patch(
            f"{API}/{cancelled.id}", json={"title": "Revived"}, headers=await auth_as(manager)
        )

        assert response.status_code == 409
        assert response.json() == CANCELLED_NOT_EDITABLE
        stored = await db_event(session, cancelled.id)
        assert stored is not None
        assert (stored.title, stored.status) == (title, EventStatus.CANCELLED)


# --- DELETE /events/{id} ----------------------------------------------------------------------


class TestDeleteEvent:
    @pytest.mark.parametrize("status", [EventStatus.PENDING, EventStatus.REJECTED])
    async def test_creator_204(self, client, session, manager, auth_as, status):
        doomed = await event_with_status(session, manager, status)

        response = await client.delete(f"{API}/{doomed.id}", headers=await auth_as(manager))

        assert response.status_code == 204
        assert response.content == b""
        assert await db_event(session, doomed.id) is None

    async def test_admin_204(self, client, session, pending_event, admin, auth_as):
        response = await client.delete(f"{API}/{pending_event.id}", headers=await auth_as(admin))

        assert response.status_code == 204
        assert await db_event(session, pending_event.id) is None

    @pytest.mark.parametrize("status", [EventStatus.PUBLISHED, EventStatus.CANCELLED])
    async def test_not_deletable_409(self, client, session, manager, auth_as, status):
        kept = await event_with_status(session, manager, status)

        response = await client.delete(f"{API}/{kept.id}", headers=await auth_as(manager))

        assert response.status_code == 409
        assert response.json() == not_deletable(status)
        stored = await db_event(session, kept.id)
        assert stored is not None
        assert stored.status == status

    async def test_other_manager_403(self, client, session, pending_event, other_manager, auth_as):
        response = await client.delete(
            f"{API}/{pending_event.id}", headers=await auth_as(other_manager)
        )

        assert response.status_code == 403
        assert response.json() == NOT_MANAGER_OF_EVENT
        assert await db_event(session, pending_event.id) is not None

    async def test_user_404(self, client, session, pending_event, user, auth_as):
        response = await client.delete(f"{API}/{pending_event.id}", headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND
        assert await db_event(session, pending_event.id) is not None

    async def test_anonymous_401(self, client, session, pending_event):
        response = await client.delete(f"{API}/{pending_event.id}")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await db_event(session, pending_event.id) is not None

    async def test_unknown_404(self, client, admin, auth_as):
        response = await client.delete(f"{API}/{uuid.uuid4()}", headers=await auth_as(admin))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND


# --- POST /events/{id}/approve ----------------------------------------------------------------


class TestApproveEvent:
    async def test_other_manager_200(
        self, client, session, pending_event, other_manager, auth_as, now
    ):
        response = await client.post(
            f"{API}/{pending_event.id}/approve", headers=await auth_as(other_manager)
        )

        assert response.status_code == 200
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert (stored.status, stored.reviewed_by, stored.published_at) == (
            EventStatus.PUBLISHED,
            other_manager.id,
            now,
        )
        assert parsed(response.json()) == event_view(stored)

    async def test_admin_on_own_event_200(self, client, session, admin, auth_as):
        own = await create_event(session, owner=admin, status=EventStatus.PENDING)

        response = await client.post(f"{API}/{own.id}/approve", headers=await auth_as(admin))

        assert response.status_code == 200
        assert (response.json()["status"], response.json()["reviewed_by"]) == (
            "PUBLISHED",
            str(admin.id),
        )
        stored = await db_event(session, own.id)
        assert stored is not None
        assert stored.status == EventStatus.PUBLISHED

    async def test_admin_200(self, client, session, pending_event, admin, auth_as):
        response = await client.post(
            f"{API}/{pending_event.id}/approve", headers=await auth_as(admin)
        )

        assert response.status_code == 200
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert (stored.status, stored.reviewed_by) == (EventStatus.PUBLISHED, admin.id)

    @pytest.mark.security("AC-3")
    async def test_manager_on_own_event_403(self, client, session, pending_event, manager, auth_as):
        response = await client.post(
            f"{API}/{pending_event.id}/approve", headers=await auth_as(manager)
        )

        assert response.status_code == 403
        assert response.json() == CANNOT_REVIEW_OWN
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert (stored.status, stored.reviewed_by) == (EventStatus.PENDING, None)
        assert await audit_entries(session, pending_event.id) == []

    async def test_user_403(self, client, session, pending_event, user, auth_as):
        response = await client.post(
            f"{API}/{pending_event.id}/approve", headers=await auth_as(user)
        )

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert stored.status == EventStatus.PENDING

    async def test_anonymous_401(self, client, session, pending_event):
        response = await client.post(f"{API}/{pending_event.id}/approve")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert stored.status == EventStatus.PENDING

    async def test_unknown_404(self, client, admin, auth_as):
        response = await client.post(f"{API}/{uuid.uuid4()}/approve", headers=await auth_as(admin))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    @pytest.mark.parametrize(
        "status", [EventStatus.PUBLISHED, EventStatus.REJECTED, EventStatus.CANCELLED]
    )
    async def test_not_pending_409(self, client, session, manager, other_manager, auth_as, status):
        reviewed = await event_with_status(session, manager, status)

        response = await client.post(
            f"{API}/{reviewed.id}/approve", headers=await auth_as(other_manager)
        )

        assert response.status_code == 409
        assert response.json() == transition_error(status, EventStatus.PUBLISHED)
        stored = await db_event(session, reviewed.id)
        assert stored is not None
        assert (stored.status, stored.reviewed_by) == (status, None)
        assert await audit_entries(session, reviewed.id) == []
        assert await queued_mail(session) == []

    async def test_audit_entry(self, client, session, pending_event, other_manager, auth_as, now):
        response = await client.post(
            f"{API}/{pending_event.id}/approve", headers=await auth_as(other_manager)
        )

        assert response.status_code == 200
        assert await audit_entries(session, pending_event.id) == [
            {
                "actor_id": other_manager.id,
                "action": AuditAction.EVENT_APPROVED,
                "target_type": "event",
                "target_id": pending_event.id,
                "before": {"status": "PENDING"},
                "after": {"status": "PUBLISHED", "published_at": now.isoformat()},
                "reason": None,
            }
        ]

    async def test_creator_mailed(
        self, client, session, pending_event, manager, other_manager, auth_as
    ):
        response = await client.post(
            f"{API}/{pending_event.id}/approve", headers=await auth_as(other_manager)
        )

        assert response.status_code == 200
        assert await mail_summary(session) == [
            (manager.email, f"Your event is published: {pending_event.title}")
        ]


# --- POST /events/{id}/reject -----------------------------------------------------------------


class TestRejectEvent:
    async def test_other_manager_200(self, client, session, pending_event, other_manager, auth_as):
        response = await client.post(
            f"{API}/{pending_event.id}/reject",
            json={"feedback": FEEDBACK},
            headers=await auth_as(other_manager),
        )

        assert response.status_code == 200
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert (
            stored.status,
            stored.reviewed_by,
            stored.review_feedback,
            stored.published_at,
        ) == (EventStatus.REJECTED, other_manager.id, FEEDBACK, None)
        assert parsed(response.json()) == event_view(stored)

    async def test_admin_on_own_event_200(self, client, session, admin, auth_as):
        own = await create_event(session, owner=admin, status=EventStatus.PENDING)

        response = await client.post(
            f"{API}/{own.id}/reject", json={"feedback": FEEDBACK}, headers=await auth_as(admin)
        )

        assert response.status_code == 200
        assert (response.json()["status"], response.json()["review_feedback"]) == (
            "REJECTED",
            FEEDBACK,
        )
        stored = await db_event(session, own.id)
        assert stored is not None
        assert (stored.status, stored.reviewed_by) == (EventStatus.REJECTED, admin.id)

    @pytest.mark.security("AC-3")
    async def test_manager_on_own_event_403(self, client, session, pending_event, manager, auth_as):
        response = await client.post(
            f"{API}/{pending_event.id}/reject",
            json={"feedback": FEEDBACK},
            headers=await auth_as(manager),
        )

        assert response.status_code == 403
        assert response.json() == CANNOT_REVIEW_OWN
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert (stored.status, stored.review_feedback) == (EventStatus.PENDING, None)

    async def test_user_403(self, client, session, pending_event, user, auth_as):
        response = await client.post(
            f"{API}/{pending_event.id}/reject",
            json={"feedback": FEEDBACK},
            headers=await auth_as(user),
        )

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert stored.status == EventStatus.PENDING

    async def test_anonymous_401(self, client, pending_event):
        response = await client.post(
            f"{API}/{pending_event.id}/reject", json={"feedback": FEEDBACK}
        )

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"

    async def test_unknown_404(self, client, admin, auth_as):
        response = await client.post(
            f"{API}/{uuid.uuid4()}/reject",
            json={"feedback": FEEDBACK},
            headers=await auth_as(admin),
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    @pytest.mark.parametrize(
        "status", [EventStatus.PUBLISHED, EventStatus.REJECTED, EventStatus.CANCELLED]
    )
    async def test_not_pending_409(self, client, session, manager, other_manager, auth_as, status):
        reviewed = await event_with_status(session, manager, status)
        feedback = reviewed.review_feedback

        response = await client.post(
            f"{API}/{reviewed.id}/reject",
            json={"feedback": "Another try"},
            headers=await auth_as(other_manager),
        )

        assert response.status_code == 409
        assert response.json() == transition_error(status, EventStatus.REJECTED)
        stored = await db_event(session, reviewed.id)
        assert stored is not None
        assert (stored.status, stored.review_feedback) == (status, feedback)
        assert await audit_entries(session, reviewed.id) == []
        assert await queued_mail(session) == []

    async def test_audit_entry(self, client, session, pending_event, other_manager, auth_as):
        response = await client.post(
            f"{API}/{pending_event.id}/reject",
            json={"feedback": FEEDBACK},
            headers=await auth_as(other_manager),
        )

        assert response.status_code == 200
        assert await audit_entries(session, pending_event.id) == [
            {
                "actor_id": other_manager.id,
                "action": AuditAction.EVENT_REJECTED,
                "target_type": "event",
                "target_id": pending_event.id,
                "before": {"status": "PENDING"},
                "after": {"status": "REJECTED", "review_feedback": FEEDBACK},
                "reason": FEEDBACK,
            }
        ]

    async def test_creator_mailed_with_feedback(
        self, client, session, pending_event, manager, other_manager, auth_as
    ):
        response = await client.post(
            f"{API}/{pending_event.id}/reject",
            json={"feedback": FEEDBACK},
            headers=await auth_as(other_manager),
        )

        assert response.status_code == 200
        [mail] = await queued_mail(session)
        assert (mail.to, mail.subject) == (
            manager.email,
            f"Your event was not approved: {pending_event.title}",
        )
        assert FEEDBACK in mail.text
        assert FEEDBACK in mail.html

    @pytest.mark.parametrize(
        ("body", "error"),
        [
            pytest.param({}, ("missing", ["body", "feedback"]), id="missing"),
            pytest.param({"feedback": ""}, ("string_too_short", ["body", "feedback"]), id="empty"),
            pytest.param(
                {"feedback": "   "}, ("string_too_short", ["body", "feedback"]), id="blank"
            ),
            pytest.param(
                {"feedback": "f" * 2001}, ("string_too_long", ["body", "feedback"]), id="2001"
            ),
        ],
    )
    async def test_bad_feedback_422(
        self, client, session, pending_event, other_manager, auth_as, body, error
    ):
        response = await client.post(
            f"{API}/{pending_event.id}/reject", json=body, headers=await auth_as(other_manager)
        )

        assert validation_errors(response) == [error]
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert stored.status == EventStatus.PENDING
        assert await audit_entries(session, pending_event.id) == []

    async def test_feedback_2000_200(self, client, session, pending_event, other_manager, auth_as):
        response = await client.post(
            f"{API}/{pending_event.id}/reject",
            json={"feedback": "f" * 2000},
            headers=await auth_as(other_manager),
        )

        assert response.status_code == 200
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert stored.review_feedback == "f" * 2000


# --- POST /events/{id}/submit -----------------------------------------------------------------


class TestSubmitEvent:
    async def test_creator_resubmits_rejected_200(
        self, client, session, manager, other_manager, admin, auth_as
    ):
        rejected = await event_with_status(session, manager, EventStatus.REJECTED)

        response = await client.post(f"{API}/{rejected.id}/submit", headers=await auth_as(manager))

        assert response.status_code == 200
        stored = await db_event(session, rejected.id)
        assert stored is not None
        assert stored.status == EventStatus.PENDING
        assert parsed(response.json()) == event_view(stored)
        subject = f"Event awaiting approval: {rejected.title}"
        assert await mail_summary(session) == sorted(
            [(other_manager.email, subject), (admin.email, subject)]
        )

    @pytest.mark.parametrize(
        "status", [EventStatus.PENDING, EventStatus.PUBLISHED, EventStatus.CANCELLED]
    )
    @pytest.mark.usefixtures("admin")
    async def test_not_rejected_409(self, client, session, manager, auth_as, status):
        submitted = await event_with_status(session, manager, status)

        response = await client.post(f"{API}/{submitted.id}/submit", headers=await auth_as(manager))

        assert response.status_code == 409
        assert response.json() == transition_error(status, EventStatus.PENDING)
        stored = await db_event(session, submitted.id)
        assert stored is not None
        assert stored.status == status
        assert await queued_mail(session) == []

    async def test_admin_not_creator_403(self, client, session, manager, admin, auth_as):
        rejected = await event_with_status(session, manager, EventStatus.REJECTED)

        response = await client.post(f"{API}/{rejected.id}/submit", headers=await auth_as(admin))

        assert response.status_code == 403
        assert response.json() == NOT_CREATOR
        stored = await db_event(session, rejected.id)
        assert stored is not None
        assert stored.status == EventStatus.REJECTED

    async def test_other_manager_403(self, client, session, manager, other_manager, auth_as):
        rejected = await event_with_status(session, manager, EventStatus.REJECTED)

        response = await client.post(
            f"{API}/{rejected.id}/submit", headers=await auth_as(other_manager)
        )

        assert response.status_code == 403
        assert response.json() == NOT_CREATOR

    async def test_user_404(self, client, session, manager, user, auth_as):
        rejected = await event_with_status(session, manager, EventStatus.REJECTED)

        response = await client.post(f"{API}/{rejected.id}/submit", headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_anonymous_401(self, client, session, manager):
        rejected = await event_with_status(session, manager, EventStatus.REJECTED)

        response = await client.post(f"{API}/{rejected.id}/submit")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"


# --- POST /events/{id}/cancel -----------------------------------------------------------------


class TestCancelEvent:
    async def test_creator_with_reason_200(self, client, session, event, manager, auth_as, now):
        response = await client.post(
            f"{API}/{event.id}/cancel",
            json={"reason": "The speaker is ill"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        stored = await db_event(session, event.id)
        assert stored is not None
        assert (stored.status, stored.cancellation_reason, stored.cancelled_at) == (
            EventStatus.CANCELLED,
            "The speaker is ill",
            now,
        )
        assert parsed(response.json()) == event_view(stored)

    async def test_admin_200(self, client, session, event, admin, auth_as, now):
        response = await client.post(
            f"{API}/{event.id}/cancel",
            json={"reason": "Venue closed"},
            headers=await auth_as(admin),
        )

        assert response.status_code == 200
        assert (
            response.json()["status"],
            response.json()["cancellation_reason"],
            datetime.fromisoformat(response.json()["cancelled_at"]),
        ) == ("CANCELLED", "Venue closed", now)
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.status == EventStatus.CANCELLED

    async def test_without_body_200(self, client, session, event, manager, auth_as, now):
        response = await client.post(f"{API}/{event.id}/cancel", headers=await auth_as(manager))

        assert response.status_code == 200
        stored = await db_event(session, event.id)
        assert stored is not None
        assert (stored.status, stored.cancellation_reason, stored.cancelled_at) == (
            EventStatus.CANCELLED,
            None,
            now,
        )
        assert parsed(response.json()) == event_view(stored)

    async def test_pending_200(self, client, session, pending_event, manager, auth_as):
        response = await client.post(
            f"{API}/{pending_event.id}/cancel", json={}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        stored = await db_event(session, pending_event.id)
        assert stored is not None
        assert stored.status == EventStatus.CANCELLED

    async def test_reason_2001_422(self, client, session, event, manager, auth_as):
        response = await client.post(
            f"{API}/{event.id}/cancel", json={"reason": "r" * 2001}, headers=await auth_as(manager)
        )

        assert validation_errors(response) == [("string_too_long", ["body", "reason"])]
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.status == EventStatus.PUBLISHED

    async def test_registrants_mailed_with_reason(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1, title="Robotics day")
        confirmed, waitlisted, cancelled = await people(session, 3)
        await register(session, event, confirmed)
        await register(session, event, waitlisted)
        await register(session, event, cancelled, status=RegistrationStatus.CANCELLED)

        response = await client.post(
            f"{API}/{event.id}/cancel",
            json={"reason": "The speaker is ill"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        mails = await queued_mail(session)
        subject = "Event cancelled: Robotics day"
        assert sorted((mail.to, mail.subject) for mail in mails) == sorted(
            [(confirmed.email, subject), (waitlisted.email, subject)]
        )
        assert all("Reason: The speaker is ill" in mail.text for mail in mails)

    async def test_mail_without_reason(self, client, session, event, manager, auth_as):
        attendee = await create_user(session)
        await register(session, event, attendee)

        response = await client.post(f"{API}/{event.id}/cancel", headers=await auth_as(manager))

        assert response.status_code == 200
        [mail] = await queued_mail(session)
        assert (mail.to, mail.subject) == (attendee.email, f"Event cancelled: {event.title}")
        assert "Reason:" not in mail.text

    async def test_registrations_released(self, client, session, manager, auth_as, now):
        event = await create_event(session, owner=manager, capacity=2)
        registrations = [await register(session, event, a) for a in await people(session, 3)]

        response = await client.post(f"{API}/{event.id}/cancel", headers=await auth_as(manager))

        assert response.status_code == 200
        assert (
            response.json()["registered_count"],
            response.json()["waitlist_count"],
            response.json()["spots_left"],
        ) == (0, 0, 2)
        stored = await db_event(session, event.id)
        assert stored is not None
        assert (stored.registered_count, stored.waitlist_count) == (0, 0)
        rows = [await db_registration(session, r) for r in registrations]
        assert [(r.status, r.cancelled_at) for r in rows] == [
            (RegistrationStatus.CANCELLED, now)
        ] * 3

    async def test_audit_entry(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=2)
        for attendee in await people(session, 3):
            await register(session, event, attendee)

        response = await client.post(
            f"{API}/{event.id}/cancel",
            json={"reason": "Venue closed"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert await audit_entries(session, event.id) == [
            {
                "actor_id": manager.id,
                "action": AuditAction.EVENT_CANCELLED,
                "target_type": "event",
                "target_id": event.id,
                "before": {"status": "PUBLISHED", "registered_count": 2, "waitlist_count": 1},
                "after": {"status": "CANCELLED", "registered_count": 0, "waitlist_count": 0},
                "reason": "Venue closed",
            }
        ]

    async def test_audit_reason_null_without_body(self, client, session, event, admin, auth_as):
        response = await client.post(f"{API}/{event.id}/cancel", headers=await auth_as(admin))

        assert response.status_code == 200
        [entry] = await audit_entries(session, event.id)
        assert (entry["actor_id"], entry["reason"]) == (admin.id, None)

    @pytest.mark.parametrize("status", [EventStatus.REJECTED, EventStatus.CANCELLED])
    async def test_not_cancellable_409(self, client, session, manager, auth_as, status):
        done = await event_with_status(session, manager, status)

        response = await client.post(
            f"{API}/{done.id}/cancel", json={"reason": "Again"}, headers=await auth_as(manager)
        )

        assert response.status_code == 409
        assert response.json() == transition_error(status, EventStatus.CANCELLED)
        stored = await db_event(session, done.id)
        assert stored is not None
        assert (stored.status, stored.cancellation_reason) == (status, None)
        assert await audit_entries(session, done.id) == []

    async def test_other_manager_403(self, client, session, event, other_manager, auth_as):
        response = await client.post(
            f"{API}/{event.id}/cancel",
            json={"reason": "Mine now"},
            headers=await auth_as(other_manager),
        )

        assert response.status_code == 403
        assert response.json() == NOT_MANAGER_OF_EVENT
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.status == EventStatus.PUBLISHED

    async def test_user_403(self, client, session, event, user, auth_as):
        response = await client.post(f"{API}/{event.id}/cancel", headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == NOT_MANAGER_OF_EVENT
        stored = await db_event(session, event.id)
        assert stored is not None
        assert stored.status == EventStatus.PUBLISHED

    async def test_anonymous_401(self, client, event):
        response = await client.post(f"{API}/{event.id}/cancel")

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"

    async def test_unknown_404(self, client, admin, auth_as):
        response = await client.post(f"{API}/{uuid.uuid4()}/cancel", headers=await auth_as(admin))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND


# --- the status table of API.md ---------------------------------------------------------------

# (from, action) -> the status afterwards, "deleted", or None for 409 INVALID_EVENT_TRANSITION.
TRANSITION_TABLE: dict[tuple[EventStatus, str], EventStatus | str | None] = {
    (EventStatus.PENDING, "approve"): EventStatus.PUBLISHED,
    (EventStatus.PENDING, "reject"): EventStatus.REJECTED,
    (EventStatus.PENDING, "submit"): None,
    (EventStatus.PENDING, "cancel"): EventStatus.CANCELLED,
    (EventStatus.PENDING, "delete"): "deleted",
    (EventStatus.PUBLISHED, "approve"): None,
    (EventStatus.PUBLISHED, "reject"): None,
    (EventStatus.PUBLISHED, "submit"): None,
    (EventStatus.PUBLISHED, "cancel"): EventStatus.CANCELLED,
    (EventStatus.PUBLISHED, "delete"): None,
    (EventStatus.REJECTED, "approve"): None,
    (EventStatus.REJECTED, "reject"): None,
    (EventStatus.REJECTED, "submit"): EventStatus.PENDING,
    (EventStatus.REJECTED, "cancel"): None,
    (EventStatus.REJECTED, "delete"): "deleted",
    (EventStatus.CANCELLED, "approve"): None,
    (EventStatus.CANCELLED, "reject"): None,
    (EventStatus.CANCELLED, "submit"): None,
    (EventStatus.CANCELLED, "cancel"): None,
    (EventStatus.CANCELLED, "delete"): None,
}
ACTION_TARGET = {
    "approve": EventStatus.PUBLISHED,
    "reject": EventStatus.REJECTED,
    "submit": EventStatus.PENDING,
    "cancel": EventStatus.CANCELLED,
}


async def perform(
    client: httpx.AsyncClient,
    action: str,
    event_id: uuid.UUID,
    *,
    creator: Headers,
    reviewer: Headers,
) -> httpx.Response:
    """The action as API.md allows it: reviews by a staff member other than the creator, the
    rest by the creator."""
    url = f"{API}/{event_id}"
    if action == "delete":
        return await client.delete(url, headers=creator)
    if action == "approve":
        return await client.post(f"{url}/approve", headers=reviewer)
    if action == "reject":
        return await client.post(f"{url}/reject", json={"feedback": FEEDBACK}, headers=reviewer)
    return await client.post(f"{url}/{action}", headers=creator)


class TestEventTransitions:
    @pytest.mark.parametrize(
        ("source", "action"),
        list(TRANSITION_TABLE),
        ids=[f"{source}-{action}" for source, action in TRANSITION_TABLE],
    )
    async def test_transition_table(
        self, client, session, admin, other_manager, auth_as, source, action
    ):
        subject = await event_with_status(session, admin, source)
        expected = TRANSITION_TABLE[(source, action)]

        response = await perform(
            client,
            action,
            subject.id,
            creator=await auth_as(admin),
            reviewer=await auth_as(other_manager),
        )

        stored = await db_event(session, subject.id)
        if expected == "deleted":
            assert response.status_code == 204
            assert stored is None
        elif expected is not None:
            assert response.status_code == 200
            assert response.json()["status"] == expected
            assert stored is not None
            assert stored.status == expected
        else:
            assert response.status_code == 409
            error = (
                not_deletable(source)
                if action == "delete"
                else transition_error(source, ACTION_TARGET[action])
            )
            assert response.json() == error
            assert stored is not None
            assert stored.status == source


# --- GET /events/{id}/calendar.ics ------------------------------------------------------------


STARTS_AT = datetime(2099, 3, 14, 9, 30, tzinfo=UTC)


def vevent(response: httpx.Response) -> icalendar.Event:
    """The one VEVENT of a calendar file."""
    calendar = icalendar.Calendar.from_ical(response.content)
    [event] = calendar.events
    return event


class TestEventCalendar:
    async def test_published_200(self, client, session, manager):
        # Given in Berlin time: the export is in UTC.
        berlin_start = STARTS_AT.astimezone(ZoneInfo("Europe/Berlin"))
        published = await create_event(
            session,
            owner=manager,
            title="Compiler lecture",
            starts_at=berlin_start,
            ends_at=berlin_start + timedelta(hours=2),
            timezone="Europe/Berlin",
            location="Hall A",
        )

        response = await client.get(f"{API}/{published.id}/calendar.ics")

        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == "text/calendar"
        item = vevent(response)
        assert str(item["UID"]) == f"{published.id}@testserver"
        assert str(published.id) in str(item["UID"])
        start, end = item.start, item.end
        assert isinstance(start, datetime)
        assert isinstance(end, datetime)
        assert (start, end) == (STARTS_AT, STARTS_AT + timedelta(hours=2))
        assert (start.utcoffset(), end.utcoffset()) == (timedelta(0), timedelta(0))
        assert (str(start.tzinfo), str(end.tzinfo)) == ("UTC", "UTC")
        assert str(item["SUMMARY"]) == "Compiler lecture"
        assert str(item["LOCATION"]) == "Hall A"
        assert str(item["URL"]) == f"http://testserver/api/v1/events/{published.id}"
        assert str(item["STATUS"]) == "CONFIRMED"
        assert b"DTSTART:20990314T093000Z" in response.content

    async def test_same_event_same_bytes(self, client, session, manager):
        event = await create_event(session, owner=manager)

        first = await client.get(f"{API}/{event.id}/calendar.ics")
        second = await client.get(f"{API}/{event.id}/calendar.ics")

        assert first.content == second.content
        assert f"UID:{event.id}\r\n".encode() in first.content

    async def test_online_only_uses_online_url(self, client, session, manager):
        online = await create_event(
            session,
            owner=manager,
            starts_at=STARTS_AT,
            ends_at=STARTS_AT + timedelta(hours=1),
            location=None,
            online_url="https://meet.example.com/lecture",
        )

        response = await client.get(f"{API}/{online.id}/calendar.ics")

        assert response.status_code == 200
        item = vevent(response)
        assert str(item["LOCATION"]) == "https://meet.example.com/lecture"
        assert str(item["URL"]) == "https://meet.example.com/lecture"

    async def test_location_and_online_url(self, client, session, manager):
        hybrid = await create_event(
            session,
            owner=manager,
            starts_at=STARTS_AT,
            ends_at=STARTS_AT + timedelta(hours=1),
            location="Hall B",
            online_url="https://meet.example.com/hybrid",
        )

        response = await client.get(f"{API}/{hybrid.id}/calendar.ics")

        assert response.status_code == 200
        item = vevent(response)
        assert str(item["LOCATION"]) == "Hall B"
        assert str(item["URL"]) == "https://meet.example.com/hybrid"

    async def test_cancelled_status_cancelled(self, client, session, manager, auth_as):
        cancelled = await event_with_status(session, manager, EventStatus.CANCELLED)

        response = await client.get(
            f"{API}/{cancelled.id}/calendar.ics", headers=await auth_as(manager)
        )

        assert response.status_code == 200
        assert str(vevent(response)["STATUS"]) == "CANCELLED"

    async def test_pending_anonymous_404(self, client, pending_event):
        response = await client.get(f"{API}/{pending_event.id}/calendar.ics")

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_pending_user_404(self, client, pending_event, user, auth_as):
        response = await client.get(
            f"{API}/{pending_event.id}/calendar.ics", headers=await auth_as(user)
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_pending_creator_200_tentative(self, client, pending_event, manager, auth_as):
        response = await client.get(
            f"{API}/{pending_event.id}/calendar.ics", headers=await auth_as(manager)
        )

        assert response.status_code == 200
        item = vevent(response)
        assert str(item["UID"]) == f"{pending_event.id}@testserver"
        assert str(item["SUMMARY"]) == pending_event.title
        assert str(item["STATUS"]) == "TENTATIVE"

    async def test_unknown_404(self, client):
        response = await client.get(f"{API}/{uuid.uuid4()}/calendar.ics")

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND
