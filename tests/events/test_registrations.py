"""The Registrations section of API.md, GET /users/me/registrations, and the seats an account
gives up when it is deleted (DELETE /users/me, DELETE /users/{id})."""

import csv
import io
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

import api.clock
from api.events.models import Event, EventStatus
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User, UserRole
from tests.factories import (
    PUBLIC_FIELDS,
    create_event,
    create_user,
    event_view,
    queued_mail,
    register,
)

UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
FORBIDDEN = {"detail": "FORBIDDEN"}
EVENT_NOT_FOUND = {"detail": "EVENT_NOT_FOUND"}
REGISTRATION_NOT_FOUND = {"detail": "REGISTRATION_NOT_FOUND"}
ALREADY_REGISTERED = {"detail": "ALREADY_REGISTERED"}
NOT_EVENT_OWNER = {
    "detail": {
        "code": "NOT_EVENT_OWNER",
        "reason": "Only the event's creator, managers and admins may",
    }
}
CSV_HEADER = [
    "registration_id",
    "status",
    "waitlist_position",
    "user_id",
    "nickname",
    "first_name",
    "last_name",
    "is_professional",
    "registered_at",
    "checked_in_at",
]
REGISTRATION_TIMES = (
    "created_at",
    "promoted_at",
    "checked_in_at",
    "cancelled_at",
    "offer_expires_at",
)
EVENT_TIMES = (
    "starts_at",
    "ends_at",
    "registration_deadline",
    "created_at",
    "updated_at",
    "published_at",
    "cancelled_at",
)
CONFIRMED = RegistrationStatus.CONFIRMED
WAITLISTED = RegistrationStatus.WAITLISTED
CANCELLED = RegistrationStatus.CANCELLED


# --- helpers ----------------------------------------------------------------------------------


def not_open(reason: str) -> dict[str, Any]:
    return {"detail": {"code": "EVENT_NOT_OPEN", "reason": reason}}


def url(event_id: uuid.UUID, tail: str = "") -> str:
    return f"/api/v1/events/{event_id}/registrations{tail}"


def parse_times(body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A body with its datetimes parsed, to compare with values read from the database."""
    return {
        key: datetime.fromisoformat(value) if key in keys and value is not None else value
        for key, value in body.items()
    }


def registration_view(registration: Registration, position: int | None) -> dict[str, Any]:
    """RegistrationPublic as API.md describes it, datetimes unparsed."""
    return {
        "id": str(registration.id),
        "event_id": str(registration.event_id),
        "user_id": str(registration.user_id),
        "status": registration.status.value,
        "waitlist_position": position,
        "created_at": registration.created_at,
        "promoted_at": registration.promoted_at,
        "checked_in_at": registration.checked_in_at,
        "cancelled_at": registration.cancelled_at,
        "offer_expires_at": registration.offer_expires_at,
    }


def parsed_registration(body: dict[str, Any]) -> dict[str, Any]:
    return parse_times(body, REGISTRATION_TIMES)


def public_profile(user: User) -> dict[str, Any]:
    profile = {
        "id": str(user.id),
        "nickname": user.nickname,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "bio": user.bio,
        "profile_picture_url": user.profile_picture_url,
        "linkedin_profile_url": user.linkedin_profile_url,
        "github_profile_url": user.github_profile_url,
        "is_professional": user.is_professional,
    }
    assert set(profile) == PUBLIC_FIELDS
    return profile


def attendee_view(registration: Registration, user: User, position: int | None) -> dict[str, Any]:
    return {**registration_view(registration, position), "user": public_profile(user)}


def parsed_attendee(body: dict[str, Any]) -> dict[str, Any]:
    return parsed_registration(body)


def registrant_view(registration: Registration, position: int | None) -> dict[str, Any]:
    """A registration as its registrant sees it: with the check-in code."""
    return {**registration_view(registration, position), "checkin_code": registration.checkin_code}


def own_registration_view(
    registration: Registration, event: Event, position: int | None
) -> dict[str, Any]:
    return {**registrant_view(registration, position), "event": event_view(event)}


def parsed_own_registration(body: dict[str, Any]) -> dict[str, Any]:
    return {
        **parsed_registration(body),
        "event": parse_times(body["event"], EVENT_TIMES),
    }


def keys_in(value: Any) -> set[str]:
    """Every key anywhere in a JSON document."""
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in keys_in(item)}
    if isinstance(value, list):
        return {key for item in value for key in keys_in(item)}
    return set()


async def rows_of(session: AsyncSession, event: Event) -> list[Registration]:
    """The event's registration rows as the database has them, in arrival order."""
    result = await session.scalars(
        select(Registration)
        .where(col(Registration.event_id) == event.id)
        .order_by(col(Registration.seq))
        .execution_options(populate_existing=True)
    )
    return list(result.all())


def summary(rows: list[Registration]) -> list[tuple[uuid.UUID, RegistrationStatus]]:
    return [(row.user_id, row.status) for row in rows]


async def counters(session: AsyncSession, event: Event) -> tuple[int, int]:
    await session.refresh(event)
    return event.registered_count, event.waitlist_count


async def mail_sent(session: AsyncSession) -> list[tuple[str, str]]:
    return [(mail.to, mail.subject) for mail in await queued_mail(session)]


async def users(session: AsyncSession, count: int, **fields: Any) -> list[User]:
    return [await create_user(session, **fields) for _ in range(count)]


async def cancelled(session: AsyncSession, event: Event, registration: Registration) -> None:
    """Cancel a registration straight in the database, keeping the counters (no promotion)."""
    if registration.status is CONFIRMED:
        event.registered_count -= 1
    else:
        event.waitlist_count -= 1
    registration.status = CANCELLED
    registration.cancelled_at = api.clock.now()
    registration.checkin_code = None
    session.add_all([event, registration])
    await session.flush()


# --- POST /events/{id}/registrations ----------------------------------------------------------


class TestRegisterForEvent:
    async def test_verified_user_201_confirmed(self, client, session, event, user, auth_as):
        response = await client.post(url(event.id), headers=await auth_as(user))

        assert response.status_code == 201
        [row] = await rows_of(session, event)
        assert summary([row]) == [(user.id, CONFIRMED)]
        body = response.json()
        assert set(body) == {
            "id",
            "event_id",
            "user_id",
            "status",
            "waitlist_position",
            "created_at",
            "promoted_at",
            "checked_in_at",
            "cancelled_at",
            "offer_expires_at",
            "checkin_code",
        }
        assert parsed_registration(body) == registrant_view(row, None)
        assert body["status"] == "CONFIRMED"
        assert body["waitlist_position"] is None
        assert await counters(session, event) == (1, 0)

    async def test_full_event_201_waitlisted_in_order(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated, first, second = await users(session, 3)
        await register(session, event, seated)

        first_response = await client.post(url(event.id), headers=await auth_as(first))
        second_response = await client.post(url(event.id), headers=await auth_as(second))

        assert first_response.status_code == 201
        assert second_response.status_code == 201
        rows = await rows_of(session, event)
        assert summary(rows) == [
            (seated.id, CONFIRMED),
            (first.id, WAITLISTED),
            (second.id, WAITLISTED),
        ]
        assert parsed_registration(first_response.json()) == registrant_view(rows[1], 1)
        assert parsed_registration(second_response.json()) == registrant_view(rows[2], 2)
        assert await counters(session, event) == (1, 2)

    async def test_last_seat_confirmed_then_waitlisted(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=2)
        first, second, third = await users(session, 3)

        statuses = [
            (await client.post(url(event.id), headers=await auth_as(u))).json()["status"]
            for u in (first, second, third)
        ]

        assert statuses == ["CONFIRMED", "CONFIRMED", "WAITLISTED"]
        assert summary(await rows_of(session, event)) == [
            (first.id, CONFIRMED),
            (second.id, CONFIRMED),
            (third.id, WAITLISTED),
        ]
        assert await counters(session, event) == (2, 1)

    async def test_unlimited_capacity_always_confirmed(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=None)
        attendees = await users(session, 3)

        responses = [await client.post(url(event.id), headers=await auth_as(u)) for u in attendees]

        assert [(r.status_code, r.json()["status"]) for r in responses] == [
            (201, "CONFIRMED"),
            (201, "CONFIRMED"),
            (201, "CONFIRMED"),
        ]
        assert [r.json()["waitlist_position"] for r in responses] == [None, None, None]
        assert summary(await rows_of(session, event)) == [(u.id, CONFIRMED) for u in attendees]
        assert await counters(session, event) == (3, 0)

    async def test_counters_shown_on_the_event(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        first, second = await users(session, 2)
        await client.post(url(event.id), headers=await auth_as(first))
        await client.post(url(event.id), headers=await auth_as(second))

        response = await client.get(f"/api/v1/events/{event.id}")

        assert response.status_code == 200
        body = response.json()
        assert (body["registered_count"], body["waitlist_count"], body["spots_left"]) == (1, 1, 0)

    async def test_confirmation_mail_queued(self, client, session, event, user, auth_as):
        response = await client.post(url(event.id), headers=await auth_as(user))

        assert response.status_code == 201
        [mail] = await queued_mail(session)
        assert (mail.to, mail.subject) == (user.email, f"Registration received: {event.title}")
        assert f'Your seat at "{event.title}" is confirmed.' in mail.text
        assert "waitlist" not in mail.text

    async def test_waitlist_mail_names_the_position(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated, first, second = await users(session, 3)
        await register(session, event, seated)
        await register(session, event, first)

        response = await client.post(url(event.id), headers=await auth_as(second))

        assert response.status_code == 201
        [mail] = await queued_mail(session)
        assert (mail.to, mail.subject) == (second.email, f"Registration received: {event.title}")
        assert "you are on the waitlist, number 2 in line" in mail.text
        assert "is confirmed" not in mail.text

    async def test_anonymous_401(self, client, session, event):
        response = await client.post(url(event.id))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await rows_of(session, event) == []

    async def test_unverified_user_403(self, client, session, event, unverified_user, auth_as):
        response = await client.post(url(event.id), headers=await auth_as(unverified_user))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        assert await rows_of(session, event) == []
        assert await counters(session, event) == (0, 0)

    async def test_unknown_event_404(self, client, user, auth_as):
        response = await client.post(url(uuid.uuid4()), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_pending_event_user_404(self, client, session, pending_event, user, auth_as):
        response = await client.post(url(pending_event.id), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND
        assert await rows_of(session, pending_event) == []

    async def test_pending_event_manager_409(self, client, session, pending_event, auth_as):
        other_manager = await create_user(session, role=UserRole.MANAGER)

        response = await client.post(url(pending_event.id), headers=await auth_as(other_manager))

        assert response.status_code == 409
        assert response.json() == not_open("The event is PENDING, not open for registration")
        assert await rows_of(session, pending_event) == []

    async def test_cancelled_event_manager_409(self, client, session, manager, auth_as):
        event = await create_event(
            session, owner=manager, status=EventStatus.CANCELLED, cancelled_at=api.clock.now()
        )
        other_manager = await create_user(session, role=UserRole.MANAGER)

        response = await client.post(url(event.id), headers=await auth_as(other_manager))

        assert response.status_code == 409
        assert response.json() == not_open("The event is CANCELLED, not open for registration")
        assert await rows_of(session, event) == []

    async def test_cancelled_event_user_404(self, client, session, manager, user, auth_as):
        # A cancelled event is no longer PUBLISHED: hidden from plain users, as API.md says.
        event = await create_event(
            session, owner=manager, status=EventStatus.CANCELLED, cancelled_at=api.clock.now()
        )

        response = await client.post(url(event.id), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND
        assert await rows_of(session, event) == []

    async def test_started_event_409(self, client, session, manager, user, auth_as, monkeypatch):
        starts_at = api.clock.now() + timedelta(minutes=30)
        event = await create_event(
            session, owner=manager, starts_at=starts_at, ends_at=starts_at + timedelta(hours=2)
        )
        headers = await auth_as(user)
        monkeypatch.setattr(api.clock, "now", lambda: starts_at + timedelta(minutes=1))

        response = await client.post(url(event.id), headers=headers)

        assert response.status_code == 409
        assert response.json() == not_open("The event has already started")
        assert await rows_of(session, event) == []
        assert await counters(session, event) == (0, 0)

    async def test_running_event_409(self, client, session, manager, user, auth_as):
        now = api.clock.now()
        event = await create_event(
            session,
            owner=manager,
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=1),
        )

        response = await client.post(url(event.id), headers=await auth_as(user))

        assert response.status_code == 409
        assert response.json() == not_open("The event has already started")
        assert await rows_of(session, event) == []

    async def test_past_deadline_409(self, client, session, manager, user, auth_as):
        event = await create_event(
            session,
            owner=manager,
            registration_deadline=api.clock.now() - timedelta(minutes=1),
        )

        response = await client.post(url(event.id), headers=await auth_as(user))

        assert response.status_code == 409
        assert response.json() == not_open("The registration deadline has passed")
        assert await rows_of(session, event) == []

    async def test_before_deadline_201(self, client, session, manager, user, auth_as):
        event = await create_event(
            session,
            owner=manager,
            registration_deadline=api.clock.now() + timedelta(days=1),
        )

        response = await client.post(url(event.id), headers=await auth_as(user))

        assert response.status_code == 201
        assert summary(await rows_of(session, event)) == [(user.id, CONFIRMED)]

    async def test_second_registration_409(self, client, session, event, user, auth_as):
        headers = await auth_as(user)
        first = await client.post(url(event.id), headers=headers)

        response = await client.post(url(event.id), headers=headers)

        assert first.status_code == 201
        assert response.status_code == 409
        assert response.json() == ALREADY_REGISTERED
        assert summary(await rows_of(session, event)) == [(user.id, CONFIRMED)]
        assert await counters(session, event) == (1, 0)
        assert await mail_sent(session) == [(user.email, f"Registration received: {event.title}")]

    async def test_waitlisted_registers_again_409(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated, waiting = await users(session, 2)
        await register(session, event, seated)
        await register(session, event, waiting)

        response = await client.post(url(event.id), headers=await auth_as(waiting))

        assert response.status_code == 409
        assert response.json() == ALREADY_REGISTERED
        assert summary(await rows_of(session, event)) == [
            (seated.id, CONFIRMED),
            (waiting.id, WAITLISTED),
        ]
        assert await counters(session, event) == (1, 1)

    async def test_again_after_unregistering_201(self, client, session, event, user, auth_as):
        headers = await auth_as(user)
        await register(session, event, user)
        assert (await client.delete(url(event.id, "/me"), headers=headers)).status_code == 204

        response = await client.post(url(event.id), headers=headers)

        assert response.status_code == 201
        assert response.json()["status"] == "CONFIRMED"
        assert summary(await rows_of(session, event)) == [
            (user.id, CANCELLED),
            (user.id, CONFIRMED),
        ]
        assert await counters(session, event) == (1, 0)

    async def test_again_after_unregistering_back_of_waitlist(
        self, client, session, manager, auth_as
    ):
        event = await create_event(session, owner=manager, capacity=1)
        seated, leaver, other = await users(session, 3)
        for attendee in (seated, leaver, other):
            await register(session, event, attendee)
        headers = await auth_as(leaver)
        assert (await client.delete(url(event.id, "/me"), headers=headers)).status_code == 204

        response = await client.post(url(event.id), headers=headers)

        assert response.status_code == 201
        rows = await rows_of(session, event)
        assert summary(rows) == [
            (seated.id, CONFIRMED),
            (leaver.id, CANCELLED),
            (other.id, WAITLISTED),
            (leaver.id, WAITLISTED),
        ]
        assert parsed_registration(response.json()) == registrant_view(rows[3], 2)
        assert await counters(session, event) == (1, 2)


# --- DELETE /events/{id}/registrations/me -----------------------------------------------------


class TestUnregisterFromEvent:
    async def test_confirmed_204_row_cancelled(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(user))

        assert response.status_code == 204
        assert response.content == b""
        [row] = await rows_of(session, event)
        assert (row.id, row.status) == (registration.id, CANCELLED)
        assert row.cancelled_at is not None
        assert row.promoted_at is None
        assert await counters(session, event) == (0, 0)
        assert await mail_sent(session) == []

    async def test_confirmed_leaving_promotes_first_waitlisted(
        self, client, session, manager, auth_as
    ):
        event = await create_event(session, owner=manager, capacity=1)
        seated = await create_user(session)
        # Arrival order, not names or ids, decides: the first to arrive sorts last by nickname.
        first = await create_user(session, nickname=f"zz_{uuid.uuid4().hex[:8]}")
        second = await create_user(session, nickname=f"aa_{uuid.uuid4().hex[:8]}")
        for attendee in (seated, first, second):
            await register(session, event, attendee)

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(seated))

        assert response.status_code == 204
        rows = await rows_of(session, event)
        assert summary(rows) == [
            (seated.id, CANCELLED),
            (first.id, CONFIRMED),
            (second.id, WAITLISTED),
        ]
        assert rows[1].promoted_at is not None
        assert rows[2].promoted_at is None
        assert await counters(session, event) == (1, 1)

    async def test_promoted_one_gets_seat_mail(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated, waiting = await users(session, 2)
        await register(session, event, seated)
        await register(session, event, waiting)

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(seated))

        assert response.status_code == 204
        [mail] = await queued_mail(session)
        assert (mail.to, mail.subject) == (waiting.email, f"You have a seat: {event.title}")
        assert f'your place at "{event.title}" is now confirmed' in mail.text

    async def test_promoted_one_sees_seat_and_promoted_at(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated, waiting = await users(session, 2)
        await register(session, event, seated)
        await register(session, event, waiting)
        await client.delete(url(event.id, "/me"), headers=await auth_as(seated))

        response = await client.get(
            "/api/v1/users/me/registrations", headers=await auth_as(waiting)
        )

        assert response.status_code == 200
        [item] = response.json()["items"]
        [_, row] = await rows_of(session, event)
        assert (item["status"], item["waitlist_position"]) == ("CONFIRMED", None)
        assert datetime.fromisoformat(item["promoted_at"]) == row.promoted_at

    async def test_remaining_waitlist_moves_up(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated, first, second, third = await users(session, 4)
        for attendee in (seated, first, second, third):
            await register(session, event, attendee)

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(seated))

        assert response.status_code == 204
        positions = []
        for attendee in (second, third):
            mine = await client.get(
                "/api/v1/users/me/registrations", headers=await auth_as(attendee)
            )
            positions.append([item["waitlist_position"] for item in mine.json()["items"]])
        assert positions == [[1], [2]]
        listing = await client.get(url(event.id), headers=await auth_as(manager))
        assert [
            (item["user_id"], item["status"], item["waitlist_position"])
            for item in listing.json()["items"]
        ] == [
            (str(first.id), "CONFIRMED", None),
            (str(second.id), "WAITLISTED", 1),
            (str(third.id), "WAITLISTED", 2),
        ]

    async def test_waitlisted_leaving_does_not_promote(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated, first, second, third = await users(session, 4)
        for attendee in (seated, first, second, third):
            await register(session, event, attendee)

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(first))

        assert response.status_code == 204
        assert summary(await rows_of(session, event)) == [
            (seated.id, CONFIRMED),
            (first.id, CANCELLED),
            (second.id, WAITLISTED),
            (third.id, WAITLISTED),
        ]
        assert await counters(session, event) == (1, 2)
        assert await mail_sent(session) == []
        listing = await client.get(url(event.id), headers=await auth_as(manager))
        assert [
            (item["user_id"], item["waitlist_position"]) for item in listing.json()["items"]
        ] == [(str(seated.id), None), (str(second.id), 1), (str(third.id), 2)]

    async def test_unlimited_event_204(self, client, session, manager, user, auth_as):
        event = await create_event(session, owner=manager, capacity=None)
        await register(session, event, user)

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(user))

        assert response.status_code == 204
        assert summary(await rows_of(session, event)) == [(user.id, CANCELLED)]
        assert await counters(session, event) == (0, 0)

    async def test_not_registered_404(self, client, session, event, user, auth_as):
        other = await create_user(session)
        await register(session, event, other)

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND
        assert summary(await rows_of(session, event)) == [(other.id, CONFIRMED)]
        assert await counters(session, event) == (1, 0)

    async def test_twice_404(self, client, session, event, user, auth_as):
        headers = await auth_as(user)
        await register(session, event, user)
        first = await client.delete(url(event.id, "/me"), headers=headers)

        response = await client.delete(url(event.id, "/me"), headers=headers)

        assert first.status_code == 204
        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND
        assert summary(await rows_of(session, event)) == [(user.id, CANCELLED)]
        assert await counters(session, event) == (0, 0)

    async def test_unknown_event_404(self, client, user, auth_as):
        response = await client.delete(url(uuid.uuid4(), "/me"), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_anonymous_401(self, client, session, event, user):
        await register(session, event, user)

        response = await client.delete(url(event.id, "/me"))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert summary(await rows_of(session, event)) == [(user.id, CONFIRMED)]

    async def test_unverified_registrant_204(self, client, session, event, user, auth_as):
        # Changing one's email resets is_verified: the registrant may still give up the seat.
        await register(session, event, user)
        user.is_verified = False
        session.add(user)
        await session.flush()

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(user))

        assert response.status_code == 204
        assert summary(await rows_of(session, event)) == [(user.id, CANCELLED)]
        assert await counters(session, event) == (0, 0)


# --- GET /events/{id}/registrations -----------------------------------------------------------


async def line_up(session: AsyncSession, event: Event) -> list[tuple[Registration, User]]:
    """Two confirmed, two waitlisted and one cancelled registration on a capacity-2 event,
    registered in an order that differs from the order of the list."""
    first_waiting, first_seated, second_seated, gone, second_waiting = await users(session, 5)
    # Seats filled first would put the waitlisted ones behind; register them straight instead.
    registrations = [
        (await register(session, event, first_waiting, WAITLISTED), first_waiting),
        (await register(session, event, first_seated, CONFIRMED), first_seated),
        (await register(session, event, second_seated, CONFIRMED), second_seated),
        (await register(session, event, gone, WAITLISTED), gone),
        (await register(session, event, second_waiting, WAITLISTED), second_waiting),
    ]
    await cancelled(session, event, registrations[3][0])
    return registrations


class TestListEventRegistrations:
    @pytest.fixture
    async def full_event(self, session, manager) -> Event:
        return await create_event(session, owner=manager, capacity=2)

    async def test_creator_200_confirmed_then_waitlist(
        self, client, session, full_event, manager, auth_as
    ):
        lineup = await line_up(session, full_event)
        (w1, w1_user), (c1, c1_user), (c2, c2_user), _, (w2, w2_user) = lineup

        response = await client.get(url(full_event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        body = response.json()
        assert [parsed_attendee(item) for item in body["items"]] == [
            attendee_view(c1, c1_user, None),
            attendee_view(c2, c2_user, None),
            attendee_view(w1, w1_user, 1),
            attendee_view(w2, w2_user, 2),
        ]
        assert (body["total"], body["page"], body["size"], body["pages"]) == (4, 1, 20, 1)

    async def test_no_email_anywhere(self, client, session, full_event, manager, auth_as):
        lineup = await line_up(session, full_event)

        response = await client.get(url(full_event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        assert "email" not in keys_in(response.json())
        for _, attendee in lineup:
            assert attendee.email not in response.text

    async def test_other_manager_200(self, client, session, full_event, auth_as):
        other_manager = await create_user(session, role=UserRole.MANAGER)
        await line_up(session, full_event)

        response = await client.get(url(full_event.id), headers=await auth_as(other_manager))

        assert response.status_code == 200
        assert response.json()["total"] == 4

    async def test_admin_200(self, client, session, full_event, admin, auth_as):
        await line_up(session, full_event)

        response = await client.get(url(full_event.id), headers=await auth_as(admin))

        assert response.status_code == 200
        assert response.json()["total"] == 4

    async def test_empty_200(self, client, event, manager, auth_as):
        response = await client.get(url(event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        assert response.json() == {
            "items": [],
            "total": 0,
            "total_capped": False,
            "page": 1,
            "size": 20,
            "pages": 1,
            "links": {
                "self": f"http://testserver{url(event.id)}?page=1&size=20",
                "first": f"http://testserver{url(event.id)}?page=1&size=20",
                "last": f"http://testserver{url(event.id)}?page=1&size=20",
                "next": None,
                "prev": None,
            },
        }

    async def test_creator_of_pending_event_200(self, client, pending_event, manager, auth_as):
        response = await client.get(url(pending_event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        assert response.json()["items"] == []

    async def test_user_403(self, client, session, full_event, user, auth_as):
        await register(session, full_event, user)

        response = await client.get(url(full_event.id), headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == NOT_EVENT_OWNER

    async def test_user_csv_403(self, client, full_event, user, auth_as):
        response = await client.get(
            url(full_event.id), headers={**await auth_as(user), "Accept": "text/csv"}
        )

        assert response.status_code == 403
        assert response.json() == NOT_EVENT_OWNER

    async def test_user_pending_event_404(self, client, pending_event, user, auth_as):
        response = await client.get(url(pending_event.id), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_anonymous_401(self, client, full_event):
        response = await client.get(url(full_event.id))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"

    async def test_unknown_404(self, client, manager, auth_as):
        response = await client.get(url(uuid.uuid4()), headers=await auth_as(manager))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_status_confirmed(self, client, session, full_event, manager, auth_as):
        lineup = await line_up(session, full_event)

        response = await client.get(
            url(full_event.id), params={"status": "CONFIRMED"}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        body = response.json()
        assert [parsed_attendee(item) for item in body["items"]] == [
            attendee_view(lineup[1][0], lineup[1][1], None),
            attendee_view(lineup[2][0], lineup[2][1], None),
        ]
        assert body["total"] == 2

    async def test_status_waitlisted(self, client, session, full_event, manager, auth_as):
        lineup = await line_up(session, full_event)

        response = await client.get(
            url(full_event.id), params={"status": "WAITLISTED"}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        body = response.json()
        assert [parsed_attendee(item) for item in body["items"]] == [
            attendee_view(lineup[0][0], lineup[0][1], 1),
            attendee_view(lineup[4][0], lineup[4][1], 2),
        ]
        assert body["total"] == 2

    async def test_status_cancelled(self, client, session, full_event, manager, auth_as):
        lineup = await line_up(session, full_event)

        response = await client.get(
            url(full_event.id), params={"status": "CANCELLED"}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        body = response.json()
        assert [parsed_attendee(item) for item in body["items"]] == [
            attendee_view(lineup[3][0], lineup[3][1], None),
        ]
        assert body["items"][0]["cancelled_at"] is not None
        assert body["total"] == 1

    async def test_bad_status_422(self, client, full_event, manager, auth_as):
        response = await client.get(
            url(full_event.id), params={"status": "ATTENDING"}, headers=await auth_as(manager)
        )

        assert response.status_code == 422
        assert [error["loc"] for error in response.json()["detail"]] == [["query", "status"]]

    async def test_pagination(self, client, session, full_event, manager, auth_as):
        lineup = await line_up(session, full_event)
        base = f"http://testserver{url(full_event.id)}"

        response = await client.get(
            url(full_event.id), params={"page": 2, "size": 1}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        body = response.json()
        assert [parsed_attendee(item) for item in body["items"]] == [
            attendee_view(lineup[2][0], lineup[2][1], None)
        ]
        assert (body["total"], body["page"], body["size"], body["pages"]) == (4, 2, 1, 4)
        assert body["links"] == {
            "self": f"{base}?page=2&size=1",
            "first": f"{base}?page=1&size=1",
            "last": f"{base}?page=4&size=1",
            "next": f"{base}?page=3&size=1",
            "prev": f"{base}?page=1&size=1",
        }

    async def test_pagination_keeps_waitlist_positions(
        self, client, session, full_event, manager, auth_as
    ):
        lineup = await line_up(session, full_event)

        response = await client.get(
            url(full_event.id), params={"page": 4, "size": 1}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        body = response.json()
        assert [parsed_attendee(item) for item in body["items"]] == [
            attendee_view(lineup[4][0], lineup[4][1], 2)
        ]
        assert body["links"]["next"] is None

    async def test_page_past_the_end_200_empty(self, client, session, full_event, manager, auth_as):
        await line_up(session, full_event)

        response = await client.get(
            url(full_event.id), params={"page": 9, "size": 1}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        body = response.json()
        assert (body["items"], body["total"], body["page"], body["pages"]) == ([], 4, 9, 4)

    async def test_csv(self, client, session, full_event, manager, auth_as):
        lineup = await line_up(session, full_event)
        (w1, w1_user), (c1, c1_user), (c2, c2_user), _, (w2, w2_user) = lineup
        c1_user.first_name, c1_user.last_name = "Ada", "Lovelace"
        c1_user.is_professional = True
        c1.checked_in_at = api.clock.now()
        session.add_all([c1_user, c1])
        await session.flush()

        response = await client.get(
            url(full_event.id), headers={**await auth_as(manager), "Accept": "text/csv"}
        )

        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        rows = list(csv.reader(io.StringIO(response.text)))
        assert rows == [
            CSV_HEADER,
            [
                str(c1.id),
                "CONFIRMED",
                "",
                str(c1_user.id),
                c1_user.nickname,
                "Ada",
                "Lovelace",
                "true",
                c1.created_at.isoformat(),
                c1.checked_in_at.isoformat(),
            ],
            [
                str(c2.id),
                "CONFIRMED",
                "",
                str(c2_user.id),
                c2_user.nickname,
                "",
                "",
                "false",
                c2.created_at.isoformat(),
                "",
            ],
            [
                str(w1.id),
                "WAITLISTED",
                "1",
                str(w1_user.id),
                w1_user.nickname,
                "",
                "",
                "false",
                w1.created_at.isoformat(),
                "",
            ],
            [
                str(w2.id),
                "WAITLISTED",
                "2",
                str(w2_user.id),
                w2_user.nickname,
                "",
                "",
                "false",
                w2.created_at.isoformat(),
                "",
            ],
        ]

    async def test_csv_has_no_email(self, client, session, full_event, manager, auth_as):
        lineup = await line_up(session, full_event)

        response = await client.get(
            url(full_event.id), headers={**await auth_as(manager), "Accept": "text/csv"}
        )

        assert response.status_code == 200
        assert "email" not in response.text
        for _, attendee in lineup:
            assert attendee.email not in response.text

    async def test_csv_ignores_paging(self, client, session, full_event, manager, auth_as):
        await line_up(session, full_event)

        response = await client.get(
            url(full_event.id),
            params={"size": 1},
            headers={**await auth_as(manager), "Accept": "text/csv"},
        )

        assert response.status_code == 200
        assert len(list(csv.reader(io.StringIO(response.text)))) == 5

    async def test_csv_status_filter(self, client, session, full_event, manager, auth_as):
        lineup = await line_up(session, full_event)
        gone, gone_user = lineup[3]

        response = await client.get(
            url(full_event.id),
            params={"status": "CANCELLED"},
            headers={**await auth_as(manager), "Accept": "text/csv"},
        )

        assert response.status_code == 200
        rows = list(csv.reader(io.StringIO(response.text)))
        assert [(row[0], row[1], row[2], row[3]) for row in rows] == [
            tuple(CSV_HEADER[:4]),
            (str(gone.id), "CANCELLED", "", str(gone_user.id)),
        ]


# --- POST /events/{id}/registrations/{registration_id}/check-in ------------------------------


def check_in_url(event_id: uuid.UUID, registration_id: uuid.UUID) -> str:
    return url(event_id, f"/{registration_id}/check-in")


class TestCheckIn:
    async def _check_in_200(self, client, session, event, staff, auth_as) -> None:
        attendee = await create_user(session)
        registration = await register(session, event, attendee)

        response = await client.post(
            check_in_url(event.id, registration.id), headers=await auth_as(staff)
        )

        assert response.status_code == 200
        await session.refresh(registration)
        assert registration.checked_in_at is not None
        assert parsed_registration(response.json()) == registration_view(registration, None)
        assert response.json()["status"] == "CONFIRMED"

    async def test_creator_200(self, client, session, event, manager, auth_as):
        await self._check_in_200(client, session, event, manager, auth_as)

    async def test_other_manager_200(self, client, session, event, auth_as):
        other_manager = await create_user(session, role=UserRole.MANAGER)
        await self._check_in_200(client, session, event, other_manager, auth_as)

    async def test_admin_200(self, client, session, event, admin, auth_as):
        await self._check_in_200(client, session, event, admin, auth_as)

    async def test_twice_409_says_when(self, client, session, event, manager, user, auth_as):
        registration = await register(session, event, user)
        headers = await auth_as(manager)
        first = await client.post(check_in_url(event.id, registration.id), headers=headers)

        response = await client.post(check_in_url(event.id, registration.id), headers=headers)

        assert first.status_code == 200
        assert response.status_code == 409
        body = response.json()
        first_time = datetime.fromisoformat(first.json()["checked_in_at"])
        assert body == {
            "detail": {
                "code": "ALREADY_CHECKED_IN",
                "reason": "Already checked in",
                "checked_in_at": body["detail"]["checked_in_at"],
            }
        }
        assert datetime.fromisoformat(body["detail"]["checked_in_at"]) == first_time
        await session.refresh(registration)
        assert registration.checked_in_at == first_time

    async def test_waitlisted_409(self, client, session, manager, user, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        await register(session, event, await create_user(session))
        registration = await register(session, event, user)

        response = await client.post(
            check_in_url(event.id, registration.id), headers=await auth_as(manager)
        )

        assert response.status_code == 409
        assert response.json() == {
            "detail": {"code": "NOT_CONFIRMED", "reason": "The registration is WAITLISTED"}
        }
        await session.refresh(registration)
        assert registration.checked_in_at is None

    async def test_cancelled_409(self, client, session, event, manager, user, auth_as):
        registration = await register(session, event, user)
        await cancelled(session, event, registration)

        response = await client.post(
            check_in_url(event.id, registration.id), headers=await auth_as(manager)
        )

        assert response.status_code == 409
        assert response.json() == {
            "detail": {"code": "NOT_CONFIRMED", "reason": "The registration is CANCELLED"}
        }
        await session.refresh(registration)
        assert registration.checked_in_at is None

    async def test_registration_of_another_event_404(
        self, client, session, event, manager, user, auth_as
    ):
        other_event = await create_event(session, owner=manager)
        registration = await register(session, other_event, user)

        response = await client.post(
            check_in_url(event.id, registration.id), headers=await auth_as(manager)
        )

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND
        await session.refresh(registration)
        assert registration.checked_in_at is None

    async def test_unknown_registration_404(self, client, event, manager, auth_as):
        response = await client.post(
            check_in_url(event.id, uuid.uuid4()), headers=await auth_as(manager)
        )

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND

    async def test_unknown_event_404(self, client, session, event, manager, user, auth_as):
        registration = await register(session, event, user)

        response = await client.post(
            check_in_url(uuid.uuid4(), registration.id), headers=await auth_as(manager)
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_user_403(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)

        response = await client.post(
            check_in_url(event.id, registration.id), headers=await auth_as(user)
        )

        assert response.status_code == 403
        assert response.json() == NOT_EVENT_OWNER
        await session.refresh(registration)
        assert registration.checked_in_at is None

    async def test_anonymous_401(self, client, session, event, user):
        registration = await register(session, event, user)

        response = await client.post(check_in_url(event.id, registration.id))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"
        await session.refresh(registration)
        assert registration.checked_in_at is None


# --- GET /users/me/registrations --------------------------------------------------------------

MY_REGISTRATIONS = "/api/v1/users/me/registrations"


async def my_history(
    session: AsyncSession, manager: User, user: User
) -> list[tuple[Registration, Event, int | None]]:
    """Three registrations of `user`, newest first: waitlisted 2nd in line, cancelled, confirmed.

    Their created_at order is the reverse of their arrival order, so the list must sort by time.
    """
    now = api.clock.now()
    confirmed_event = await create_event(session, owner=manager, capacity=5)
    cancelled_event = await create_event(session, owner=manager, capacity=5)
    full_event = await create_event(session, owner=manager, capacity=1)
    others = await users(session, 2)

    confirmed = await register(session, confirmed_event, user)
    gone = await register(session, cancelled_event, user)
    await cancelled(session, cancelled_event, gone)
    await register(session, full_event, others[0])
    await register(session, full_event, others[1])
    waiting = await register(session, full_event, user)
    # Someone else's registration on the same event is not in the caller's list.
    await register(session, confirmed_event, others[0])

    confirmed.created_at = now - timedelta(minutes=1)
    gone.created_at = now - timedelta(minutes=2)
    waiting.created_at = now - timedelta(minutes=3)
    session.add_all([confirmed, gone, waiting])
    await session.flush()
    for event in (confirmed_event, cancelled_event, full_event):
        await session.refresh(event)
    return [
        (confirmed, confirmed_event, None),
        (gone, cancelled_event, None),
        (waiting, full_event, 2),
    ]


class TestListMyRegistrations:
    async def test_anonymous_401(self, client):
        response = await client.get(MY_REGISTRATIONS)

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"

    async def test_newest_first_with_events(self, client, session, manager, user, auth_as):
        history = await my_history(session, manager, user)

        response = await client.get(MY_REGISTRATIONS, headers=await auth_as(user))

        assert response.status_code == 200
        body = response.json()
        assert [parsed_own_registration(item) for item in body["items"]] == [
            own_registration_view(registration, event, position)
            for registration, event, position in history
        ]
        assert (body["total"], body["page"], body["size"], body["pages"]) == (3, 1, 20, 1)

    async def test_includes_cancelled(self, client, session, manager, user, auth_as):
        history = await my_history(session, manager, user)
        gone = history[1][0]

        response = await client.get(MY_REGISTRATIONS, headers=await auth_as(user))

        assert response.status_code == 200
        [item] = [i for i in response.json()["items"] if i["status"] == "CANCELLED"]
        assert item["id"] == str(gone.id)
        assert item["waitlist_position"] is None
        assert datetime.fromisoformat(item["cancelled_at"]) == gone.cancelled_at

    async def test_empty_200(self, client, session, event, user, auth_as):
        await register(session, event, await create_user(session))

        response = await client.get(MY_REGISTRATIONS, headers=await auth_as(user))

        assert response.status_code == 200
        body = response.json()
        assert (body["items"], body["total"], body["pages"]) == ([], 0, 1)

    async def test_unverified_user_200(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)
        user.is_verified = False
        session.add(user)
        await session.flush()

        response = await client.get(MY_REGISTRATIONS, headers=await auth_as(user))

        assert response.status_code == 200
        assert [item["id"] for item in response.json()["items"]] == [str(registration.id)]

    async def test_pagination(self, client, session, manager, user, auth_as):
        history = await my_history(session, manager, user)
        base = f"http://testserver{MY_REGISTRATIONS}"

        response = await client.get(
            MY_REGISTRATIONS, params={"page": 2, "size": 2}, headers=await auth_as(user)
        )

        assert response.status_code == 200
        body = response.json()
        registration, event, position = history[2]
        assert [parsed_own_registration(item) for item in body["items"]] == [
            own_registration_view(registration, event, position)
        ]
        assert (body["total"], body["page"], body["size"], body["pages"]) == (3, 2, 2, 2)
        assert body["links"] == {
            "self": f"{base}?page=2&size=2",
            "first": f"{base}?page=1&size=2",
            "last": f"{base}?page=2&size=2",
            "next": None,
            "prev": f"{base}?page=1&size=2",
        }

    async def test_bad_size_422(self, client, user, auth_as):
        response = await client.get(
            MY_REGISTRATIONS, params={"size": 0}, headers=await auth_as(user)
        )

        assert response.status_code == 422
        assert [error["loc"] for error in response.json()["detail"]] == [["query", "size"]]


# --- DELETE /users/me and DELETE /users/{id} --------------------------------------------------


async def seated_with_line(
    session: AsyncSession, manager: User, leaving: User
) -> tuple[Event, User, User]:
    """A capacity-1 event where `leaving` holds the seat and two wait in line; `leaving` also
    has a cancelled registration elsewhere."""
    event = await create_event(session, owner=manager, capacity=1)
    first, second = await users(session, 2)
    for attendee in (leaving, first, second):
        await register(session, event, attendee)
    elsewhere = await create_event(session, owner=manager)
    await cancelled(session, elsewhere, await register(session, elsewhere, leaving))
    return event, first, second


async def rows_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[Registration]:
    result = await session.scalars(
        select(Registration)
        .where(col(Registration.user_id) == user_id)
        .execution_options(populate_existing=True)
    )
    return list(result.all())


class TestAccountDeletionReleasesSeats:
    async def test_delete_me_promotes_first_waitlisted(
        self, client, session, manager, user, auth_as
    ):
        event, first, second = await seated_with_line(session, manager, user)
        user_id = user.id

        response = await client.delete("/api/v1/users/me", headers=await auth_as(user))

        assert response.status_code == 204
        rows = await rows_of(session, event)
        assert summary(rows) == [(first.id, CONFIRMED), (second.id, WAITLISTED)]
        assert rows[0].promoted_at is not None
        assert await counters(session, event) == (1, 1)
        assert await rows_of_user(session, user_id) == []
        assert await mail_sent(session) == [(first.email, f"You have a seat: {event.title}")]

    async def test_delete_me_waitlist_moves_up(self, client, session, manager, user, auth_as):
        event, _, second = await seated_with_line(session, manager, user)
        await client.delete("/api/v1/users/me", headers=await auth_as(user))

        response = await client.get(MY_REGISTRATIONS, headers=await auth_as(second))

        assert response.status_code == 200
        [item] = response.json()["items"]
        assert (item["event"]["id"], item["status"], item["waitlist_position"]) == (
            str(event.id),
            "WAITLISTED",
            1,
        )

    async def test_delete_me_waitlisted_no_promotion(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated, leaving, last = await users(session, 3)
        for attendee in (seated, leaving, last):
            await register(session, event, attendee)
        leaving_id = leaving.id

        response = await client.delete("/api/v1/users/me", headers=await auth_as(leaving))

        assert response.status_code == 204
        assert summary(await rows_of(session, event)) == [
            (seated.id, CONFIRMED),
            (last.id, WAITLISTED),
        ]
        assert await counters(session, event) == (1, 1)
        assert await rows_of_user(session, leaving_id) == []
        assert await mail_sent(session) == []

    async def test_admin_delete_user_promotes_first_waitlisted(
        self, client, session, manager, admin, user, auth_as
    ):
        event, first, second = await seated_with_line(session, manager, user)
        user_id = user.id

        response = await client.delete(f"/api/v1/users/{user_id}", headers=await auth_as(admin))

        assert response.status_code == 204
        rows = await rows_of(session, event)
        assert summary(rows) == [(first.id, CONFIRMED), (second.id, WAITLISTED)]
        assert rows[0].promoted_at is not None
        assert await counters(session, event) == (1, 1)
        assert await rows_of_user(session, user_id) == []
        assert await mail_sent(session) == [(first.email, f"You have a seat: {event.title}")]

    async def test_refused_delete_keeps_seat(self, client, session, manager, admin, auth_as):
        # The last admin cannot go (409): the seat and the line stay as they were.
        event, first, second = await seated_with_line(session, manager, admin)

        response = await client.delete("/api/v1/users/me", headers=await auth_as(admin))

        assert response.status_code == 409
        assert summary(await rows_of(session, event)) == [
            (admin.id, CONFIRMED),
            (first.id, WAITLISTED),
            (second.id, WAITLISTED),
        ]
        assert await counters(session, event) == (1, 2)
        assert await mail_sent(session) == []
