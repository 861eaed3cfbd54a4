"""Connections (API-attendees.md, Networking directory and connections; DIR-1): a request between
two checked-in members, with its errors in the contract's order (each test shows the earlier
error winning over the next), accepting, declining, deleting, and the caller's lists, where the
other's email shows only once ACCEPTED."""

import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.events.models import Event
from api.events.notices import event_summary
from api.networking.models import Connection
from api.notifications.models import Notification, NotificationKind
from api.users.models import User
from tests.factories import create_event, create_user, queued_mail, register
from tests.networking.helpers import (
    MY_CONNECTIONS,
    connect,
    connection_url,
    connections_url,
    member,
    public_profile,
)

pytestmark = pytest.mark.security("DIR-1")

UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
EVENT_NOT_FOUND = {"detail": "EVENT_NOT_FOUND"}
CONNECTION_NOT_FOUND = {"detail": "CONNECTION_NOT_FOUND"}


def error(code: str, reason: str) -> dict[str, Any]:
    return {"detail": {"code": code, "reason": reason}}


SELF = error("CANNOT_CONNECT_TO_SELF", "You cannot connect to yourself")
NOT_IN_DIRECTORY = error(
    "NOT_IN_DIRECTORY", "Opt into the event's directory to connect with its members"
)
ATTENDEE_NOT_FOUND = error("ATTENDEE_NOT_FOUND", "No member of this event's directory has this id")
YOU_NOT_CHECKED_IN = error("NOT_CHECKED_IN", "You have not checked in at this event")
THEY_NOT_CHECKED_IN = error("NOT_CHECKED_IN", "They have not checked in at this event")
ALREADY_CONNECTED = error("ALREADY_CONNECTED", "You are already connected")
PENDING = error("CONNECTION_PENDING", "A request between you two is waiting for an answer")
NOT_ADDRESSEE = error("NOT_ADDRESSEE", "Only the user asked may answer a request")


async def rows(session: AsyncSession) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]]:
    """Every connection as (event, requester, addressee, status), oldest first."""
    result = await session.scalars(
        select(Connection)
        .order_by(col(Connection.created_at))
        .execution_options(populate_existing=True)
    )
    return [(c.event_id, c.requester_id, c.addressee_id, str(c.status)) for c in result]


async def notices(session: AsyncSession, user: User) -> list[tuple[Any, ...]]:
    result = await session.scalars(
        select(Notification)
        .where(col(Notification.user_id) == user.id)
        .order_by(col(Notification.created_at), col(Notification.id))
    )
    return [(n.kind, n.title, n.body, n.data) for n in result]


def view(
    connection_id: Any,
    event: Event,
    other: User,
    *,
    status: str,
    direction: str,
    created_at: Any,
    accepted_at: Any = None,
) -> dict[str, Any]:
    """A connection as API-attendees.md shows it: the other's email once ACCEPTED."""
    return {
        "id": str(connection_id),
        "event_id": str(event.id),
        "event_title": event.title,
        "status": status,
        "direction": direction,
        "created_at": created_at,
        "accepted_at": accepted_at,
        "user": public_profile(other) | {"email": other.email if status == "ACCEPTED" else None},
    }


async def ask(client: Any, event: Event, headers: dict[str, str], other: Any) -> Any:
    return await client.post(
        connections_url(event.id), json={"user_id": str(other)}, headers=headers
    )


@pytest.fixture
async def pair(session: AsyncSession, event: Event) -> tuple[User, User]:
    """Two checked-in members of the event."""
    first = await create_user(session, first_name="Ada", last_name="Lovelace")
    second = await create_user(session, first_name="Grace")
    await member(session, event, first)
    await member(session, event, second)
    return first, second


class TestRequestInTheContractsOrder:
    """401, 404, 422 CANNOT_CONNECT_TO_SELF, 403 NOT_IN_DIRECTORY, 404 ATTENDEE_NOT_FOUND, 409
    NOT_CHECKED_IN (either), 409 ALREADY_CONNECTED, 409 CONNECTION_PENDING (either way)."""

    async def test_anonymous_401_before_an_unknown_event(self, client):
        response = await client.post(
            connections_url(uuid.UUID(int=0)), json={"user_id": str(uuid.UUID(int=1))}
        )

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED

    async def test_unknown_event_404_before_self(self, client, user, auth_as):
        response = await client.post(
            connections_url(uuid.UUID(int=0)),
            json={"user_id": str(user.id)},
            headers=await auth_as(user),
        )

        assert response.status_code == 404
        assert response.json() == EVENT_NOT_FOUND

    async def test_self_422_before_not_a_member(self, client, event, user, auth_as):
        response = await ask(client, event, await auth_as(user), user.id)

        assert response.status_code == 422
        assert response.json() == SELF

    async def test_caller_not_a_member_403_before_an_unknown_attendee(
        self, client, session, event, user, auth_as
    ):
        await register(session, event, user)  # confirmed, not opted in

        response = await ask(client, event, await auth_as(user), uuid.uuid4())

        assert response.status_code == 403
        assert response.json() == NOT_IN_DIRECTORY

    async def test_staff_who_are_not_members_403(self, client, event, pair, admin, auth_as):
        response = await ask(client, event, await auth_as(admin), pair[0].id)

        assert response.status_code == 403
        assert response.json() == NOT_IN_DIRECTORY

    async def test_attendee_not_found_404_before_not_checked_in(
        self, client, session, event, auth_as
    ):
        caller = await create_user(session)
        await member(session, event, caller, checked_in=False)
        attendee = await create_user(session)
        await register(session, event, attendee)  # there, checked in, not in the directory
        await session.flush()

        response = await ask(client, event, await auth_as(caller), attendee.id)

        assert response.status_code == 404
        assert response.json() == ATTENDEE_NOT_FOUND

    async def test_a_member_of_another_event_404(self, client, session, event, pair, auth_as):
        elsewhere = await create_event(session, owner=pair[0])
        stranger = await create_user(session)
        await member(session, elsewhere, stranger)

        response = await ask(client, event, await auth_as(pair[0]), stranger.id)

        assert response.status_code == 404
        assert response.json() == ATTENDEE_NOT_FOUND

    async def test_caller_not_checked_in_409_before_already_connected(
        self, client, session, event, auth_as
    ):
        caller, other = await create_user(session), await create_user(session)
        await member(session, event, caller, checked_in=False)
        await member(session, event, other)
        await connect(session, event, other, caller, accepted=True)

        response = await ask(client, event, await auth_as(caller), other.id)

        assert response.status_code == 409
        assert response.json() == YOU_NOT_CHECKED_IN

    async def test_other_not_checked_in_409_before_already_connected(
        self, client, session, event, auth_as
    ):
        caller, other = await create_user(session), await create_user(session)
        await member(session, event, caller)
        await member(session, event, other, checked_in=False)
        await connect(session, event, caller, other, accepted=True)

        response = await ask(client, event, await auth_as(caller), other.id)

        assert response.status_code == 409
        assert response.json() == THEY_NOT_CHECKED_IN

    @pytest.mark.parametrize("made_by", ["caller", "other"])
    async def test_already_connected_409_either_way(
        self, client, session, event, pair, auth_as, made_by
    ):
        caller, other = pair
        requester, addressee = (caller, other) if made_by == "caller" else (other, caller)
        await connect(session, event, requester, addressee, accepted=True)

        response = await ask(client, event, await auth_as(caller), other.id)

        assert response.status_code == 409
        assert response.json() == ALREADY_CONNECTED

    async def test_already_connected_at_another_event_409(
        self, client, session, manager, event, pair, auth_as
    ):
        earlier = await create_event(session, owner=manager)
        await connect(session, earlier, pair[1], pair[0], accepted=True)

        response = await ask(client, event, await auth_as(pair[0]), pair[1].id)

        assert response.status_code == 409
        assert response.json() == ALREADY_CONNECTED

    @pytest.mark.parametrize("made_by", ["caller", "other"])
    async def test_pending_409_either_way(self, client, session, event, pair, auth_as, made_by):
        caller, other = pair
        requester, addressee = (caller, other) if made_by == "caller" else (other, caller)
        await connect(session, event, requester, addressee)

        response = await ask(client, event, await auth_as(caller), other.id)

        assert response.status_code == 409
        assert response.json() == PENDING
        assert len(await rows(session)) == 1

    @pytest.mark.parametrize(
        "body", [{}, {"user_id": "not-a-uuid"}, {"user_id": 5}], ids=["none", "text", "number"]
    )
    async def test_body_422(self, client, event, pair, auth_as, body):
        response = await client.post(
            connections_url(event.id), json=body, headers=await auth_as(pair[0])
        )

        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][:2] == ["body", "user_id"]


class TestRequest:
    async def test_201_pending_and_no_email(self, client, session, event, pair, auth_as):
        caller, other = pair

        response = await ask(client, event, await auth_as(caller), other.id)

        assert response.status_code == 201
        body = response.json()
        [(event_id, requester, addressee, status)] = await rows(session)
        connection = await session.scalar(select(Connection))
        assert connection is not None
        assert body == view(
            connection.id,
            event,
            other,
            status="PENDING",
            direction="outgoing",
            created_at=body["created_at"],
        )
        assert datetime.fromisoformat(body["created_at"]) == connection.created_at
        assert (event_id, requester, addressee, status) == (
            event.id,
            caller.id,
            other.id,
            "PENDING",
        )
        assert "@" not in response.text

    async def test_tells_the_other(self, client, session, event, pair, auth_as):
        caller, other = pair

        response = await ask(client, event, await auth_as(caller), other.id)

        assert await notices(session, other) == [
            (
                NotificationKind.CONNECTION_REQUESTED,
                "Connection request: Networking night",
                f'Ada Lovelace (@{caller.nickname}) met you at "Networking night" and would like '
                "to connect. Accept to share your emails.",
                {
                    "event_id": str(event.id),
                    "connection_id": response.json()["id"],
                    "user_id": str(caller.id),
                },
            )
        ]
        assert await notices(session, caller) == []
        mails = await queued_mail(session)
        assert [(m.to, m.subject) for m in mails] == [
            (other.email, "Connection request: Networking night")
        ]
        base = "http://testserver/api/v1"
        when = event_summary(event)["when"]
        assert mails[0].text == (
            f'Hello Grace,\n\nAda Lovelace (@{caller.nickname}) met you at "Networking night" '
            f"({when}) and would like to connect. Once you accept, you see each other's emails.\n\n"
            f"Accept: POST {base}/connections/{response.json()['id']}/accept\n"
            f"Decline: POST {base}/connections/{response.json()['id']}/decline\n\n"
            f"Requests waiting for you: {base}/users/me/connections?status=PENDING\n"
        )
        assert f"<b>Ada Lovelace</b> (@{caller.nickname}) met you at <b>Networking night</b>" in (
            mails[0].html
        )
        assert caller.email not in mails[0].text + mails[0].html

    async def test_after_a_decline_may_ask_again(self, client, event, pair, auth_as):
        caller, other = pair
        first = await ask(client, event, await auth_as(caller), other.id)
        declined = await client.post(
            connection_url(first.json()["id"], "/decline"), headers=await auth_as(other)
        )
        assert declined.status_code == 204

        again = await ask(client, event, await auth_as(caller), other.id)

        assert again.status_code == 201
        assert again.json()["id"] != first.json()["id"]

    async def test_opting_out_withdraws_it(self, client, session, event, pair, auth_as):
        caller, other = pair
        asked = await ask(client, event, await auth_as(caller), other.id)

        await client.delete(f"/api/v1/events/{event.id}/directory/me", headers=await auth_as(other))

        assert await rows(session) == []
        accept = await client.post(
            connection_url(asked.json()["id"], "/accept"), headers=await auth_as(other)
        )
        assert accept.status_code == 404


class TestAccept:
    async def test_200_accepted_with_the_email_and_the_requester_told(
        self, client, session, event, pair, auth_as
    ):
        requester, addressee = pair
        connection = await connect(session, event, requester, addressee)

        response = await client.post(
            connection_url(connection.id, "/accept"), headers=await auth_as(addressee)
        )

        assert response.status_code == 200
        body = response.json()
        assert body == view(
            connection.id,
            event,
            requester,
            status="ACCEPTED",
            direction="incoming",
            created_at=body["created_at"],
            accepted_at=body["accepted_at"],
        )
        assert body["user"]["email"] == requester.email
        assert body["accepted_at"] is not None
        assert await notices(session, requester) == [
            (
                NotificationKind.CONNECTION_ACCEPTED,
                "Connection accepted: Networking night",
                f'Grace (@{addressee.nickname}) accepted your connection request from "Networking '
                "night\": you now see each other's emails.",
                {
                    "event_id": str(event.id),
                    "connection_id": str(connection.id),
                    "user_id": str(addressee.id),
                },
            )
        ]
        [mail] = await queued_mail(session)
        assert (mail.to, mail.subject) == (requester.email, "Connection accepted: Networking night")
        assert mail.text == (
            "Hello Ada,\n\n"
            f'Grace (@{addressee.nickname}) accepted your connection request from "Networking '
            f"night\" ({event_summary(event)['when']}): you now see each other's emails.\n\n"
            "Your contacts: http://testserver/api/v1/users/me/connections\n"
            "As vCards: http://testserver/api/v1/users/me/connections.vcf\n"
        )

    async def test_again_200_unchanged_and_no_second_notice(
        self, client, session, event, pair, auth_as
    ):
        requester, addressee = pair
        connection = await connect(session, event, requester, addressee)
        headers = await auth_as(addressee)
        first = await client.post(connection_url(connection.id, "/accept"), headers=headers)

        again = await client.post(connection_url(connection.id, "/accept"), headers=headers)

        assert again.status_code == 200
        assert again.json() == first.json()
        assert len(await notices(session, requester)) == 1

    async def test_the_requester_403(self, client, session, event, pair, auth_as):
        connection = await connect(session, event, pair[0], pair[1])

        response = await client.post(
            connection_url(connection.id, "/accept"), headers=await auth_as(pair[0])
        )

        assert response.status_code == 403
        assert response.json() == NOT_ADDRESSEE
        assert await rows(session) == [(event.id, pair[0].id, pair[1].id, "PENDING")]

    async def test_someone_else_404(self, client, session, event, pair, admin, auth_as):
        connection = await connect(session, event, pair[0], pair[1])

        for stranger in (await create_user(session), admin):
            response = await client.post(
                connection_url(connection.id, "/accept"), headers=await auth_as(stranger)
            )
            assert response.status_code == 404
            assert response.json() == CONNECTION_NOT_FOUND

    async def test_unknown_404(self, client, user, auth_as):
        response = await client.post(
            connection_url(uuid.uuid4(), "/accept"), headers=await auth_as(user)
        )

        assert response.status_code == 404
        assert response.json() == CONNECTION_NOT_FOUND

    async def test_anonymous_401(self, client, session, event, pair):
        connection = await connect(session, event, pair[0], pair[1])

        response = await client.post(connection_url(connection.id, "/accept"))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestDecline:
    async def test_204_deleted_silently(self, client, session, event, pair, auth_as):
        connection = await connect(session, event, pair[0], pair[1])

        response = await client.post(
            connection_url(connection.id, "/decline"), headers=await auth_as(pair[1])
        )

        assert response.status_code == 204
        assert await rows(session) == []
        assert await notices(session, pair[0]) == []
        assert await queued_mail(session) == []

    async def test_accepted_409(self, client, session, event, pair, auth_as):
        connection = await connect(session, event, pair[0], pair[1], accepted=True)

        response = await client.post(
            connection_url(connection.id, "/decline"), headers=await auth_as(pair[1])
        )

        assert response.status_code == 409
        assert response.json() == error(
            "ALREADY_CONNECTED", "The request was accepted: delete the connection instead"
        )

    async def test_the_requester_403_before_409(self, client, session, event, pair, auth_as):
        connection = await connect(session, event, pair[0], pair[1], accepted=True)

        response = await client.post(
            connection_url(connection.id, "/decline"), headers=await auth_as(pair[0])
        )

        assert response.status_code == 403
        assert response.json() == NOT_ADDRESSEE

    async def test_someone_else_404(self, client, session, event, pair, auth_as):
        connection = await connect(session, event, pair[0], pair[1])

        response = await client.post(
            connection_url(connection.id, "/decline"),
            headers=await auth_as(await create_user(session)),
        )

        assert response.status_code == 404
        assert response.json() == CONNECTION_NOT_FOUND
        assert len(await rows(session)) == 1

    async def test_anonymous_401(self, client, session, event, pair):
        connection = await connect(session, event, pair[0], pair[1])

        response = await client.post(connection_url(connection.id, "/decline"))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestDelete:
    @pytest.mark.parametrize(
        ("accepted", "by"),
        [(False, 0), (False, 1), (True, 0), (True, 1)],
        ids=[
            "pending-by-requester",
            "pending-by-addressee",
            "accepted-by-requester",
            "accepted-by-addressee",
        ],
    )
    async def test_either_party_204_silently(
        self, client, session, event, pair, auth_as, accepted, by
    ):
        connection = await connect(session, event, pair[0], pair[1], accepted=accepted)

        response = await client.delete(
            connection_url(connection.id), headers=await auth_as(pair[by])
        )

        assert response.status_code == 204
        assert await rows(session) == []
        assert await notices(session, pair[1 - by]) == []

    async def test_someone_else_404(self, client, session, event, pair, admin, auth_as):
        connection = await connect(session, event, pair[0], pair[1], accepted=True)

        response = await client.delete(connection_url(connection.id), headers=await auth_as(admin))

        assert response.status_code == 404
        assert response.json() == CONNECTION_NOT_FOUND
        assert len(await rows(session)) == 1

    async def test_unknown_404(self, client, user, auth_as):
        response = await client.delete(connection_url(uuid.uuid4()), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == CONNECTION_NOT_FOUND

    async def test_anonymous_401(self, client, session, event, pair):
        connection = await connect(session, event, pair[0], pair[1])

        response = await client.delete(connection_url(connection.id))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestMyConnections:
    async def world(
        self, session: AsyncSession, event: Event, me: User
    ) -> tuple[list[Connection], list[User]]:
        """Two contacts of `me` (one each way) and two pending requests (one each way), made in
        this order; and one connection of others."""
        people = [await create_user(session, first_name=f"P{n}") for n in range(5)]
        made = [
            await connect(session, event, me, people[0], accepted=True),
            await connect(session, event, people[1], me, accepted=True),
            await connect(session, event, me, people[2]),
            await connect(session, event, people[3], me),
        ]
        await connect(session, event, people[3], people[4], accepted=True)
        return made, people

    async def test_accepted_by_default_newest_first_with_emails(
        self, client, session, event, user, auth_as
    ):
        made, people = await self.world(session, event, user)

        response = await client.get(MY_CONNECTIONS, headers=await auth_as(user))

        assert response.status_code == 200
        body = response.json()
        assert body["items"] == [
            view(
                made[n].id,
                event,
                people[n],
                status="ACCEPTED",
                direction=direction,
                created_at=item["created_at"],
                accepted_at=item["accepted_at"],
            )
            for n, direction, item in [
                (1, "incoming", body["items"][0]),
                (0, "outgoing", body["items"][1]),
            ]
        ]
        assert [item["user"]["email"] for item in body["items"]] == [
            people[1].email,
            people[0].email,
        ]
        assert (body["total"], body["page"], body["size"]) == (2, 1, 20)

    async def test_pending_both_ways_without_emails(self, client, session, event, user, auth_as):
        made, people = await self.world(session, event, user)

        response = await client.get(
            MY_CONNECTIONS, params={"status": "PENDING"}, headers=await auth_as(user)
        )

        assert response.status_code == 200
        body = response.json()
        assert body["items"] == [
            view(
                made[n].id,
                event,
                people[n],
                status="PENDING",
                direction=direction,
                created_at=item["created_at"],
            )
            for n, direction, item in [
                (3, "incoming", body["items"][0]),
                (2, "outgoing", body["items"][1]),
            ]
        ]
        assert "@" not in response.text

    async def test_emails_only_once_accepted(self, client, event, pair, auth_as):
        requester, addressee = pair
        asked = await ask(client, event, await auth_as(requester), addressee.id)
        pending_views = [
            await client.get(
                MY_CONNECTIONS, params={"status": "PENDING"}, headers=await auth_as(someone)
            )
            for someone in pair
        ]
        directory = await client.get(
            f"/api/v1/events/{event.id}/directory", headers=await auth_as(requester)
        )

        await client.post(
            connection_url(asked.json()["id"], "/accept"), headers=await auth_as(addressee)
        )

        after = [
            await client.get(MY_CONNECTIONS, headers=await auth_as(someone)) for someone in pair
        ]
        for response in [asked, *pending_views, directory]:
            assert "@" not in response.text
        assert [r.json()["items"][0]["user"]["email"] for r in after] == [
            addressee.email,
            requester.email,
        ]

    async def test_nothing_200_empty(self, client, user, auth_as):
        response = await client.get(MY_CONNECTIONS, headers=await auth_as(user))

        assert response.status_code == 200
        assert (response.json()["items"], response.json()["total"]) == ([], 0)

    async def test_bad_status_422(self, client, user, auth_as):
        response = await client.get(
            MY_CONNECTIONS, params={"status": "DECLINED"}, headers=await auth_as(user)
        )

        assert response.status_code == 422

    async def test_anonymous_401(self, client):
        response = await client.get(MY_CONNECTIONS)

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestTheDatabaseKeepsOnePerPair:
    """The unique index on the unordered pair: what racing requests rely on."""

    async def test_a_second_row_either_way_is_refused(self, session, event, pair, manager):
        await connect(session, event, pair[0], pair[1])
        elsewhere = await create_event(session, owner=manager)
        for requester, addressee, at in [(pair[1], pair[0], event), (pair[0], pair[1], elsewhere)]:
            with pytest.raises(IntegrityError, match="uq_connection_pair"):
                async with session.begin_nested():
                    await connect(session, at, requester, addressee)

        count = await session.scalar(select(func.count()).select_from(Connection))
        assert count == 1
