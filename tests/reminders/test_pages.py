"""The "can't come" link of a reminder mail (API-attendees.md, Reminders): GET /cant-come shows a
confirmation form and changes nothing; its POST gives the seat up as DELETE
/events/{id}/registrations/me does; a bad, expired or used link is a 400 page."""

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

import api.clock
from api.config import settings
from api.events.models import Event, WaitlistMode
from api.notifications.models import Notification, NotificationKind
from api.outbox.models import DomainEventType, OutboxEvent
from api.registrations.models import Registration, RegistrationStatus
from api.reminders import cant_come
from api.reminders.service import send_due_reminders
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, register
from tests.registrations.helpers import last_outbox_id
from tests.reminders.conftest import NOW, Clock, delete_committed, mailed_tokens
from tests.users.test_pages import assert_page, hidden_token

PATH = "/cant-come"
BAD_LINK = "The can't-come link is invalid, expired or already used."
STARTS = NOW + timedelta(hours=3)
TITLE = "Portfolio review"


@dataclass
class Reminded:
    """A full published event (capacity 1) 3 hours ahead: `attendee` holds the seat and was
    reminded, `waiting` is first in line."""

    event: Event
    attendee: User
    registration: Registration
    waiting: User
    waiting_registration: Registration
    token: str


@pytest.fixture
async def reminded(session: AsyncSession, manager: User, frozen: Clock) -> Reminded:
    starts_at = frozen.now + timedelta(hours=3)
    event = await create_event(
        session,
        owner=manager,
        title=TITLE,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        capacity=1,
    )
    attendee, waiting = await create_user(session), await create_user(session)
    registration = await register(session, event, attendee, RegistrationStatus.CONFIRMED)
    waiting_registration = await register(session, event, waiting, RegistrationStatus.WAITLISTED)
    assert await send_due_reminders(session) == 1
    [token] = await mailed_tokens(session, attendee.email)
    return Reminded(event, attendee, registration, waiting, waiting_registration, token)


async def state(session: AsyncSession, world: Reminded) -> tuple[object, ...]:
    """(attendee's status, waiting's status, registered_count, waitlist_count), as stored."""
    for row in (world.registration, world.waiting_registration, world.event):
        await session.refresh(row)
    return (
        world.registration.status,
        world.waiting_registration.status,
        world.event.registered_count,
        world.event.waitlist_count,
    )


UNCHANGED = (RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED, 1, 1)
RELEASED = (RegistrationStatus.CANCELLED, RegistrationStatus.CONFIRMED, 1, 0)


def assert_bad_link(response: httpx.Response) -> None:
    page = assert_page(response, 400, "This link does not work", BAD_LINK)
    assert "<form" not in page


def tampered_payload(token: str, **claims: object) -> str:
    """The token with claims changed in its payload, the signature kept."""
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps({**data, **claims}).encode()).rstrip(b"=")
    return f"{header}.{changed.decode()}.{signature}"


def signed(**claims: object) -> str:
    """A token signed with the service's own key."""
    return jwt.encode(claims, settings.signing_key, algorithm="HS256")


class TestCantComePage:
    async def test_200_form_changes_nothing(self, client, session, reminded):
        response = await client.get(PATH, params={"token": reminded.token})

        page = assert_page(response, 200, "Can't come?", TITLE, "Tue 04 Mar 2031, 12:00")
        assert hidden_token(reminded.token) in page
        assert '<form method="post" action="/cant-come">' in page
        assert "<script" not in page.lower()
        # Showing the form gives nothing up: mail scanners prefetch links.
        assert await state(session, reminded) == UNCHANGED

    async def test_not_in_the_openapi_document(self, client):
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert PATH not in paths

    async def test_no_token_400(self, client):
        assert_bad_link(await client.get(PATH))

    @pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 60_000, "eyJ.eyJ.é"])
    async def test_garbage_400(self, client, session, reminded, token):
        assert_bad_link(await client.get(PATH, params={"token": token}))
        assert await state(session, reminded) == UNCHANGED

    async def test_tampered_signature_400(self, client, reminded):
        header, payload, signature = reminded.token.split(".")
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        assert_bad_link(await client.get(PATH, params={"token": f"{header}.{payload}.{flipped}"}))

    async def test_tampered_payload_400(self, client, reminded):
        other = tampered_payload(reminded.token, sub=str(reminded.waiting_registration.id))
        assert_bad_link(await client.get(PATH, params={"token": other}))

    async def test_expired_400(self, client, reminded, frozen):
        frozen.now = STARTS
        assert_bad_link(await client.get(PATH, params={"token": reminded.token}))

    async def test_used_400(self, client, reminded):
        assert (await client.post(PATH, data={"token": reminded.token})).status_code == 200
        response = await client.get(PATH, params={"token": reminded.token})
        assert_bad_link(response)
        assert reminded.token not in response.text


class TestCantComeSubmit:
    async def test_200_releases_the_seat_to_the_waitlist(self, client, session, reminded):
        response = await client.post(PATH, data={"token": reminded.token})

        page = assert_page(response, 200, "Registration cancelled", f'"{TITLE}"')
        assert "<script" not in page.lower()
        assert await state(session, reminded) == RELEASED
        assert reminded.registration.cancelled_at == NOW
        assert reminded.registration.checkin_code is None
        promoted = await session.scalars(
            select(col(Notification.user_id)).where(
                col(Notification.kind) == NotificationKind.WAITLIST_PROMOTED
            )
        )
        assert promoted.all() == [reminded.waiting.id]

    async def test_in_offer_mode_the_seat_is_offered_on(self, client, session, reminded):
        """The link frees the seat as unregistering does: in OFFER mode, an offer to the next."""
        reminded.event.waitlist_mode = WaitlistMode.OFFER
        reminded.event.offer_hours = 12
        session.add(reminded.event)
        await session.flush()

        response = await client.post(PATH, data={"token": reminded.token})

        assert response.status_code == 200
        assert await state(session, reminded) == (
            RegistrationStatus.CANCELLED,
            RegistrationStatus.OFFERED,
            1,
            0,
        )
        # Capped at the start, 3 hours ahead.
        assert reminded.waiting_registration.offer_expires_at == reminded.event.starts_at
        offered = await session.scalars(
            select(col(Notification.user_id)).where(
                col(Notification.kind) == NotificationKind.WAITLIST_OFFER
            )
        )
        assert offered.all() == [reminded.waiting.id]

    async def test_domain_events_as_unregistering(self, client, session, reminded):
        """What DELETE /events/{id}/registrations/me announces, in the same order."""
        # Only this test's rows: the real-server tests commit theirs.
        before = await last_outbox_id(session)
        await client.post(PATH, data={"token": reminded.token})

        rows = await session.execute(
            select(col(OutboxEvent.type), col(OutboxEvent.data))
            .where(col(OutboxEvent.id) > before)
            .order_by(col(OutboxEvent.id))
        )
        assert [(kind, data["id"], data["status"]) for kind, data in rows] == [
            (DomainEventType.REGISTRATION_CANCELLED, str(reminded.registration.id), "CANCELLED"),
            (
                DomainEventType.REGISTRATION_PROMOTED,
                str(reminded.waiting_registration.id),
                "CONFIRMED",
            ),
        ]

    async def test_second_post_400(self, client, session, reminded):
        assert (await client.post(PATH, data={"token": reminded.token})).status_code == 200

        assert_bad_link(await client.post(PATH, data={"token": reminded.token}))
        assert await state(session, reminded) == RELEASED

    async def test_expired_400(self, client, session, reminded, frozen):
        frozen.now = STARTS
        assert_bad_link(await client.post(PATH, data={"token": reminded.token}))
        assert await state(session, reminded) == UNCHANGED

    async def test_event_moved_earlier_and_started_400(self, client, session, reminded):
        reminded.event.starts_at = NOW - timedelta(minutes=1)
        session.add(reminded.event)
        await session.flush()
        assert_bad_link(await client.post(PATH, data={"token": reminded.token}))
        assert await state(session, reminded) == UNCHANGED

    async def test_tampered_400(self, client, session, reminded):
        header, payload, signature = reminded.token.split(".")
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        assert_bad_link(await client.post(PATH, data={"token": f"{header}.{payload}.{flipped}"}))
        other = tampered_payload(reminded.token, sub=str(reminded.waiting_registration.id))
        assert_bad_link(await client.post(PATH, data={"token": other}))
        assert await state(session, reminded) == UNCHANGED

    @pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 500_000])
    async def test_garbage_400(self, client, session, reminded, token):
        assert_bad_link(await client.post(PATH, data={"token": token}))
        assert await state(session, reminded) == UNCHANGED

    async def test_missing_token_400(self, client):
        assert_bad_link(await client.post(PATH, data={}))

    async def test_json_body_400(self, client, reminded):
        assert_bad_link(await client.post(PATH, json={"token": reminded.token}))

    async def test_other_audience_400(self, client, session, reminded):
        """A verification token, signed with the same key, is no can't-come token."""
        token = signed(
            sub=str(reminded.registration.id),
            aud="fastapi-users:verify",
            exp=int((STARTS + timedelta(days=1)).timestamp()),
            seat="0" * 32,
        )
        assert_bad_link(await client.post(PATH, data={"token": token}))
        assert await state(session, reminded) == UNCHANGED

    async def test_foreign_key_400(self, client, session, reminded):
        data = jwt.decode(reminded.token, options={"verify_signature": False})
        forged = jwt.encode(data, "not the service's key at all, 32+ chars", algorithm="HS256")
        assert_bad_link(await client.post(PATH, data={"token": forged}))
        assert await state(session, reminded) == UNCHANGED

    async def test_re_registration_is_not_released_by_the_old_link(
        self, client, session, reminded, auth_as
    ):
        """A link names one registration: cancelled through the API and made again (with a seat
        again), the new registration is out of the old link's reach."""
        reminded.event.capacity = 3
        session.add(reminded.event)
        headers = await auth_as(reminded.attendee)
        url = f"/api/v1/events/{reminded.event.id}/registrations"
        assert (await client.delete(f"{url}/me", headers=headers)).status_code == 204
        again = await client.post(url, headers=headers)
        assert again.json()["status"] == "CONFIRMED"

        assert_bad_link(await client.post(PATH, data={"token": reminded.token}))
        live = await session.scalars(
            select(col(Registration.status)).where(
                col(Registration.user_id) == reminded.attendee.id,
                col(Registration.id) != reminded.registration.id,
            )
        )
        assert live.all() == [RegistrationStatus.CONFIRMED]


@pytest.mark.usefixtures("frozen", "two_offsets")
class TestOneLinkPerReminder:
    async def test_each_reminder_its_own_link_and_one_use_ends_both(
        self, client, session, manager, frozen
    ):
        event = await create_event(
            session,
            owner=manager,
            starts_at=NOW + timedelta(hours=20),
            ends_at=NOW + timedelta(hours=22),
        )
        attendee = await create_user(session)
        registration = await register(session, event, attendee, RegistrationStatus.CONFIRMED)
        assert await send_due_reminders(session) == 1
        frozen.advance(hours=19)
        assert await send_due_reminders(session) == 1
        first, second = await mailed_tokens(session, attendee.email)
        assert first != second
        assert (await client.get(PATH, params={"token": first})).status_code == 200

        assert (await client.post(PATH, data={"token": second})).status_code == 200

        assert_bad_link(await client.post(PATH, data={"token": first}))
        await session.refresh(registration)
        assert registration.status is RegistrationStatus.CANCELLED


# --- two posts of one link at once, against committed data ---------------------------------------

LATER = datetime(2032, 7, 1, 9, 0, tzinfo=UTC)


@dataclass
class CommittedSeat:
    event_id: uuid.UUID
    registration_id: uuid.UUID
    token: str


@pytest.fixture
async def committed_seat(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[CommittedSeat]:
    now = LATER
    monkeypatch.setattr(api.clock, "now", lambda: now)
    prefix = f"cant-come-{uuid.uuid4().hex[:10]}"
    async with AsyncSession(engine, expire_on_commit=False) as session:
        owner = await create_user(
            session, role=UserRole.MANAGER, email=f"{prefix}-owner@example.com"
        )
        event = await create_event(
            session,
            owner=owner,
            starts_at=now + timedelta(hours=3),
            ends_at=now + timedelta(hours=5),
        )
        attendee = await create_user(session, email=f"{prefix}-attendee@example.com")
        registration = await register(session, event, attendee, RegistrationStatus.CONFIRMED)
        token = cant_come.issue_token(registration, starts_at=event.starts_at, hours_before=24)
        await session.commit()
    try:
        yield CommittedSeat(event.id, registration.id, token)
    finally:
        await delete_committed(engine, prefix, event.id)


class TestConcurrentPosts:
    async def test_two_posts_of_one_link_release_once(self, engine, committed_seat):
        first_released = asyncio.Event()
        second_started = asyncio.Event()

        async def first() -> bool:
            async with AsyncSession(engine) as session:
                await cant_come.give_up_seat(session, committed_seat.token)
                first_released.set()
                await second_started.wait()
                await asyncio.sleep(0.2)  # the second now waits for the event's row lock
                await session.commit()
                return True

        async def second() -> bool:
            await first_released.wait()
            async with AsyncSession(engine) as session:
                await session.execute(select(1))
                second_started.set()
                try:
                    await cant_come.give_up_seat(session, committed_seat.token)
                except cant_come.InvalidLink:
                    return False
                await session.commit()
                return True

        assert list(await asyncio.gather(first(), second())) == [True, False]
        async with AsyncSession(engine) as session:
            event = await session.get(Event, committed_seat.event_id)
            registration = await session.get(Registration, committed_seat.registration_id)
            assert event is not None
            assert registration is not None
            assert (registration.status, event.registered_count) == (
                RegistrationStatus.CANCELLED,
                0,
            )
