"""API-attendees.md, Waitlist offers: in OFFER mode each freed seat is offered to the head of the
line (unregister, capacity raised, account deleted), with WAITLIST_OFFER; no offer once the event
has started or its deadline has passed; the counters, the attendee list and check-in with offers.
"""

from datetime import datetime, timedelta

import pytest

from api.events.models import WaitlistMode
from api.notifications.models import NotificationKind
from tests.factories import create_user, queued_mail
from tests.registrations.helpers import (
    CANCELLED,
    CONFIRMED,
    OFFER_HOURS,
    OFFERED,
    WAITLISTED,
    counted_rows,
    counters,
    last_outbox_id,
    notices,
    offer_event,
    outbox_since,
    registrations,
    statuses,
    url,
)

# Every test runs on a clock the test holds still (and moves).
pytestmark = pytest.mark.usefixtures("clock")

OFFER = NotificationKind.WAITLIST_OFFER
PROMOTED = NotificationKind.WAITLIST_PROMOTED


class TestOfferOnUnregister:
    async def test_the_head_of_the_line_is_offered_the_seat(
        self, client, session, manager, auth_as, clock
    ):
        line = await offer_event(session, manager, capacity=1, waiting=2)
        first, second = line.waiting
        before = await last_outbox_id(session)

        response = await client.delete(
            url(line.event.id, "/me"), headers=await auth_as(line.seated[0])
        )

        assert response.status_code == 204
        rows = await registrations(session, line.event)
        assert [(row.user_id, row.status) for row in rows] == [
            (line.seated[0].id, CANCELLED),
            (first.id, OFFERED),
            (second.id, WAITLISTED),
        ]
        offered = rows[1]
        expires_at = clock.at + timedelta(hours=OFFER_HOURS)
        assert offered.offer_expires_at == expires_at
        assert (offered.promoted_at, offered.confirmed_at, offered.checkin_code) == (
            None,
            None,
            None,
        )
        assert await counters(session, line.event) == (1, 1, 1)
        assert await counted_rows(session, line.event) == (1, 1, 1)
        assert await notices(session, OFFER, PROMOTED) == [
            (
                first.id,
                OFFER,
                {
                    "event_id": str(line.event.id),
                    "registration_id": str(offered.id),
                    "offer_expires_at": expires_at.isoformat(),
                },
            )
        ]
        subject = f"A seat is offered to you: {line.event.title}"
        assert [(mail.to, mail.subject) for mail in await queued_mail(session)] == [
            (first.email, subject)
        ]
        # The offer itself is no domain event: only the cancellation is announced.
        assert await outbox_since(session, before) == [
            ("registration.cancelled", str(rows[0].id), "CANCELLED")
        ]

    async def test_the_event_shows_the_offer_holding_its_seat(
        self, client, session, manager, auth_as
    ):
        line = await offer_event(session, manager, capacity=2, waiting=3)
        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))

        response = await client.get(f"/api/v1/events/{line.event.id}")

        body = response.json()
        assert (
            body["waitlist_mode"],
            body["offer_hours"],
            body["registered_count"],
            body["offered_count"],
            body["waitlist_count"],
            body["spots_left"],
        ) == ("OFFER", OFFER_HOURS, 2, 1, 2, 0)

    async def test_the_offer_ends_at_the_start_at_the_latest(
        self, client, session, manager, auth_as, clock
    ):
        starts_at = clock.at + timedelta(hours=3)
        line = await offer_event(
            session, manager, starts_at=starts_at, ends_at=starts_at + timedelta(hours=1)
        )

        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))

        rows = await registrations(session, line.event)
        assert (rows[1].status, rows[1].offer_expires_at) == (OFFERED, starts_at)

    async def test_a_waitlisted_registrant_leaving_frees_no_seat(
        self, client, session, manager, auth_as
    ):
        line = await offer_event(session, manager, capacity=1, waiting=2)

        response = await client.delete(
            url(line.event.id, "/me"), headers=await auth_as(line.waiting[0])
        )

        assert response.status_code == 204
        assert [status for _, status in await statuses(session, line.event)] == [
            CONFIRMED,
            CANCELLED,
            WAITLISTED,
        ]
        assert await counters(session, line.event) == (1, 0, 1)
        assert await notices(session, OFFER) == []

    async def test_auto_mode_promotes_at_once_as_before(
        self, client, session, manager, auth_as, clock
    ):
        line = await offer_event(session, manager, waitlist_mode=WaitlistMode.AUTO)

        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))

        rows = await registrations(session, line.event)
        assert [row.status for row in rows] == [CANCELLED, CONFIRMED, WAITLISTED]
        assert (rows[1].promoted_at, rows[1].offer_expires_at) == (clock.at, None)
        assert await counters(session, line.event) == (1, 0, 1)
        assert [kind for _, kind, _ in await notices(session, OFFER, PROMOTED)] == [PROMOTED]


class TestNoOfferOnceClosed:
    async def test_after_the_deadline_the_seat_stays_free_and_nobody_is_told(
        self, client, session, manager, auth_as, clock
    ):
        line = await offer_event(
            session, manager, registration_deadline=clock.at + timedelta(hours=1)
        )
        clock.advance(hours=1, seconds=1)

        response = await client.delete(
            url(line.event.id, "/me"), headers=await auth_as(line.seated[0])
        )

        assert response.status_code == 204
        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            WAITLISTED,
            WAITLISTED,
        ]
        assert await counters(session, line.event) == (0, 0, 2)
        assert await notices(session, OFFER, PROMOTED) == []
        assert await queued_mail(session) == []

    async def test_at_the_deadline_itself_an_offer_is_still_made(
        self, client, session, manager, auth_as, clock
    ):
        deadline = clock.at + timedelta(hours=1)
        line = await offer_event(session, manager, registration_deadline=deadline)
        clock.at = deadline

        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))

        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            OFFERED,
            WAITLISTED,
        ]

    async def test_after_the_start_no_offer(self, client, session, manager, auth_as, clock):
        line = await offer_event(session, manager)
        clock.at = line.event.starts_at + timedelta(minutes=1)

        response = await client.delete(
            url(line.event.id, "/me"), headers=await auth_as(line.seated[0])
        )

        assert response.status_code == 204
        assert await counters(session, line.event) == (0, 0, 2)
        assert await notices(session, OFFER) == []


class TestOtherCausesOfAFreeSeat:
    async def test_capacity_raised_offers_each_new_seat_in_line_order(
        self, client, session, manager, auth_as
    ):
        line = await offer_event(session, manager, capacity=1, waiting=3)

        response = await client.patch(
            f"/api/v1/events/{line.event.id}", json={"capacity": 3}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        assert (response.json()["registered_count"], response.json()["offered_count"]) == (3, 2)
        assert [status for _, status in await statuses(session, line.event)] == [
            CONFIRMED,
            OFFERED,
            OFFERED,
            WAITLISTED,
        ]
        rows = await registrations(session, line.event)
        # One notice each (raised in one statement: their order is not kept).
        assert {
            user_id: data["registration_id"] for user_id, _, data in await notices(session, OFFER)
        } == {
            line.waiting[0].id: str(rows[1].id),
            line.waiting[1].id: str(rows[2].id),
        }
        assert len(await notices(session, OFFER)) == 2

    async def test_account_deleted_offers_its_seat(self, client, session, manager, auth_as):
        line = await offer_event(session, manager)
        leaving = line.seated[0]

        response = await client.delete("/api/v1/users/me", headers=await auth_as(leaving))

        assert response.status_code == 204
        assert [status for _, status in await statuses(session, line.event)] == [
            OFFERED,
            WAITLISTED,
        ]
        assert await counters(session, line.event) == (1, 1, 1)
        assert [user_id for user_id, _, _ in await notices(session, OFFER)] == [line.waiting[0].id]

    async def test_event_cancelled_cancels_open_offers_too(self, client, session, manager, auth_as):
        line = await offer_event(session, manager)
        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))

        response = await client.post(
            f"/api/v1/events/{line.event.id}/cancel", json={}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        assert (
            response.json()["registered_count"],
            response.json()["offered_count"],
            response.json()["waitlist_count"],
        ) == (0, 0, 0)
        assert [status for _, status in await statuses(session, line.event)] == [CANCELLED] * 3
        # The offered registrant hears of it, as every live registrant does.
        told = await notices(session, NotificationKind.EVENT_CANCELLED)
        assert {user_id for user_id, _, _ in told} == {line.waiting[0].id, line.waiting[1].id}


class TestAttendeeList:
    async def test_default_shows_the_live_ones_seats_then_offers_then_the_line(
        self, client, session, manager, auth_as, clock
    ):
        line = await offer_event(session, manager, capacity=2, waiting=3)
        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))

        response = await client.get(url(line.event.id), headers=await auth_as(manager))

        assert response.status_code == 200
        items = response.json()["items"]
        assert [
            (item["user"]["id"], item["status"], item["waitlist_position"]) for item in items
        ] == [
            (str(line.seated[1].id), "CONFIRMED", None),
            (str(line.waiting[0].id), "OFFERED", None),
            (str(line.waiting[1].id), "WAITLISTED", 1),
            (str(line.waiting[2].id), "WAITLISTED", 2),
        ]
        expires_at = clock.at + timedelta(hours=OFFER_HOURS)
        assert [
            item["offer_expires_at"] and datetime.fromisoformat(item["offer_expires_at"])
            for item in items
        ] == [None, expires_at, None, None]

    async def test_status_filter_takes_each_of_the_five(self, client, session, manager, auth_as):
        line = await offer_event(session, manager, capacity=1, waiting=1)
        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))
        headers = await auth_as(manager)

        found = {
            status: [
                item["user"]["id"]
                for item in (
                    await client.get(url(line.event.id), params={"status": status}, headers=headers)
                ).json()["items"]
            ]
            for status in ("CONFIRMED", "OFFERED", "WAITLISTED", "CANCELLED", "EXPIRED")
        }

        assert found == {
            "CONFIRMED": [],
            "OFFERED": [str(line.waiting[0].id)],
            "WAITLISTED": [],
            "CANCELLED": [str(line.seated[0].id)],
            "EXPIRED": [],
        }

    async def test_unknown_status_422(self, client, manager, auth_as, event):
        response = await client.get(
            url(event.id), params={"status": "LAPSED"}, headers=await auth_as(manager)
        )

        assert response.status_code == 422


class TestCheckIn:
    async def test_an_offer_is_not_confirmed_409(self, client, session, manager, auth_as):
        line = await offer_event(session, manager)
        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))
        offered = (await registrations(session, line.event))[1]

        response = await client.post(
            url(line.event.id, f"/{offered.id}/check-in"), headers=await auth_as(manager)
        )

        assert response.status_code == 409
        assert response.json() == {
            "detail": {"code": "NOT_CONFIRMED", "reason": "The registration is OFFERED"}
        }
        assert (await registrations(session, line.event))[1].checked_in_at is None


class TestCounts:
    async def test_counters_match_the_rows_through_every_change(
        self, client, session, manager, auth_as
    ):
        line = await offer_event(session, manager, capacity=3, waiting=4)
        newcomer = await create_user(session)
        steps = [
            ("delete", line.seated[0], (3, 1, 3)),
            ("delete", line.seated[1], (3, 2, 2)),
            ("accept", line.waiting[0], (3, 1, 2)),
            ("decline", line.waiting[1], (3, 1, 1)),
            ("register", newcomer, (3, 1, 2)),
            ("delete", line.waiting[3], (3, 1, 1)),
        ]
        for action, user, expected in steps:
            headers = await auth_as(user)
            if action == "delete":
                response = await client.delete(url(line.event.id, "/me"), headers=headers)
            elif action == "register":
                response = await client.post(url(line.event.id), headers=headers)
            else:
                response = await client.post(url(line.event.id, f"/me/{action}"), headers=headers)
            assert response.status_code in (200, 201, 204), (action, response.text)
            assert await counters(session, line.event) == expected, action
            assert await counted_rows(session, line.event) == expected, action
            shown = (await client.get(f"/api/v1/events/{line.event.id}")).json()
            assert (
                shown["registered_count"],
                shown["offered_count"],
                shown["waitlist_count"],
                shown["spots_left"],
            ) == (*expected, 3 - expected[0])

    async def test_the_line_moves_up_with_each_offer(self, client, session, manager, auth_as):
        line = await offer_event(session, manager, capacity=1, waiting=3)
        last = line.waiting[2]
        before = (await client.get(url(line.event.id, "/me"), headers=await auth_as(last))).json()

        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))

        after = (await client.get(url(line.event.id, "/me"), headers=await auth_as(last))).json()
        assert (before["waitlist_position"], after["waitlist_position"]) == (3, 2)
