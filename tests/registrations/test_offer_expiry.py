"""Lapsed offers (API-attendees.md, Waitlist offers): they become EXPIRED with
WAITLIST_OFFER_EXPIRED and the seat moves on, cascading, whether the `expire_waitlist_offers` job
or a route of the event settles them first; re-registering after EXPIRED; the mode switch.

Time moves by replacing the service clock (the `clock` fixture).
"""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, text
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import worker
from api.events.models import Event, WaitlistMode
from api.notifications.models import NotificationKind
from api.registrations import waitlist
from api.users.models import User, UserRole
from tests.factories import create_event, create_user, queued_mail, register
from tests.registrations.helpers import (
    CANCELLED,
    CONFIRMED,
    EXPIRED,
    OFFER_HOURS,
    OFFERED,
    WAITLISTED,
    Clock,
    Line,
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

pytestmark = pytest.mark.usefixtures("clock")

OFFER = NotificationKind.WAITLIST_OFFER
LAPSED = NotificationKind.WAITLIST_OFFER_EXPIRED


async def first_offer(
    client: httpx.AsyncClient,
    session: AsyncSession,
    manager: User,
    auth_as: Any,
    *,
    waiting: int = 3,
    **fields: Any,
) -> Line:
    """An OFFER-mode event of one seat whose holder has left: waiting[0] holds the offer."""
    line = await offer_event(session, manager, capacity=1, waiting=waiting, **fields)
    left = await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))
    assert left.status_code == 204
    return line


class TestExpiryJob:
    async def test_a_lapsed_offer_expires_and_the_seat_is_offered_on(
        self, client, session, manager, auth_as, clock
    ):
        line = await first_offer(client, session, manager, auth_as)
        first, second, _ = line.waiting
        offered_at = clock.at
        clock.advance(hours=OFFER_HOURS, minutes=1)
        before = await last_outbox_id(session)

        assert await waitlist.expire_waitlist_offers(session) == 1

        rows = await registrations(session, line.event)
        assert [row.status for row in rows] == [CANCELLED, EXPIRED, OFFERED, WAITLISTED]
        expired, offered = rows[1], rows[2]
        expires_at = offered_at + timedelta(hours=OFFER_HOURS)
        # The offer's deadline stays on record; cancelled_at marks when it expired.
        assert (expired.offer_expires_at, expired.cancelled_at) == (expires_at, clock.at)
        next_expires_at = clock.at + timedelta(hours=OFFER_HOURS)
        assert offered.offer_expires_at == next_expires_at
        assert await counters(session, line.event) == (1, 1, 1)
        assert await notices(session, OFFER) == [
            (
                first.id,
                OFFER,
                {
                    "event_id": str(line.event.id),
                    "registration_id": str(expired.id),
                    "offer_expires_at": expires_at.isoformat(),
                },
            ),
            (
                second.id,
                OFFER,
                {
                    "event_id": str(line.event.id),
                    "registration_id": str(offered.id),
                    "offer_expires_at": next_expires_at.isoformat(),
                },
            ),
        ]
        assert await notices(session, LAPSED) == [
            (first.id, LAPSED, {"event_id": str(line.event.id), "registration_id": str(expired.id)})
        ]
        title = line.event.title
        assert [(mail.to, mail.subject) for mail in await queued_mail(session)][-2:] == [
            (first.email, f"Your seat offer expired: {title}"),
            (second.email, f"A seat is offered to you: {title}"),
        ]
        assert await outbox_since(session, before) == [
            ("registration.cancelled", str(expired.id), "EXPIRED")
        ]

    async def test_not_before_its_time(self, client, session, manager, auth_as, clock):
        line = await first_offer(client, session, manager, auth_as)
        clock.advance(hours=OFFER_HOURS, seconds=-1)

        assert await waitlist.expire_waitlist_offers(session) == 0

        assert await counters(session, line.event) == (1, 1, 2)
        assert await notices(session, LAPSED) == []

    async def test_at_its_deadline_exactly_it_has_lapsed(
        self, client, session, manager, auth_as, clock
    ):
        await first_offer(client, session, manager, auth_as)
        clock.advance(hours=OFFER_HOURS)

        assert await waitlist.expire_waitlist_offers(session) == 1

    async def test_the_cascade_runs_down_the_line(self, client, session, manager, auth_as, clock):
        line = await first_offer(client, session, manager, auth_as, waiting=3)
        for _ in range(3):
            clock.advance(hours=OFFER_HOURS)
            assert await waitlist.expire_waitlist_offers(session) == 1

        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            EXPIRED,
            EXPIRED,
            EXPIRED,
        ]
        # The last seat freed found nobody in line: it is free again.
        assert await counters(session, line.event) == (0, 0, 0)
        # Each in line offered once, in line order, and told once that the offer expired.
        waiting = [user.id for user in line.waiting]
        assert [user_id for user_id, _, _ in await notices(session, OFFER)] == waiting
        assert [user_id for user_id, _, _ in await notices(session, LAPSED)] == waiting

    async def test_late_settlement_gives_the_next_one_the_full_time(
        self, client, session, manager, auth_as, clock
    ):
        """A settlement that comes late (the job missed a run) offers the seat from now on: the
        next in line was told nothing before."""
        line = await first_offer(client, session, manager, auth_as)
        clock.advance(hours=3 * OFFER_HOURS)

        assert await waitlist.expire_waitlist_offers(session) == 1

        rows = await registrations(session, line.event)
        assert [row.status for row in rows] == [CANCELLED, EXPIRED, OFFERED, WAITLISTED]
        assert rows[2].offer_expires_at == clock.at + timedelta(hours=OFFER_HOURS)

    async def test_an_offer_ending_at_the_start_expires_and_nothing_is_offered_after(
        self, client, session, manager, auth_as, clock
    ):
        starts_at = clock.at + timedelta(hours=2)
        line = await first_offer(
            client,
            session,
            manager,
            auth_as,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
        )
        clock.at = starts_at

        assert await waitlist.expire_waitlist_offers(session) == 1

        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            EXPIRED,
            WAITLISTED,
            WAITLISTED,
        ]
        assert await counters(session, line.event) == (0, 0, 2)
        assert [kind for _, kind, _ in await notices(session, OFFER, LAPSED)] == [OFFER, LAPSED]

    async def test_every_event_with_lapsed_offers_is_settled(
        self, client, session, manager, auth_as, clock
    ):
        lines = [await first_offer(client, session, manager, auth_as) for _ in range(3)]
        clock.advance(hours=OFFER_HOURS)

        assert await waitlist.expire_waitlist_offers(session) == 3

        for line in lines:
            assert await counters(session, line.event) == (1, 1, 1)
            assert await counted_rows(session, line.event) == (1, 1, 1)

    async def test_schedule_enqueues_the_job_every_minute(self):
        queue = worker.build_queue(None)
        schedules = {str(key.entrypoint): key.expression for key, _ in queue.sm.registry.items()}

        assert schedules["enqueue_waitlist_offer_expiry"] == "* * * * *"
        assert worker.EXPIRE_OFFERS == "expire_waitlist_offers"
        assert worker.EXPIRE_OFFERS in queue.qm.entrypoint_registry
        assert (
            "enqueue_waitlist_offer_expiry",
            "* * * * *",
            "expire_waitlist_offers",
        ) in worker.SCHEDULES


class TestRoutesSettleFirst:
    """Each route of the event settles its lapsed offers before its own work."""

    async def lapsed(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        manager: User,
        auth_as: Any,
        clock: Clock,
    ) -> Line:
        line = await first_offer(client, session, manager, auth_as)
        clock.advance(hours=OFFER_HOURS, minutes=1)
        return line

    async def assert_settled(self, session: AsyncSession, line: Line) -> None:
        assert [status for _, status in await statuses(session, line.event)][:3] == [
            CANCELLED,
            EXPIRED,
            OFFERED,
        ]
        assert [user_id for user_id, _, _ in await notices(session, OFFER)] == [
            line.waiting[0].id,
            line.waiting[1].id,
        ]
        assert [user_id for user_id, _, _ in await notices(session, LAPSED)] == [line.waiting[0].id]

    async def test_get_my_registration(self, client, session, manager, auth_as, clock):
        line = await self.lapsed(client, session, manager, auth_as, clock)

        response = await client.get(
            url(line.event.id, "/me"), headers=await auth_as(line.waiting[0])
        )

        assert (response.status_code, response.json()["status"]) == (200, "EXPIRED")
        await self.assert_settled(session, line)

    async def test_register_takes_the_place_behind_the_new_offer(
        self, client, session, manager, auth_as, clock
    ):
        line = await self.lapsed(client, session, manager, auth_as, clock)

        response = await client.post(
            url(line.event.id), headers=await auth_as(await create_user(session))
        )

        assert (response.status_code, response.json()["status"]) == (201, "WAITLISTED")
        assert response.json()["waitlist_position"] == 2
        await self.assert_settled(session, line)

    async def test_register_takes_a_seat_freed_by_an_expiry_with_nobody_in_line(
        self, client, session, manager, auth_as, clock
    ):
        line = await first_offer(client, session, manager, auth_as, waiting=1)
        clock.advance(hours=OFFER_HOURS)

        response = await client.post(
            url(line.event.id), headers=await auth_as(await create_user(session))
        )

        assert (response.status_code, response.json()["status"]) == (201, "CONFIRMED")
        assert await counters(session, line.event) == (1, 0, 0)

    async def test_unregister(self, client, session, manager, auth_as, clock):
        line = await self.lapsed(client, session, manager, auth_as, clock)

        response = await client.delete(
            url(line.event.id, "/me"), headers=await auth_as(line.waiting[2])
        )

        assert response.status_code == 204
        await self.assert_settled(session, line)

    async def test_unregister_of_the_lapsed_offer_itself_404(
        self, client, session, manager, auth_as, clock
    ):
        line = await self.lapsed(client, session, manager, auth_as, clock)

        response = await client.delete(
            url(line.event.id, "/me"), headers=await auth_as(line.waiting[0])
        )

        assert response.status_code == 404
        assert response.json() == {"detail": "REGISTRATION_NOT_FOUND"}
        await self.assert_settled(session, line)

    async def test_attendee_list(self, client, session, manager, auth_as, clock):
        line = await self.lapsed(client, session, manager, auth_as, clock)

        response = await client.get(url(line.event.id), headers=await auth_as(manager))

        assert [(item["user"]["id"], item["status"]) for item in response.json()["items"]] == [
            (str(line.waiting[1].id), "OFFERED"),
            (str(line.waiting[2].id), "WAITLISTED"),
        ]
        await self.assert_settled(session, line)

    async def test_check_in(self, client, session, manager, auth_as, clock):
        line = await self.lapsed(client, session, manager, auth_as, clock)
        expired = (await registrations(session, line.event))[1]

        response = await client.post(
            url(line.event.id, f"/{expired.id}/check-in"), headers=await auth_as(manager)
        )

        assert response.status_code == 409
        assert response.json() == {
            "detail": {"code": "NOT_CONFIRMED", "reason": "The registration is EXPIRED"}
        }
        await self.assert_settled(session, line)

    async def test_check_in_by_code(self, client, session, manager, auth_as, clock):
        line = await self.lapsed(client, session, manager, auth_as, clock)

        response = await client.post(
            f"/api/v1/events/{line.event.id}/check-in",
            json={"code": "0000000000"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 404
        await self.assert_settled(session, line)

    async def test_an_event_without_open_offers_reads_nothing_more(
        self, client, session, engine, manager, auth_as
    ):
        """The settlement costs no statement when the event (as loaded) has no open offer."""
        line = await offer_event(session, manager)
        headers = await auth_as(line.waiting[0])
        statements: list[str] = []

        def record(*args: Any) -> None:
            statements.append(args[2])

        sa_event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            response = await client.get(url(line.event.id, "/me"), headers=headers)
        finally:
            sa_event.remove(engine.sync_engine, "before_cursor_execute", record)

        assert response.status_code == 200
        assert statements != []
        assert [s for s in statements if "offer_expires_at <=" in s] == []


class TestRegisterAgain:
    async def test_after_expired_at_the_end_of_the_line(
        self, client, session, manager, auth_as, clock
    ):
        line = await first_offer(client, session, manager, auth_as, waiting=3)
        first = line.waiting[0]
        clock.advance(hours=OFFER_HOURS)

        response = await client.post(url(line.event.id), headers=await auth_as(first))

        assert response.status_code == 201
        assert (response.json()["status"], response.json()["waitlist_position"]) == (
            "WAITLISTED",
            2,
        )
        assert [(user_id, status) for user_id, status in await statuses(session, line.event)] == [
            (line.seated[0].id, CANCELLED),
            (first.id, EXPIRED),
            (line.waiting[1].id, OFFERED),
            (line.waiting[2].id, WAITLISTED),
            (first.id, WAITLISTED),
        ]

    async def test_after_declining(self, client, session, manager, auth_as):
        line = await first_offer(client, session, manager, auth_as, waiting=1)
        headers = await auth_as(line.waiting[0])
        await client.post(url(line.event.id, "/me/decline"), headers=headers)

        response = await client.post(url(line.event.id), headers=headers)

        # Nobody else in line: the declined seat is free, and taken again.
        assert (response.status_code, response.json()["status"]) == (201, "CONFIRMED")

    async def test_accept_then_answers_for_the_new_registration(
        self, client, session, manager, auth_as, clock
    ):
        line = await first_offer(client, session, manager, auth_as, waiting=2)
        first = line.waiting[0]
        clock.advance(hours=OFFER_HOURS)
        headers = await auth_as(first)
        await client.post(url(line.event.id), headers=headers)

        response = await client.post(url(line.event.id, "/me/accept"), headers=headers)

        # The live registration (WAITLISTED) answers, not the expired one before it.
        assert response.status_code == 409
        assert response.json()["detail"]["code"] == "NO_OPEN_OFFER"


class TestModeSwitch:
    async def test_open_offers_run_their_course_and_free_seats_follow_the_new_mode(
        self, client, session, manager, auth_as, clock
    ):
        line = await offer_event(session, manager, capacity=2, waiting=3)
        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))

        switched = await client.patch(
            f"/api/v1/events/{line.event.id}",
            json={"waitlist_mode": "AUTO"},
            headers=await auth_as(manager),
        )

        assert switched.status_code == 200
        assert switched.json()["waitlist_mode"] == "AUTO"
        # The open offer stays open.
        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            CONFIRMED,
            OFFERED,
            WAITLISTED,
            WAITLISTED,
        ]
        # A seat freed now goes at once to the head of the line (AUTO).
        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[1]))
        assert [status for _, status in await statuses(session, line.event)][-2:] == [
            CONFIRMED,
            WAITLISTED,
        ]
        # The open offer still expires in its time, and its seat too goes as AUTO says.
        clock.advance(hours=OFFER_HOURS)
        assert await waitlist.expire_waitlist_offers(session) == 1
        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            CANCELLED,
            EXPIRED,
            CONFIRMED,
            CONFIRMED,
        ]
        assert await counters(session, line.event) == (2, 0, 0)

    async def test_auto_to_offer_the_next_freed_seat_is_offered(
        self, client, session, manager, auth_as
    ):
        line = await offer_event(session, manager, waitlist_mode=WaitlistMode.AUTO)
        await client.patch(
            f"/api/v1/events/{line.event.id}",
            json={"waitlist_mode": "OFFER"},
            headers=await auth_as(manager),
        )

        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))

        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            OFFERED,
            WAITLISTED,
        ]

    async def test_to_auto_after_the_deadline_fills_the_free_seat_at_once(
        self, client, session, manager, auth_as, clock
    ):
        line = await offer_event(
            session, manager, registration_deadline=clock.at + timedelta(hours=1)
        )
        clock.advance(hours=2)
        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))
        assert await counters(session, line.event) == (0, 0, 2)

        response = await client.patch(
            f"/api/v1/events/{line.event.id}",
            json={"waitlist_mode": "AUTO"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert (response.json()["registered_count"], response.json()["waitlist_count"]) == (1, 1)
        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            CONFIRMED,
            WAITLISTED,
        ]

    async def test_a_later_deadline_lets_the_free_seat_be_offered(
        self, client, session, manager, auth_as, clock
    ):
        line = await offer_event(
            session, manager, registration_deadline=clock.at + timedelta(hours=1)
        )
        clock.advance(hours=2)
        await client.delete(url(line.event.id, "/me"), headers=await auth_as(line.seated[0]))

        response = await client.patch(
            f"/api/v1/events/{line.event.id}",
            json={"registration_deadline": (clock.at + timedelta(days=1)).isoformat()},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert response.json()["offered_count"] == 1
        assert [status for _, status in await statuses(session, line.event)] == [
            CANCELLED,
            OFFERED,
            WAITLISTED,
        ]


class TestExpiryJobCommits:
    async def test_the_worker_job_settles_in_a_transaction_of_its_own(self, engine, clock):
        """The job function commits what it settles (the rest of this module works in the
        test's transaction)."""
        async with AsyncSession(engine, expire_on_commit=False) as own:
            owner = await create_user(own, role=UserRole.MANAGER)
            holder, next_in_line = await create_user(own), await create_user(own)
            event = await create_event(
                own, owner=owner, capacity=1, waitlist_mode=WaitlistMode.OFFER
            )
            await register(own, event, holder, OFFERED)
            await register(own, event, next_in_line)
            await own.commit()
        clock.advance(hours=OFFER_HOURS)
        try:
            await worker.expire_waitlist_offers(None)  # type: ignore[arg-type]

            async with AsyncSession(engine) as check:
                assert await statuses(check, event) == [
                    (holder.id, EXPIRED),
                    (next_in_line.id, OFFERED),
                ]
                stored = await check.get(Event, event.id)
                assert stored is not None
                assert (
                    stored.registered_count,
                    stored.offered_count,
                    stored.waitlist_count,
                ) == (1, 1, 0)
        finally:
            async with AsyncSession(engine) as cleanup:
                emails = [holder.email, next_in_line.email]
                await cleanup.execute(
                    text(
                        "DELETE FROM pgqueuer WHERE entrypoint = 'send_email'"
                        " AND convert_from(payload, 'UTF8')::jsonb ->> 'to' = ANY(:emails)"
                    ),
                    {"emails": emails},
                )
                await cleanup.execute(
                    text("DELETE FROM outbox_event WHERE data ->> 'event_id' = :id"),
                    {"id": str(event.id)},
                )
                await cleanup.execute(delete(Event).where(col(Event.id) == event.id))
                await cleanup.execute(
                    delete(User).where(col(User.id).in_([owner.id, holder.id, next_in_line.id]))
                )
                await cleanup.commit()
