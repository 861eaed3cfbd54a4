"""The networking directory (API-attendees.md, Networking directory and connections; DIR-1):
opting in and out, who reads it (members, the creator, managers and admins, also after the
event; no one else), its page by nickname and its filters, and leaving CONFIRMED taking a member
out at once with their pending requests."""

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.events.models import Event, EventStatus
from api.networking.models import Connection, ConnectionStatus, DirectoryMember
from api.registrations.models import Registration, RegistrationStatus
from api.reminders import cant_come
from api.users.models import User
from tests.factories import create_event, create_series, create_user, register
from tests.networking.helpers import (
    connect,
    directory_url,
    member,
    public_profile,
)

pytestmark = pytest.mark.security("DIR-1")

UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
EVENT_NOT_FOUND = {"detail": "EVENT_NOT_FOUND"}
NOT_IN_DIRECTORY = {
    "detail": {"code": "NOT_IN_DIRECTORY", "reason": "Opt into the event's directory to see it"}
}
NOT_CONFIRMED_ATTENDEE = {
    "detail": {
        "code": "NOT_CONFIRMED_ATTENDEE",
        "reason": "Only attendees with a CONFIRMED registration may join the directory",
    }
}


def me_url(event: Event) -> str:
    return directory_url(event.id, "/me")


async def members(session: AsyncSession, event: Event) -> set[uuid.UUID]:
    rows = await session.scalars(
        select(col(DirectoryMember.user_id)).where(col(DirectoryMember.event_id) == event.id)
    )
    return set(rows.all())


async def connections(session: AsyncSession) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    rows = await session.scalars(
        select(Connection)
        .order_by(col(Connection.created_at))
        .execution_options(populate_existing=True)
    )
    return [(c.requester_id, c.addressee_id, str(c.status)) for c in rows]


def entry(user: User, joined_at: datetime) -> dict[str, Any]:
    return {"user": public_profile(user), "joined_at": joined_at}


def items(response: Any) -> list[dict[str, Any]]:
    """The page's rows, joined_at parsed."""
    assert response.status_code == 200, response.text
    return [
        {**item, "joined_at": datetime.fromisoformat(item["joined_at"])}
        for item in response.json()["items"]
    ]


def nicknames(response: Any) -> list[str]:
    return [item["user"]["nickname"] for item in items(response)]


class TestJoin:
    async def test_confirmed_registrant_200(self, client, session, event, user, auth_as):
        await register(session, event, user)

        response = await client.put(me_url(event), headers=await auth_as(user))

        assert response.status_code == 200
        body = response.json()
        joined_at = datetime.fromisoformat(body.pop("joined_at"))
        assert body == {"event_id": str(event.id), "user": public_profile(user)}
        assert abs(joined_at - clock.now()) < timedelta(seconds=5)
        assert await members(session, event) == {user.id}

    async def test_again_the_same_answer(self, client, session, event, user, auth_as):
        await register(session, event, user)
        headers = await auth_as(user)
        first = await client.put(me_url(event), headers=headers)

        again = await client.put(me_url(event), headers=headers)

        assert again.status_code == 200
        assert again.json() == first.json()

    @pytest.mark.parametrize(
        "status",
        [RegistrationStatus.WAITLISTED, RegistrationStatus.OFFERED, RegistrationStatus.CANCELLED],
    )
    async def test_not_confirmed_403(self, client, session, manager, user, auth_as, status):
        event = await create_event(session, owner=manager, capacity=2)
        await register(session, event, await create_user(session))
        registration = await register(
            session,
            event,
            user,
            RegistrationStatus.WAITLISTED if status is RegistrationStatus.CANCELLED else status,
        )
        if status is RegistrationStatus.CANCELLED:
            registration.status = RegistrationStatus.CANCELLED
            event.waitlist_count = 0
            session.add_all([registration, event])

        response = await client.put(me_url(event), headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == NOT_CONFIRMED_ATTENDEE
        assert await members(session, event) == set()

    async def test_never_registered_403(self, client, event, user, auth_as):
        response = await client.put(me_url(event), headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == NOT_CONFIRMED_ATTENDEE

    async def test_staff_need_a_seat_too_403(self, client, event, admin, auth_as):
        response = await client.put(me_url(event), headers=await auth_as(admin))

        assert response.status_code == 403
        assert response.json() == NOT_CONFIRMED_ATTENDEE

    async def test_an_event_the_caller_may_not_see_404(self, client, session, manager, auth_as):
        pending = await create_event(session, owner=manager, status=EventStatus.PENDING)
        user = await create_user(session)

        response = await client.put(me_url(pending), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_unknown_event_404(self, client, user, auth_as):
        response = await client.put(
            directory_url(uuid.UUID(int=0), "/me"), headers=await auth_as(user)
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_anonymous_401(self, client, event):
        response = await client.put(me_url(event))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED

    async def test_shown_by_the_own_registration(self, client, session, event, user, auth_as):
        await register(session, event, user)
        headers = await auth_as(user)
        own = f"/api/v1/events/{event.id}/registrations/me"
        before = await client.get(own, headers=headers)

        await client.put(me_url(event), headers=headers)

        after = await client.get(own, headers=headers)
        assert (before.json()["in_directory"], after.json()["in_directory"]) == (False, True)
        assert {**before.json(), "in_directory": True} == after.json()


class TestLeave:
    async def test_member_204_out(self, client, session, event, user, auth_as):
        await member(session, event, user)

        response = await client.delete(me_url(event), headers=await auth_as(user))

        assert response.status_code == 204
        assert response.content == b""
        assert await members(session, event) == set()

    async def test_not_a_member_204(self, client, event, user, auth_as):
        response = await client.delete(me_url(event), headers=await auth_as(user))

        assert response.status_code == 204

    async def test_withdraws_pending_requests_keeps_contacts(
        self, client, session, event, user, auth_as
    ):
        asked, asking, contact = [await create_user(session) for _ in range(3)]
        for someone in (user, asked, asking, contact):
            await member(session, event, someone)
        await connect(session, event, user, asked)
        await connect(session, event, asking, user)
        await connect(session, event, contact, user, accepted=True)
        await connect(session, event, asked, asking)

        response = await client.delete(me_url(event), headers=await auth_as(user))

        assert response.status_code == 204
        assert await connections(session) == [
            (contact.id, user.id, "ACCEPTED"),
            (asked.id, asking.id, "PENDING"),
        ]
        assert await members(session, event) == {asked.id, asking.id, contact.id}

    async def test_rejoining_needs_a_new_opt_in_and_a_new_joined_at(
        self, client, session, event, user, auth_as
    ):
        await register(session, event, user)
        headers = await auth_as(user)
        first = await client.put(me_url(event), headers=headers)
        await client.delete(me_url(event), headers=headers)

        again = await client.put(me_url(event), headers=headers)

        assert again.status_code == 200
        assert again.json()["joined_at"] > first.json()["joined_at"]

    async def test_unknown_event_404(self, client, user, auth_as):
        response = await client.delete(
            directory_url(uuid.UUID(int=0), "/me"), headers=await auth_as(user)
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_anonymous_401(self, client, event):
        response = await client.delete(me_url(event))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestWhoReads:
    async def test_member_200(self, client, session, event, user, auth_as):
        other = await create_user(session)
        await member(session, event, user)
        await member(session, event, other)

        response = await client.get(directory_url(event.id), headers=await auth_as(user))

        assert sorted(nicknames(response)) == sorted([user.nickname, other.nickname])

    async def test_creator_manager_admin_200(self, client, session, event, manager, admin, auth_as):
        attendee = await create_user(session)
        await member(session, event, attendee)
        other_manager = await create_user(session, role=manager.role)

        for reader in (manager, other_manager, admin):
            response = await client.get(directory_url(event.id), headers=await auth_as(reader))
            assert nicknames(response) == [attendee.nickname]

    async def test_a_creator_who_is_no_manager_200(self, client, session, user, auth_as):
        event = await create_event(session, owner=user)
        attendee = await create_user(session)
        await member(session, event, attendee)

        response = await client.get(directory_url(event.id), headers=await auth_as(user))

        assert nicknames(response) == [attendee.nickname]

    async def test_confirmed_attendee_not_opted_in_403(self, client, session, event, user, auth_as):
        await member(session, event, await create_user(session))
        await register(session, event, user)

        response = await client.get(directory_url(event.id), headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == NOT_IN_DIRECTORY

    async def test_non_attendee_403(self, client, session, event, user, auth_as):
        await member(session, event, await create_user(session))

        response = await client.get(directory_url(event.id), headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == NOT_IN_DIRECTORY

    async def test_a_member_of_another_event_403(self, client, session, manager, user, auth_as):
        event = await create_event(session, owner=manager)
        elsewhere = await create_event(session, owner=manager)
        await member(session, elsewhere, user)

        response = await client.get(directory_url(event.id), headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == NOT_IN_DIRECTORY

    async def test_after_the_event_a_member_200(self, client, session, manager, user, auth_as):
        event = await create_event(session, owner=manager)
        await member(session, event, user)
        event.starts_at = clock.now() - timedelta(days=2)
        event.ends_at = clock.now() - timedelta(days=1)
        session.add(event)

        response = await client.get(directory_url(event.id), headers=await auth_as(user))

        assert nicknames(response) == [user.nickname]

    async def test_after_the_event_others_still_403(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager)
        event.starts_at = clock.now() - timedelta(days=2)
        event.ends_at = clock.now() - timedelta(days=1)
        session.add(event)
        outsider = await create_user(session)

        response = await client.get(directory_url(event.id), headers=await auth_as(outsider))

        assert response.status_code == 403
        assert response.json() == NOT_IN_DIRECTORY

    async def test_an_event_the_caller_may_not_see_404(self, client, session, manager, auth_as):
        pending = await create_event(session, owner=manager, status=EventStatus.PENDING)

        response = await client.get(
            directory_url(pending.id), headers=await auth_as(await create_user(session))
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_unknown_event_404(self, client, user, auth_as):
        response = await client.get(directory_url(uuid.UUID(int=0)), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_anonymous_401(self, client, event):
        response = await client.get(directory_url(event.id))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestPage:
    async def test_public_profiles_by_nickname_never_an_email(
        self, client, session, event, auth_as
    ):
        people = [
            await create_user(session, nickname=name, first_name=first, bio=bio)
            for name, first, bio in [
                ("zed_last", "Zed", None),
                ("Bea_upper", "Bea", "Builds compilers"),
                ("amy-first", None, None),
            ]
        ]
        for person in people:
            await member(session, event, person)
        reader = people[0]

        response = await client.get(directory_url(event.id), headers=await auth_as(reader))

        rows = await session.execute(
            select(col(DirectoryMember.user_id), col(DirectoryMember.joined_at)).where(
                col(DirectoryMember.event_id) == event.id
            )
        )
        joined = dict(rows.all())
        by_nickname = [people[2], people[1], people[0]]  # case does not matter
        assert items(response) == [entry(p, joined[p.id]) for p in by_nickname]
        assert "@" not in response.text
        assert (response.json()["total"], response.json()["pages"]) == (3, 1)

    async def test_paged(self, client, session, event, auth_as):
        people = [await create_user(session, nickname=f"page_{n:02d}") for n in range(5)]
        for person in people:
            await member(session, event, person)

        response = await client.get(
            directory_url(event.id, "?page=2&size=2"), headers=await auth_as(people[0])
        )

        assert nicknames(response) == ["page_02", "page_03"]
        assert (response.json()["total"], response.json()["pages"]) == (5, 3)

    async def test_is_professional(self, client, session, event, auth_as):
        pro = await create_user(session, is_professional=True)
        student = await create_user(session)
        await member(session, event, pro)
        await member(session, event, student)
        headers = await auth_as(pro)

        pros = await client.get(directory_url(event.id, "?is_professional=true"), headers=headers)
        rest = await client.get(directory_url(event.id, "?is_professional=false"), headers=headers)

        assert (nicknames(pros), nicknames(rest)) == ([pro.nickname], [student.nickname])

    @pytest.mark.parametrize(
        ("q", "found"),
        [
            ("ada", ["ada_l"]),  # first name and nickname
            ("lovelace", ["ada_l"]),  # last name
            ("ada lovelace", ["ada_l"]),  # the whole name
            ("COMPILERS", ["grace_h"]),  # bio, any case
            ("_h", ["grace_h"]),  # "_" taken literally
            ("%", []),
            ("nobody", []),
        ],
    )
    async def test_q_over_names_nickname_bio(self, client, session, event, auth_as, q, found):
        ada = await create_user(
            session, nickname="ada_l", first_name="Ada", last_name="Lovelace", bio="Engines"
        )
        grace = await create_user(
            session, nickname="grace_h", first_name="Grace", bio="Writes compilers"
        )
        await member(session, event, ada)
        await member(session, event, grace)

        response = await client.get(
            directory_url(event.id), params={"q": q}, headers=await auth_as(ada)
        )

        assert nicknames(response) == found

    async def test_filters_together(self, client, session, event, auth_as):
        pro = await create_user(session, bio="Hiring engineers", is_professional=True)
        student = await create_user(session, bio="Hiring? no, looking")
        await member(session, event, pro)
        await member(session, event, student)

        response = await client.get(
            directory_url(event.id),
            params={"q": "hiring", "is_professional": "true"},
            headers=await auth_as(student),
        )

        assert nicknames(response) == [pro.nickname]

    @pytest.mark.parametrize(
        "query", ["?is_professional=maybe", "?q=" + "x" * 201, "?size=0", "?page=0"]
    )
    async def test_bad_parameters_422(self, client, session, event, user, auth_as, query):
        await member(session, event, user)

        response = await client.get(directory_url(event.id, query), headers=await auth_as(user))

        assert response.status_code == 422


class TestLeavingConfirmedTakesMembersOut:
    """Leaving CONFIRMED removes the member at once (in the same transaction) and withdraws the
    pending requests they are a party to at that event; accepted connections stay."""

    async def world(self, session: AsyncSession, event: Event, user: User) -> dict[str, User]:
        """`user` and three more members; `user` asked one, was asked by one, is connected to
        one; the two others have a request between them, and `user` one at another event."""
        people = {name: await create_user(session) for name in ("asked", "asking", "contact")}
        for someone in (user, *people.values()):
            await member(session, event, someone)
        await connect(session, event, user, people["asked"])
        await connect(session, event, people["asking"], user)
        await connect(session, event, people["contact"], user, accepted=True)
        await connect(session, event, people["asked"], people["asking"])
        elsewhere = await create_event(session, owner=user)
        people["elsewhere"] = await create_user(session)
        await connect(session, elsewhere, people["elsewhere"], user)
        return people

    def left(self, people: dict[str, User], user: User) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
        return [
            (people["contact"].id, user.id, "ACCEPTED"),
            (people["asked"].id, people["asking"].id, "PENDING"),
            (people["elsewhere"].id, user.id, "PENDING"),
        ]

    async def test_unregister(self, client, session, event, user, auth_as):
        people = await self.world(session, event, user)

        response = await client.delete(
            f"/api/v1/events/{event.id}/registrations/me", headers=await auth_as(user)
        )

        assert response.status_code == 204
        assert await members(session, event) == {
            people[name].id for name in ("asked", "asking", "contact")
        }
        assert await connections(session) == self.left(people, user)

    async def test_cant_come(self, client, session, event, user):
        people = await self.world(session, event, user)
        registration = (
            await session.scalars(select(Registration).where(col(Registration.user_id) == user.id))
        ).one()
        token = cant_come.issue_token(registration, starts_at=event.starts_at, hours_before=24)

        response = await client.post("/cant-come", data={"token": token})

        assert response.status_code == 200
        assert user.id not in await members(session, event)
        assert await connections(session) == self.left(people, user)

    async def test_event_cancelled_empties_the_directory(
        self, client, session, event, manager, user, auth_as
    ):
        people = await self.world(session, event, user)

        response = await client.post(
            f"/api/v1/events/{event.id}/cancel",
            json={"reason": "Venue closed"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert await members(session, event) == set()
        assert await connections(session) == [
            (people["contact"].id, user.id, "ACCEPTED"),
            (people["elsewhere"].id, user.id, "PENDING"),
        ]
        # Staff still read it (empty); the contacts made there stay.
        listed = await client.get(directory_url(event.id), headers=await auth_as(manager))
        assert items(listed) == []

    async def test_series_cancelled_empties_every_occurrence_directory(
        self, client, session, manager, user, auth_as
    ):
        """One cancel, several events: each occurrence's directory is emptied and the pending
        request made there withdrawn; an accepted connection stays."""
        series, occurrences = await create_series(session, owner=manager, count=3)
        other = await create_user(session)
        for occurrence in occurrences:
            await member(session, occurrence, user)
            await member(session, occurrence, other)
        await connect(session, occurrences[1], other, user)
        contact = await create_user(session)
        await member(session, occurrences[2], contact)
        await connect(session, occurrences[2], contact, user, accepted=True)

        response = await client.post(
            f"/api/v1/series/{series.id}/cancel",
            json={"reason": "Venue closed"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        for occurrence in occurrences:
            assert await members(session, occurrence) == set()
        assert await connections(session) == [(contact.id, user.id, "ACCEPTED")]

    async def test_account_deleted(self, client, session, event, user, auth_as):
        people = await self.world(session, event, user)

        response = await client.delete("/api/v1/users/me", headers=await auth_as(user))

        assert response.status_code == 204
        assert user.id not in await members(session, event)
        assert await connections(session) == [
            (people["asked"].id, people["asking"].id, "PENDING"),
        ]

    async def test_reregistering_needs_a_new_opt_in(self, client, session, event, user, auth_as):
        await member(session, event, user)
        headers = await auth_as(user)
        await client.delete(f"/api/v1/events/{event.id}/registrations/me", headers=headers)

        again = await client.post(f"/api/v1/events/{event.id}/registrations", headers=headers)

        assert (again.status_code, again.json()["status"]) == (201, "CONFIRMED")
        assert await members(session, event) == set()
        own = await client.get(f"/api/v1/events/{event.id}/registrations/me", headers=headers)
        assert own.json()["in_directory"] is False
        listed = await client.get(directory_url(event.id), headers=headers)
        assert listed.json() == NOT_IN_DIRECTORY

    async def test_a_promotion_does_not_opt_in(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated, waiting = await create_user(session), await create_user(session)
        await member(session, event, seated)
        await register(session, event, waiting)

        await client.delete(
            f"/api/v1/events/{event.id}/registrations/me", headers=await auth_as(seated)
        )

        own = await client.get(
            f"/api/v1/events/{event.id}/registrations/me", headers=await auth_as(waiting)
        )
        assert (own.json()["status"], own.json()["in_directory"]) == ("CONFIRMED", False)
        assert await members(session, event) == set()

    async def test_leaving_the_line_changes_nothing(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        seated, waiting = await create_user(session), await create_user(session)
        await member(session, event, seated)
        await register(session, event, waiting)

        response = await client.delete(
            f"/api/v1/events/{event.id}/registrations/me", headers=await auth_as(waiting)
        )

        assert response.status_code == 204
        assert await members(session, event) == {seated.id}

    async def test_pending_requests_never_outlive_a_membership(
        self, client, session, event, user, auth_as
    ):
        """After any of the changes above, every pending request joins two members."""
        people = await self.world(session, event, user)
        await client.delete(
            f"/api/v1/events/{event.id}/registrations/me", headers=await auth_as(people["asked"])
        )

        pending = await session.scalars(
            select(Connection).where(
                col(Connection.event_id) == event.id,
                col(Connection.status) == ConnectionStatus.PENDING,
            )
        )
        current = await members(session, event)
        assert [
            (c.requester_id, c.addressee_id)
            for c in pending
            if not {c.requester_id, c.addressee_id} <= current
        ] == []
        assert (people["asking"].id, user.id, "PENDING") in await connections(session)
