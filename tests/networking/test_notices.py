"""The notices of connections (API-attendees.md, Notifications): CONNECTION_REQUESTED and
CONNECTION_ACCEPTED are in the preferences, on by default, and follow them; their mails go out
over SMTP (the texts themselves are compared in test_connections.py)."""

from sqlalchemy import select
from sqlmodel import col

from api.notifications.models import Notification, NotificationKind
from tests.factories import create_user, deliver_queued_mail
from tests.networking.helpers import connect, connection_url, connections_url, member

PREFERENCES = "/api/v1/users/me/notification-preferences"
KINDS = ("CONNECTION_REQUESTED", "CONNECTION_ACCEPTED")


async def kinds_in_inbox(session, user) -> list[NotificationKind]:
    rows = await session.scalars(
        select(col(Notification.kind)).where(col(Notification.user_id) == user.id)
    )
    return list(rows.all())


class TestPreferences:
    async def test_both_kinds_listed_and_on_by_default(self, client, user, auth_as):
        response = await client.get(PREFERENCES, headers=await auth_as(user))

        assert response.status_code == 200
        assert {kind: response.json()[kind] for kind in KINDS} == dict.fromkeys(
            KINDS, {"email": True, "in_app": True}
        )

    async def test_request_with_email_off_in_app_only(
        self, client, session, event, auth_as, mailbox
    ):
        asking, asked = await create_user(session), await create_user(session)
        await member(session, event, asking)
        await member(session, event, asked)
        off = await client.patch(
            PREFERENCES,
            json={"CONNECTION_REQUESTED": {"email": False}},
            headers=await auth_as(asked),
        )
        assert off.json()["CONNECTION_REQUESTED"] == {"email": False, "in_app": True}

        response = await client.post(
            connections_url(event.id),
            json={"user_id": str(asked.id)},
            headers=await auth_as(asking),
        )

        assert response.status_code == 201
        assert await kinds_in_inbox(session, asked) == [NotificationKind.CONNECTION_REQUESTED]
        assert await deliver_queued_mail(session) == 0
        assert mailbox.to(asked.email) == []

    async def test_accepted_with_in_app_off_mail_only(
        self, client, session, event, auth_as, mailbox
    ):
        asking, asked = await create_user(session), await create_user(session)
        connection = await connect(session, event, asking, asked)
        await client.patch(
            PREFERENCES,
            json={"CONNECTION_ACCEPTED": {"in_app": False}},
            headers=await auth_as(asking),
        )

        response = await client.post(
            connection_url(connection.id, "/accept"), headers=await auth_as(asked)
        )

        assert response.status_code == 200
        assert await kinds_in_inbox(session, asking) == []
        assert await deliver_queued_mail(session) == 1
        [message] = mailbox.to(asking.email)
        assert message["Subject"] == f"Connection accepted: {event.title}"
