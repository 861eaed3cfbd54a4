"""Check-in codes (API-integrations.md, Check-in codes and tickets): their form, when a
registration holds one, the database's guarantees, and who is shown one (PRIV-1)."""

import csv
import io
import re
import uuid

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.registrations import checkin
from api.registrations.models import Registration, RegistrationStatus
from tests.events.test_registrations import (
    CSV_HEADER,
    attendee_view,
    own_registration_view,
    parsed_attendee,
    parsed_own_registration,
    parsed_registration,
    registrant_view,
    registration_view,
    url,
)
from tests.factories import create_event, create_user, register

CODE = re.compile(r"[0-9ABCDEFGHJKMNPQRSTVWXYZ]{10}")
CONFIRMED = RegistrationStatus.CONFIRMED
WAITLISTED = RegistrationStatus.WAITLISTED
CANCELLED = RegistrationStatus.CANCELLED


async def row_of(session: AsyncSession, registration_id: uuid.UUID | str) -> Registration:
    """The registration as the database has it now."""
    row = await session.scalar(
        select(Registration)
        .where(col(Registration.id) == uuid.UUID(str(registration_id)))
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def own_url(registration_id: uuid.UUID | str, tail: str = "") -> str:
    return f"/api/v1/users/me/registrations/{registration_id}{tail}"


@pytest.fixture
def forced_codes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Codes that checkin.generate() hands out first, in order (then random ones again)."""
    queue: list[str] = []
    random_code = checkin.generate

    def generate() -> str:
        return queue.pop(0) if queue else random_code()

    monkeypatch.setattr(checkin, "generate", generate)
    return queue


class TestForm:
    def test_ten_characters_of_the_alphabet(self):
        codes = [checkin.generate() for _ in range(2000)]

        assert all(CODE.fullmatch(code) for code in codes)
        # 50 random bits: every character of the alphabet turns up in every place.
        assert [{code[i] for code in codes} for i in range(10)] == [set(checkin.ALPHABET)] * 10
        assert len(set(codes)) == len(codes)

    @pytest.mark.parametrize(
        ("typed", "stored"),
        [
            ("7K3M9QX2TD", "7K3M9QX2TD"),
            ("7k3m9qx2td", "7K3M9QX2TD"),
            (" 7K3M9 QX2TD ", "7K3M9QX2TD"),
            ("7K3-M9Q-X2T-D", "7K3M9QX2TD"),
            ("O0IiLl1ABC", "0011111ABC"),
        ],
    )
    def test_typing_variants_read_as_the_code(self, typed, stored):
        assert checkin.normalise(typed) == stored

    @pytest.mark.parametrize(
        "typed", ["", "7K3M9QX2T", "7K3M9QX2TD0", "7K3M9QX2TU", "7K3M9QX2T!", "7K3M9QX2T_D"]
    )
    def test_malformed_is_no_code(self, typed):
        assert checkin.normalise(typed) is None


class TestWhenHeld:
    async def test_confirmed_on_registering(self, client, session, event, user, auth_as):
        response = await client.post(url(event.id), headers=await auth_as(user))

        assert response.status_code == 201
        row = await row_of(session, response.json()["id"])
        assert row.status is CONFIRMED
        assert row.checkin_code is not None
        assert CODE.fullmatch(row.checkin_code)
        assert parsed_registration(response.json()) == registrant_view(row, None)

    async def test_waitlisted_has_none(self, client, session, manager, user, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        await register(session, event, await create_user(session))

        response = await client.post(url(event.id), headers=await auth_as(user))

        assert response.status_code == 201
        row = await row_of(session, response.json()["id"])
        assert (row.status, row.checkin_code) == (WAITLISTED, None)
        assert response.json()["checkin_code"] is None

    async def test_promoted_gets_one(self, client, session, manager, user, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated = await create_user(session)
        await register(session, event, seated)
        waiting = await register(session, event, user)
        assert waiting.checkin_code is None

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(seated))

        assert response.status_code == 204
        row = await row_of(session, waiting.id)
        assert row.status is CONFIRMED
        assert row.checkin_code is not None
        assert CODE.fullmatch(row.checkin_code)

    async def test_promoted_by_a_larger_capacity_gets_one(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        await register(session, event, await create_user(session))
        waiting = await register(session, event, await create_user(session))

        response = await client.patch(
            f"/api/v1/events/{event.id}", json={"capacity": 2}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        row = await row_of(session, waiting.id)
        assert row.status is CONFIRMED
        assert row.checkin_code is not None

    async def test_cleared_on_unregistering(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)
        assert registration.checkin_code is not None

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(user))

        assert response.status_code == 204
        row = await row_of(session, registration.id)
        assert (row.status, row.checkin_code) == (CANCELLED, None)

    async def test_cleared_when_the_event_is_cancelled(
        self, client, session, event, admin, user, auth_as
    ):
        registration = await register(session, event, user)

        response = await client.post(
            f"/api/v1/events/{event.id}/cancel", json={}, headers=await auth_as(admin)
        )

        assert response.status_code == 200
        row = await row_of(session, registration.id)
        assert (row.status, row.checkin_code) == (CANCELLED, None)

    async def test_cleared_on_account_deletion(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)

        response = await client.delete("/api/v1/users/me", headers=await auth_as(user))

        # Released first (CANCELLED, so without its code: the CHECK would refuse it otherwise),
        # then removed with the account.
        assert response.status_code == 204
        assert (
            await session.scalar(
                select(Registration).where(col(Registration.id) == registration.id)
            )
            is None
        )

    async def test_a_new_seat_gets_a_new_code(self, client, session, event, user, auth_as):
        headers = await auth_as(user)
        first = await client.post(url(event.id), headers=headers)
        await client.delete(url(event.id, "/me"), headers=headers)

        again = await client.post(url(event.id), headers=headers)

        assert again.status_code == 201
        assert first.json()["checkin_code"] != again.json()["checkin_code"]
        assert (await row_of(session, first.json()["id"])).checkin_code is None


class TestDatabase:
    async def test_a_duplicate_code_is_refused(self, session, event):
        first = await register(session, event, await create_user(session))
        second = await register(session, event, await create_user(session))

        with pytest.raises(IntegrityError) as raised:
            async with session.begin_nested():
                await session.execute(
                    update(Registration)
                    .where(col(Registration.id) == second.id)
                    .values(checkin_code=first.checkin_code)
                )

        assert "uq_registration_checkin_code" in str(raised.value)

    async def test_many_registrations_without_a_code(self, session, manager):
        event = await create_event(session, owner=manager, capacity=1)
        await register(session, event, await create_user(session))
        waiting = [await register(session, event, await create_user(session)) for _ in range(3)]

        assert [registration.checkin_code for registration in waiting] == [None] * 3

    @pytest.mark.parametrize("status", [WAITLISTED, CANCELLED])
    async def test_a_code_off_a_confirmed_registration_is_refused(self, session, event, status):
        registration = await register(session, event, await create_user(session))

        with pytest.raises(IntegrityError) as raised:
            async with session.begin_nested():
                await session.execute(
                    update(Registration)
                    .where(col(Registration.id) == registration.id)
                    .values(status=status)
                )

        assert "ck_registration_checkin_code_only_confirmed" in str(raised.value)


class TestCollisions:
    """A code already taken never becomes an error: the write is made again with another."""

    async def test_registering(self, client, session, event, user, auth_as, forced_codes):
        taken = await register(session, event, await create_user(session))
        assert taken.checkin_code is not None
        forced_codes.append(taken.checkin_code)

        response = await client.post(url(event.id), headers=await auth_as(user))

        assert response.status_code == 201
        row = await row_of(session, response.json()["id"])
        assert row.checkin_code not in (None, taken.checkin_code)
        assert response.json()["checkin_code"] == row.checkin_code
        assert forced_codes == []
        await session.refresh(event)
        assert (event.registered_count, event.waitlist_count) == (2, 0)

    async def test_promoting(self, client, session, manager, auth_as, forced_codes):
        event = await create_event(session, owner=manager, capacity=1)
        seated_user = await create_user(session)
        seated = await register(session, event, seated_user)
        waiting = await register(session, event, await create_user(session))
        elsewhere = await register(
            session, await create_event(session, owner=manager), await create_user(session)
        )
        assert elsewhere.checkin_code is not None
        forced_codes.append(elsewhere.checkin_code)

        response = await client.delete(url(event.id, "/me"), headers=await auth_as(seated_user))

        assert response.status_code == 204
        row = await row_of(session, waiting.id)
        assert row.status is CONFIRMED
        assert row.checkin_code not in (None, elsewhere.checkin_code)
        assert forced_codes == []
        assert (await row_of(session, seated.id)).status is CANCELLED
        await session.refresh(event)
        assert (event.registered_count, event.waitlist_count) == (1, 0)


@pytest.mark.security("PRIV-1")
class TestShownToTheRegistrantAlone:
    async def test_post_registration(self, client, session, event, user, auth_as):
        response = await client.post(url(event.id), headers=await auth_as(user))

        assert response.status_code == 201
        row = await row_of(session, response.json()["id"])
        assert response.json()["checkin_code"] == row.checkin_code
        assert parsed_registration(response.json()) == registrant_view(row, None)

    async def test_my_registrations(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)

        response = await client.get("/api/v1/users/me/registrations", headers=await auth_as(user))

        assert response.status_code == 200
        [item] = response.json()["items"]
        assert item["checkin_code"] == registration.checkin_code
        assert parsed_own_registration(item) == own_registration_view(registration, event, None)

    async def test_my_registration(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)

        response = await client.get(own_url(registration.id), headers=await auth_as(user))

        assert response.status_code == 200
        assert response.json()["checkin_code"] == registration.checkin_code
        assert parsed_own_registration(response.json()) == own_registration_view(
            registration, event, None
        )

    async def test_not_in_the_attendee_list(self, client, session, event, manager, user, auth_as):
        registration = await register(session, event, user)

        response = await client.get(url(event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        [item] = response.json()["items"]
        assert parsed_attendee(item) == attendee_view(registration, user, None)
        assert "checkin_code" not in item
        assert str(registration.checkin_code) not in response.text

    async def test_not_in_the_csv(self, client, session, event, manager, user, auth_as):
        registration = await register(session, event, user)

        response = await client.get(
            url(event.id), headers={**await auth_as(manager), "Accept": "text/csv"}
        )

        assert response.status_code == 200
        rows = list(csv.reader(io.StringIO(response.text)))
        assert rows[0] == CSV_HEADER
        assert [row[:2] for row in rows[1:]] == [[str(registration.id), "CONFIRMED"]]
        assert str(registration.checkin_code) not in response.text

    async def test_not_in_the_check_in_answer(self, client, session, event, manager, user, auth_as):
        registration = await register(session, event, user)

        response = await client.post(
            url(event.id, f"/{registration.id}/check-in"), headers=await auth_as(manager)
        )

        assert response.status_code == 200
        row = await row_of(session, registration.id)
        assert parsed_registration(response.json()) == registration_view(row, None)
        assert str(registration.checkin_code) not in response.text

    async def test_not_in_the_check_in_by_code_answer(
        self, client, session, event, manager, user, auth_as
    ):
        registration = await register(session, event, user)

        response = await client.post(
            f"/api/v1/events/{event.id}/check-in",
            json={"code": registration.checkin_code},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        row = await row_of(session, registration.id)
        assert parsed_attendee(response.json()) == attendee_view(row, user, None)
        assert str(registration.checkin_code) not in response.text

    async def test_in_the_export(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)

        response = await client.get("/api/v1/users/me/export", headers=await auth_as(user))

        assert response.status_code == 200
        [item] = response.json()["registrations"]
        assert item["checkin_code"] == registration.checkin_code
