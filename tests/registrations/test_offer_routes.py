"""The caller's registration of an event and answering a seat offer (API-attendees.md, Waitlist
offers): GET /events/{id}/registrations/me, POST .../me/accept, POST .../me/decline, and DELETE
.../me on an offer; the event's waitlist_mode and offer_hours on create and PATCH."""

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from api.notifications.models import NotificationKind
from tests.events.test_registrations import parse_times, registrant_view
from tests.factories import event_body, queued_mail, register
from tests.registrations.helpers import (
    CANCELLED,
    CONFIRMED,
    EXPIRED,
    OFFER_HOURS,
    OFFERED,
    WAITLISTED,
    Line,
    counters,
    last_outbox_id,
    notices,
    offer_event,
    outbox_since,
    registrations,
    statuses,
    url,
)

pytestmark = pytest.mark.usefixtures("clock")

UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
EVENT_NOT_FOUND = {"detail": "EVENT_NOT_FOUND"}
REGISTRATION_NOT_FOUND = {"detail": "REGISTRATION_NOT_FOUND"}
TIMES = ("created_at", "promoted_at", "checked_in_at", "cancelled_at", "offer_expires_at")


def parsed(body: dict[str, Any]) -> dict[str, Any]:
    return parse_times(body, TIMES)


def own_event_view(registration: Any, position: int | None) -> dict[str, Any]:
    """GET .../registrations/me: the registrant's view, and not in the event's directory
    (tests/networking shows it true)."""
    return {**registrant_view(registration, position), "in_directory": False}


def no_open_offer(reason: str) -> dict[str, Any]:
    return {"detail": {"code": "NO_OPEN_OFFER", "reason": reason}}


def offer_expired(expires_at: datetime) -> dict[str, Any]:
    return {
        "detail": {
            "code": "OFFER_EXPIRED",
            "reason": "The seat offered to you was not accepted in time; you may register again",
            "offer_expires_at": expires_at.isoformat(),
        }
    }


async def with_offer(client, session, manager, auth_as, **fields: Any) -> Line:
    """An OFFER-mode event of one seat whose holder left: waiting[0] holds the offer."""
    line = await offer_event(session, manager, capacity=1, waiting=2, **fields)
    left = await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))
    assert left.status_code == 204
    return line


class TestGetMyEventRegistration:
    async def test_anonymous_401(self, client, event):
        response = await client.get(url(event.id, "/me"))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED

    async def test_never_registered_404(self, client, event, user, auth_as):
        response = await client.get(url(event.id, "/me"), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND

    async def test_unknown_event_404(self, client, user, auth_as):
        response = await client.get(
            url(uuid.UUID(int=0), "/me"),
            headers=await auth_as(user),
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_an_event_the_caller_may_not_see_404(self, client, pending_event, user, auth_as):
        response = await client.get(url(pending_event.id, "/me"), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_confirmed_200_with_its_code(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)

        response = await client.get(url(event.id, "/me"), headers=await auth_as(user))

        assert response.status_code == 200
        assert parsed(response.json()) == own_event_view(registration, None)
        assert response.json()["checkin_code"] == registration.checkin_code

    async def test_waitlisted_200_with_its_place(self, client, session, manager, auth_as):
        line = await offer_event(session, manager, capacity=1, waiting=2)
        second = line.waiting[1]

        response = await client.get(url(line.event.id, "/me"), headers=await auth_as(second))

        assert response.status_code == 200
        row = (await registrations(session, line.event))[2]
        assert parsed(response.json()) == own_event_view(row, 2)

    async def test_offered_200_with_its_deadline(self, client, session, manager, auth_as, clock):
        line = await with_offer(client, session, manager, auth_as)

        response = await client.get(
            url(line.event.id, "/me"), headers=await auth_as(line.waiting[0])
        )

        assert response.status_code == 200
        row = (await registrations(session, line.event))[1]
        assert parsed(response.json()) == own_event_view(row, None)
        assert (response.json()["status"], parsed(response.json())["offer_expires_at"]) == (
            "OFFERED",
            clock.at + timedelta(hours=OFFER_HOURS),
        )

    async def test_the_live_one_rather_than_an_older_ended_one(
        self, client, session, event, user, auth_as
    ):
        old = await register(session, event, user)
        left = await client.delete(url(event.id, "/me"), headers=await auth_as(user))
        assert left.status_code == 204
        again = await client.post(url(event.id), headers=await auth_as(user))
        assert again.status_code == 201

        response = await client.get(url(event.id, "/me"), headers=await auth_as(user))

        assert response.json()["id"] == again.json()["id"] != str(old.id)
        assert response.json()["status"] == "CONFIRMED"

    async def test_else_the_latest_ended_one(self, client, session, event, user, auth_as):
        await register(session, event, user)
        headers = await auth_as(user)
        await client.delete(url(event.id, "/me"), headers=headers)
        await client.post(url(event.id), headers=headers)
        await client.delete(url(event.id, "/me"), headers=headers)
        latest = (await registrations(session, event))[-1]

        response = await client.get(url(event.id, "/me"), headers=headers)

        assert response.status_code == 200
        assert parsed(response.json()) == own_event_view(latest, None)
        assert response.json()["status"] == "CANCELLED"


class TestAcceptOffer:
    async def test_offered_200_confirmed_as_a_promotion(
        self, client, session, manager, auth_as, clock
    ):
        line = await with_offer(client, session, manager, auth_as)
        holder = line.waiting[0]
        clock.advance(hours=1)
        before = await last_outbox_id(session)

        response = await client.post(
            url(line.event.id, "/me/accept"), headers=await auth_as(holder)
        )

        assert response.status_code == 200
        row = (await registrations(session, line.event))[1]
        assert parsed(response.json()) == registrant_view(row, None)
        assert (row.status, row.promoted_at, row.confirmed_at) == (CONFIRMED, clock.at, clock.at)
        assert row.checkin_code is not None
        assert response.json()["checkin_code"] == row.checkin_code
        # The offer's deadline stays on record.
        assert row.offer_expires_at == clock.at - timedelta(hours=1) + timedelta(hours=OFFER_HOURS)
        assert await counters(session, line.event) == (1, 0, 1)
        assert await notices(session, NotificationKind.REGISTRATION_CONFIRMED) == [
            (holder.id, NotificationKind.REGISTRATION_CONFIRMED, {"event_id": str(line.event.id)})
        ]
        assert (holder.email, f"Registration received: {line.event.title}") in [
            (mail.to, mail.subject) for mail in await queued_mail(session)
        ]
        assert await outbox_since(session, before) == [
            ("registration.promoted", str(row.id), "CONFIRMED")
        ]

    async def test_after_the_deadline_an_offer_made_in_time_is_accepted(
        self, client, session, manager, auth_as, clock
    ):
        deadline = clock.at + timedelta(hours=1)
        line = await with_offer(client, session, manager, auth_as, registration_deadline=deadline)
        clock.at = deadline + timedelta(hours=2)

        response = await client.post(
            url(line.event.id, "/me/accept"), headers=await auth_as(line.waiting[0])
        )

        assert response.status_code == 200
        assert response.json()["status"] == "CONFIRMED"

    async def test_already_confirmed_200_unchanged(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)
        before = await last_outbox_id(session)

        response = await client.post(url(event.id, "/me/accept"), headers=await auth_as(user))

        assert response.status_code == 200
        assert parsed(response.json()) == registrant_view(registration, None)
        assert await notices(session, NotificationKind.REGISTRATION_CONFIRMED) == []
        assert await outbox_since(session, before) == []

    async def test_waitlisted_409_no_open_offer(self, client, session, manager, auth_as):
        line = await offer_event(session, manager, capacity=1, waiting=1)

        response = await client.post(
            url(line.event.id, "/me/accept"), headers=await auth_as(line.waiting[0])
        )

        assert response.status_code == 409
        assert response.json() == no_open_offer(
            "You are on the waitlist: no seat is offered to you yet"
        )
        assert await counters(session, line.event) == (1, 0, 1)

    async def test_never_registered_404(self, client, event, user, auth_as):
        response = await client.post(url(event.id, "/me/accept"), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND

    async def test_latest_cancelled_404(self, client, session, event, user, auth_as):
        await register(session, event, user)
        headers = await auth_as(user)
        await client.delete(url(event.id, "/me"), headers=headers)

        response = await client.post(url(event.id, "/me/accept"), headers=headers)

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND

    async def test_lapsed_409_offer_expired_and_the_seat_moves_on(
        self, client, session, manager, auth_as, clock
    ):
        line = await with_offer(client, session, manager, auth_as)
        expires_at = clock.at + timedelta(hours=OFFER_HOURS)
        clock.at = expires_at

        response = await client.post(
            url(line.event.id, "/me/accept"), headers=await auth_as(line.waiting[0])
        )

        assert response.status_code == 409
        assert response.json() == offer_expired(expires_at)
        # Settled before the answer, and kept though the answer is an error.
        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            EXPIRED,
            OFFERED,
        ]
        assert await counters(session, line.event) == (1, 1, 0)

    async def test_unknown_event_404(self, client, user, auth_as):
        response = await client.post(
            url(uuid.UUID(int=0), "/me/accept"),
            headers=await auth_as(user),
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_anonymous_401(self, client, event):
        response = await client.post(url(event.id, "/me/accept"))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestDeclineOffer:
    async def test_offered_200_cancelled_and_the_seat_offered_on(
        self, client, session, manager, auth_as, clock
    ):
        line = await with_offer(client, session, manager, auth_as)
        first, second = line.waiting
        clock.advance(minutes=5)
        before = await last_outbox_id(session)

        response = await client.post(
            url(line.event.id, "/me/decline"), headers=await auth_as(first)
        )

        assert response.status_code == 200
        rows = await registrations(session, line.event)
        assert parsed(response.json()) == registrant_view(rows[1], None)
        assert [row.status for row in rows] == [CANCELLED, CANCELLED, OFFERED]
        assert (rows[1].cancelled_at, rows[1].checkin_code) == (clock.at, None)
        assert rows[2].offer_expires_at == clock.at + timedelta(hours=OFFER_HOURS)
        assert await counters(session, line.event) == (1, 1, 0)
        assert [
            user_id for user_id, _, _ in await notices(session, NotificationKind.WAITLIST_OFFER)
        ] == [
            first.id,
            second.id,
        ]
        assert await outbox_since(session, before) == [
            ("registration.cancelled", str(rows[1].id), "CANCELLED")
        ]

    async def test_delete_me_on_an_offer_declines_it(self, client, session, manager, auth_as):
        line = await with_offer(client, session, manager, auth_as)

        response = await client.delete(
            url(line.event.id, "/me"), headers=await auth_as(line.waiting[0])
        )

        assert response.status_code == 204
        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            CANCELLED,
            OFFERED,
        ]
        assert await counters(session, line.event) == (1, 1, 0)

    @pytest.mark.parametrize("status", [CONFIRMED, WAITLISTED])
    async def test_a_seat_or_a_place_in_line_409_no_open_offer(
        self, client, session, manager, auth_as, status
    ):
        line = await offer_event(session, manager, capacity=1, waiting=1)
        user = line.seated[0] if status is CONFIRMED else line.waiting[0]

        response = await client.post(url(line.event.id, "/me/decline"), headers=await auth_as(user))

        assert response.status_code == 409
        assert response.json() == no_open_offer(
            f"Your registration is {status}, not an offer: give it up with "
            f"DELETE /api/v1/events/{line.event.id}/registrations/me"
        )
        assert await counters(session, line.event) == (1, 0, 1)

    async def test_lapsed_409_offer_expired(self, client, session, manager, auth_as, clock):
        line = await with_offer(client, session, manager, auth_as)
        expires_at = clock.advance(hours=OFFER_HOURS, seconds=30) - timedelta(seconds=30)

        response = await client.post(
            url(line.event.id, "/me/decline"), headers=await auth_as(line.waiting[0])
        )

        assert response.status_code == 409
        assert response.json() == offer_expired(expires_at)

    async def test_never_registered_404(self, client, event, user, auth_as):
        response = await client.post(url(event.id, "/me/decline"), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND


class TestEventFields:
    async def test_create_with_offer_mode(self, client, manager, auth_as):
        response = await client.post(
            "/api/v1/events",
            json=event_body(waitlist_mode="OFFER", offer_hours=48),
            headers=await auth_as(manager),
        )

        assert response.status_code == 201
        body = response.json()
        assert (body["waitlist_mode"], body["offer_hours"], body["offered_count"]) == (
            "OFFER",
            48,
            0,
        )

    async def test_defaults_auto_and_12_hours(self, client, manager, auth_as):
        response = await client.post(
            "/api/v1/events", json=event_body(), headers=await auth_as(manager)
        )

        body = response.json()
        assert (body["waitlist_mode"], body["offer_hours"]) == ("AUTO", 12)

    @pytest.mark.parametrize(
        ("field", "value"),
        [("offer_hours", 0), ("offer_hours", 169), ("offer_hours", None), ("waitlist_mode", "X")],
    )
    async def test_out_of_range_422(self, client, manager, auth_as, field, value):
        response = await client.post(
            "/api/v1/events", json=event_body(**{field: value}), headers=await auth_as(manager)
        )

        assert response.status_code == 422
        assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]

    @pytest.mark.parametrize("hours", [1, 168])
    async def test_patch_offer_hours_at_the_bounds(self, client, session, manager, auth_as, hours):
        line = await offer_event(session, manager)

        response = await client.patch(
            f"/api/v1/events/{line.event.id}",
            json={"offer_hours": hours},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert response.json()["offer_hours"] == hours

    @pytest.mark.parametrize("body", [{"offer_hours": 169}, {"waitlist_mode": None}])
    async def test_patch_bad_values_422(self, client, session, manager, auth_as, body):
        line = await offer_event(session, manager)

        response = await client.patch(
            f"/api/v1/events/{line.event.id}", json=body, headers=await auth_as(manager)
        )

        assert response.status_code == 422

    async def test_offered_count_is_read_only(self, client, session, manager, auth_as):
        line = await offer_event(session, manager)

        response = await client.patch(
            f"/api/v1/events/{line.event.id}",
            json={"offered_count": 5, "title": "Still a workshop"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert response.json()["offered_count"] == 0
        assert await counters(session, line.event) == (1, 0, 2)
