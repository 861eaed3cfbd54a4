"""Each cause of API-integrations.md "Domain events" writes exactly its outbox rows, in its own
transaction, with the data the matching GET shows after the change (compared whole); requests
that change nothing, or fail, write nothing.

The requests run in process, in the test's transaction; the rows are read back in it.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi_users.jwt import generate_jwt
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.events.models import EventStatus
from api.outbox.models import DomainEventType, OutboxEvent
from api.registrations.models import RegistrationStatus
from api.users.models import User
from tests.factories import DEFAULT_PASSWORD, create_event, create_user, event_body, register

AuthAs = Callable[[User], Awaitable[dict[str, str]]]
Rows = list[tuple[str, dict[str, Any]]]
EVENTS = "/api/v1/events"


class Outbox:
    """The rows written since the last look, in id order."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.seen = 0

    async def start(self) -> "Outbox":
        self.seen = int(await self.session.scalar(select(func.max(OutboxEvent.id))) or 0)
        return self

    async def new_rows(self) -> list[OutboxEvent]:
        rows = (
            await self.session.scalars(
                select(OutboxEvent)
                .where(col(OutboxEvent.id) > self.seen)
                .order_by(col(OutboxEvent.id))
            )
        ).all()
        if rows:
            self.seen = rows[-1].id or self.seen
        return list(rows)

    async def written(self) -> Rows:
        return [(str(row.type), row.data) for row in await self.new_rows()]


@pytest.fixture
async def outbox(session: AsyncSession) -> Outbox:
    return await Outbox(session).start()


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def event_view(client: httpx.AsyncClient, headers: dict[str, str], event_id: Any) -> Any:
    return await ok(await client.get(f"{EVENTS}/{event_id}", headers=headers))


async def attendee_view(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    event_id: Any,
    registration_id: Any,
    status: RegistrationStatus,
) -> Any:
    page = await ok(
        await client.get(
            f"{EVENTS}/{event_id}/registrations",
            params={"status": status.value, "size": 100},
            headers=headers,
        )
    )
    (row,) = [item for item in page["items"] if item["id"] == str(registration_id)]
    return row


async def user_view(client: httpx.AsyncClient, headers: dict[str, str], user_id: Any) -> Any:
    return await ok(await client.get(f"/api/v1/users/{user_id}", headers=headers))


# --- events -----------------------------------------------------------------------------------


class TestEventCauses:
    async def test_create(self, client, manager, admin, auth_as: AuthAs, outbox: Outbox):
        created = await ok(
            await client.post(EVENTS, json=event_body(), headers=await auth_as(manager)), 201
        )

        view = await event_view(client, await auth_as(admin), created["id"])
        assert view == created
        assert await outbox.written() == [("event.created", view)]

    async def test_submit(self, client, session, manager, admin, auth_as: AuthAs, outbox: Outbox):
        event = await create_event(session, owner=manager, status=EventStatus.REJECTED)
        headers = await auth_as(manager)

        await ok(await client.post(f"{EVENTS}/{event.id}/submit", headers=headers))

        view = await event_view(client, await auth_as(admin), event.id)
        assert view["status"] == "PENDING"
        assert await outbox.written() == [("event.submitted", view)]

    @pytest.mark.parametrize(
        ("action", "body", "event_type", "status"),
        [
            ("approve", None, "event.published", "PUBLISHED"),
            ("reject", {"feedback": "Add an agenda"}, "event.rejected", "REJECTED"),
        ],
    )
    async def test_review(
        self, client, session, manager, admin, auth_as: AuthAs, outbox: Outbox, action, body,
        event_type, status,
    ):  # fmt: skip
        event = await create_event(session, owner=manager, status=EventStatus.PENDING)
        headers = await auth_as(admin)

        await ok(await client.post(f"{EVENTS}/{event.id}/{action}", json=body, headers=headers))

        view = await event_view(client, headers, event.id)
        assert view["status"] == status
        assert await outbox.written() == [(event_type, view)]

    async def test_patch_changing_a_field(
        self, client, session, manager, auth_as: AuthAs, outbox: Outbox
    ):
        event = await create_event(session, owner=manager)
        headers = await auth_as(manager)

        await ok(await client.patch(f"{EVENTS}/{event.id}", json={"title": "New"}, headers=headers))

        view = await event_view(client, headers, event.id)
        assert view["title"] == "New"
        assert await outbox.written() == [("event.updated", view)]

    async def test_patch_changing_nothing_writes_nothing(
        self, client, session, manager, auth_as: AuthAs, outbox: Outbox
    ):
        event = await create_event(session, owner=manager, title="Same")
        headers = await auth_as(manager)

        path = f"{EVENTS}/{event.id}"
        await ok(await client.patch(path, json={"title": "Same"}, headers=headers))
        await ok(await client.patch(path, json={}, headers=headers))

        assert await outbox.written() == []

    async def test_patch_raising_capacity_promotes(
        self, client, session, manager, auth_as: AuthAs, outbox: Outbox
    ):
        event = await create_event(session, owner=manager, capacity=1)
        await register(session, event, await create_user(session))
        waiting = await register(session, event, await create_user(session))
        assert waiting.status is RegistrationStatus.WAITLISTED
        await outbox.start()
        headers = await auth_as(manager)

        await ok(await client.patch(f"{EVENTS}/{event.id}", json={"capacity": 2}, headers=headers))

        promoted = await attendee_view(
            client, headers, event.id, waiting.id, RegistrationStatus.CONFIRMED
        )
        assert promoted["promoted_at"] is not None
        assert await outbox.written() == [
            ("registration.promoted", promoted),
            ("event.updated", await event_view(client, headers, event.id)),
        ]

    async def test_cancel(self, client, session, manager, auth_as: AuthAs, outbox: Outbox):
        event = await create_event(session, owner=manager, capacity=1)
        seated = await register(session, event, await create_user(session))
        waiting = await register(session, event, await create_user(session))
        await outbox.start()
        headers = await auth_as(manager)

        await ok(
            await client.post(
                f"{EVENTS}/{event.id}/cancel", json={"reason": "Venue closed"}, headers=headers
            )
        )

        cancelled = [
            await attendee_view(client, headers, event.id, r.id, RegistrationStatus.CANCELLED)
            for r in (seated, waiting)
        ]
        rows = await outbox.written()
        assert sorted(rows[:2], key=lambda row: row[1]["id"]) == sorted(
            [("registration.cancelled", view) for view in cancelled],
            key=lambda row: row[1]["id"],
        )
        view = await event_view(client, headers, event.id)
        assert view["status"] == "CANCELLED"
        assert rows[2:] == [("event.cancelled", view)]

    async def test_delete(self, client, session, manager, auth_as: AuthAs, outbox: Outbox):
        event = await create_event(session, owner=manager, status=EventStatus.PENDING)

        await ok(await client.delete(f"{EVENTS}/{event.id}", headers=await auth_as(manager)), 204)

        assert await outbox.written() == [
            ("event.deleted", {"id": str(event.id), "created_by": str(manager.id)})
        ]

    async def test_refused_changes_write_nothing(
        self, client, session, manager, admin, auth_as: AuthAs, outbox: Outbox
    ):
        published = await create_event(session, owner=manager)
        headers = await auth_as(manager)

        for response in (
            await client.post(f"{EVENTS}/{published.id}/submit", headers=headers),  # 409
            await client.delete(f"{EVENTS}/{published.id}", headers=headers),  # 409
            await client.patch(
                f"{EVENTS}/{published.id}", json={"capacity": 0}, headers=headers
            ),  # 422
            await client.patch(
                f"{EVENTS}/{published.id}",
                json={"title": "x"},
                headers={**headers, "If-Match": '"stale"'},
            ),  # 412
            await client.post(f"{EVENTS}/{published.id}/approve", headers=await auth_as(admin)),
        ):
            assert response.status_code in (409, 412, 422), response.text

        assert await outbox.written() == []

    async def test_two_changes_of_one_event_have_rising_ids(
        self, client, session, manager, auth_as: AuthAs, outbox: Outbox
    ):
        event = await create_event(session, owner=manager)
        headers = await auth_as(manager)

        for title in ("First", "Second"):
            await ok(
                await client.patch(f"{EVENTS}/{event.id}", json={"title": title}, headers=headers)
            )

        first, second = await outbox.new_rows()
        assert first.data["title"] == "First"
        assert second.data["title"] == "Second"
        assert first.id is not None
        assert second.id is not None
        assert second.id > first.id


# --- registrations ----------------------------------------------------------------------------


class TestRegistrationCauses:
    @pytest.mark.parametrize(
        ("capacity", "status", "event_type"),
        [
            (5, RegistrationStatus.CONFIRMED, "registration.confirmed"),
            (1, RegistrationStatus.WAITLISTED, "registration.waitlisted"),
        ],
    )
    async def test_register(
        self, client, session, manager, user, auth_as: AuthAs, outbox: Outbox, capacity, status,
        event_type,
    ):  # fmt: skip
        event = await create_event(session, owner=manager, capacity=capacity)
        await register(session, event, await create_user(session))
        await outbox.start()

        created = await ok(
            await client.post(f"{EVENTS}/{event.id}/registrations", headers=await auth_as(user)),
            201,
        )

        view = await attendee_view(client, await auth_as(manager), event.id, created["id"], status)
        assert view["waitlist_position"] == created["waitlist_position"]
        assert await outbox.written() == [(event_type, view)]

    async def test_register_refused_writes_nothing(
        self, client, session, manager, user, auth_as: AuthAs, outbox: Outbox
    ):
        event = await create_event(session, owner=manager)
        await register(session, event, user)
        closed = await create_event(
            session, owner=manager, registration_deadline=clock.now() - timedelta(hours=1)
        )
        await outbox.start()
        headers = await auth_as(user)

        for target in (event, closed):
            response = await client.post(f"{EVENTS}/{target.id}/registrations", headers=headers)
            assert response.status_code == 409, response.text

        assert await outbox.written() == []

    async def test_unregister_promotes_the_next(
        self, client, session, manager, user, auth_as: AuthAs, outbox: Outbox
    ):
        event = await create_event(session, owner=manager, capacity=1)
        seated = await register(session, event, user)
        waiting = await register(session, event, await create_user(session))
        await outbox.start()

        await ok(
            await client.delete(
                f"{EVENTS}/{event.id}/registrations/me", headers=await auth_as(user)
            ),
            204,
        )

        headers = await auth_as(manager)
        assert await outbox.written() == [
            (
                "registration.cancelled",
                await attendee_view(
                    client, headers, event.id, seated.id, RegistrationStatus.CANCELLED
                ),
            ),
            (
                "registration.promoted",
                await attendee_view(
                    client, headers, event.id, waiting.id, RegistrationStatus.CONFIRMED
                ),
            ),
        ]

    async def test_check_in(self, client, session, manager, user, auth_as: AuthAs, outbox: Outbox):
        event = await create_event(session, owner=manager)
        registration = await register(session, event, user)
        await outbox.start()
        headers = await auth_as(manager)
        path = f"{EVENTS}/{event.id}/registrations/{registration.id}/check-in"

        await ok(await client.post(path, headers=headers))
        again = await client.post(path, headers=headers)

        assert again.status_code == 409
        view = await attendee_view(
            client, headers, event.id, registration.id, RegistrationStatus.CONFIRMED
        )
        assert view["checked_in_at"] is not None
        assert await outbox.written() == [("registration.checked_in", view)]

    async def test_account_deletion_cancels_registrations(
        self, client, session, manager, user, auth_as: AuthAs, outbox: Outbox
    ):
        event = await create_event(session, owner=manager)
        registration = await register(session, event, user)
        await outbox.start()

        await ok(await client.delete("/api/v1/users/me", headers=await auth_as(user)), 204)

        rows = await outbox.written()
        assert [event_type for event_type, _ in rows] == [
            "registration.cancelled",
            "user.deleted",
        ]
        # The registration went with the account: its last state is the one announced.
        assert rows[0][1]["id"] == str(registration.id)
        assert rows[0][1]["status"] == "CANCELLED"
        assert rows[0][1]["cancelled_at"] is not None
        assert rows[0][1]["user"]["id"] == str(user.id)
        assert rows[1][1] == {"id": str(user.id)}


# --- users ------------------------------------------------------------------------------------


class TestUserCauses:
    async def test_register(self, client, admin, auth_as: AuthAs, outbox: Outbox):
        email = f"new-{uuid.uuid4().hex[:8]}@example.com"

        created = await ok(
            await client.post(
                "/api/v1/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
            ),
            201,
        )

        view = await user_view(client, await auth_as(admin), created["id"])
        assert await outbox.written() == [("user.created", view)]

    async def test_create_by_admin(self, client, admin, auth_as: AuthAs, outbox: Outbox):
        headers = await auth_as(admin)
        body = {
            "email": f"made-{uuid.uuid4().hex[:8]}@example.com",
            "password": DEFAULT_PASSWORD,
            "role": "MANAGER",
        }

        created = await ok(await client.post("/api/v1/users", json=body, headers=headers), 201)

        assert await outbox.written() == [
            ("user.created", await user_view(client, headers, created["id"]))
        ]

    async def test_patch_me(self, client, user, admin, auth_as: AuthAs, outbox: Outbox):
        headers = await auth_as(user)

        await ok(await client.patch("/api/v1/users/me", json={"bio": "Hello"}, headers=headers))

        view = await user_view(client, await auth_as(admin), user.id)
        assert view["bio"] == "Hello"
        assert await outbox.written() == [("user.updated", view)]

    async def test_email_change(self, client, user, admin, auth_as: AuthAs, outbox: Outbox):
        email = f"moved-{uuid.uuid4().hex[:8]}@example.com"

        await ok(
            await client.patch(
                "/api/v1/users/me", json={"email": email}, headers=await auth_as(user)
            )
        )

        view = await user_view(client, await auth_as(admin), user.id)
        assert (view["email"], view["is_verified"]) == (email, False)
        assert await outbox.written() == [("user.updated", view)]

    async def test_password_change_and_login_write_nothing(
        self, client, user, auth_as: AuthAs, outbox: Outbox
    ):
        new_password = "An0ther-long-passphrase!"
        await ok(
            await client.patch(
                "/api/v1/users/me",
                json={"password": new_password, "current_password": DEFAULT_PASSWORD},
                headers=await auth_as(user),
            )
        )
        await ok(
            await client.post(
                "/api/v1/auth/login", data={"username": user.email, "password": new_password}
            )
        )

        assert await outbox.written() == []

    async def test_verification(
        self, client, unverified_user, admin, auth_as: AuthAs, outbox: Outbox
    ):
        claims = {
            "sub": str(unverified_user.id),
            "email": unverified_user.email,
            "aud": "fastapi-users:verify",
        }
        token = generate_jwt(claims, settings.signing_key, 600)

        await ok(await client.post("/api/v1/auth/verify", json={"token": token}))

        view = await user_view(client, await auth_as(admin), unverified_user.id)
        assert (view["is_verified"], view["role"]) == (True, "AUTHENTICATED")
        assert await outbox.written() == [("user.updated", view)]

    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("PATCH", "", {"first_name": "Ada"}),
            ("PATCH", "", {"is_active": False}),
            ("PUT", "/role", {"role": "MANAGER", "reason": "Runs meetups"}),
            ("PUT", "/professional", {"is_professional": True, "reason": "Checked"}),
        ],
    )
    async def test_staff_changes(
        self, client, user, admin, auth_as: AuthAs, outbox: Outbox, method, suffix, body
    ):
        headers = await auth_as(admin)
        path = f"/api/v1/users/{user.id}{suffix}"

        await ok(await client.request(method, path, json=body, headers=headers))
        await ok(await client.request(method, path, json=body, headers=headers))  # no change

        assert await outbox.written() == [
            ("user.updated", await user_view(client, headers, user.id))
        ]

    async def test_unlock_writes_nothing(self, client, user, admin, auth_as: AuthAs, outbox):
        await ok(await client.post(f"/api/v1/users/{user.id}/unlock", headers=await auth_as(admin)))

        assert await outbox.written() == []

    async def test_delete_by_admin(self, client, user, admin, auth_as: AuthAs, outbox: Outbox):
        await ok(await client.delete(f"/api/v1/users/{user.id}", headers=await auth_as(admin)), 204)

        assert await outbox.written() == [("user.deleted", {"id": str(user.id)})]


# --- many rows at once ------------------------------------------------------------------------


async def test_a_cancelled_event_writes_its_rows_in_a_fixed_number_of_statements(
    client, session: AsyncSession, engine: AsyncEngine, manager: User, auth_as: AuthAs
):
    """No N+1: the registration.cancelled rows of a cancelled event go out together."""
    inserts: list[str] = []

    def count(*args: Any) -> None:
        if args[2].startswith("INSERT INTO outbox_event"):
            inserts.append(args[2])

    async def cancel_with(registrants: int) -> int:
        event = await create_event(session, owner=manager, capacity=registrants + 1)
        for _ in range(registrants):
            await register(session, event, await create_user(session))
        headers = await auth_as(manager)
        inserts.clear()
        await ok(await client.post(f"{EVENTS}/{event.id}/cancel", json={}, headers=headers))
        return len(inserts)

    sa_event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        few, many = await cancel_with(2), await cancel_with(40)
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", count)

    assert few == many
    assert many <= 2  # the registrations' rows, then the event's
    rows = (
        await session.scalars(select(OutboxEvent).order_by(col(OutboxEvent.id).desc()).limit(41))
    ).all()
    assert [row.type for row in rows] == [DomainEventType.EVENT_CANCELLED] + [
        DomainEventType.REGISTRATION_CANCELLED
    ] * 40
