"""The notices of waitlist offers (API-attendees.md, Notifications): WAITLIST_OFFER and
WAITLIST_OFFER_EXPIRED in the inbox and in the mail (text and HTML), as each registrant chose.

Mail is checked where it ends up: sent over real SMTP to the test mailbox."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.config import settings
from api.events.models import Event, WaitlistMode
from api.notifications.models import Notification, NotificationKind
from api.registrations import waitlist
from api.users.models import User
from tests.factories import create_event, create_user, deliver_queued_mail, register
from tests.registrations.helpers import Clock, registrations, url
from tests.support import Mailbox

TITLE = "Resume review night"
# The clock stands at NOW; the event starts on Wed 4 Mar 2099 in Berlin (UTC+1).
NOW = datetime(2099, 3, 1, 8, 0, tzinfo=UTC)
STARTS = datetime(2099, 3, 4, 9, 0, tzinfo=UTC)
WHEN = "Wed 04 Mar 2099, 10:00 to 12:00 (Europe/Berlin)"
# NOW + 12 hours, in Berlin.
UNTIL = "Sun 01 Mar 2099, 21:00 (Europe/Berlin)"
OFFER_SUBJECT = f"A seat is offered to you: {TITLE}"
EXPIRED_SUBJECT = f"Your seat offer expired: {TITLE}"
K = NotificationKind


@pytest.fixture
def at_now(clock: Clock) -> Clock:
    clock.at = NOW
    return clock


async def inbox(session: AsyncSession, user: User) -> list[tuple[Any, ...]]:
    rows = await session.scalars(
        select(Notification)
        .where(col(Notification.user_id) == user.id)
        .order_by(col(Notification.created_at), col(Notification.id))
    )
    return [(n.kind, n.title, n.body, n.data) for n in rows]


def mail_parts(mailbox: Mailbox, email: str, subject: str) -> tuple[str, str]:
    """The text and HTML parts of the one message of `subject` to `email`."""
    [message] = [m for m in mailbox.to(email) if m["Subject"] == subject]
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    return Mailbox.text(message).replace("\r\n", "\n"), str(html.get_content())


async def offered(
    client: httpx.AsyncClient, session: AsyncSession, manager: User, auth_as: Any
) -> tuple[Event, User]:
    """An OFFER-mode event in Berlin: its one seat given up, offered to the next in line."""
    event = await create_event(
        session,
        owner=manager,
        title=TITLE,
        starts_at=STARTS,
        ends_at=STARTS + timedelta(hours=2),
        timezone="Europe/Berlin",
        location="Room 101",
        capacity=1,
        waitlist_mode=WaitlistMode.OFFER,
    )
    seated, waiting = await create_user(session), await create_user(session)
    await register(session, event, seated)
    await register(session, event, waiting)
    response = await client.delete(url(event.id, "/me"), headers=await auth_as(seated))
    assert response.status_code == 204
    return event, waiting


class TestWaitlistOffer:
    @pytest.mark.usefixtures("at_now")
    async def test_inbox_and_mail(self, client, session, manager, auth_as, mailbox):
        event, waiting = await offered(client, session, manager, auth_as)
        registration = (await registrations(session, event))[1]

        assert await inbox(session, waiting) == [
            (
                K.WAITLIST_OFFER,
                OFFER_SUBJECT,
                f'A seat at "{TITLE}" ({WHEN}) is offered to you until {UNTIL}: accept or '
                "decline it by then.",
                {
                    "event_id": str(event.id),
                    "registration_id": str(registration.id),
                    "offer_expires_at": (NOW + timedelta(hours=12)).isoformat(),
                },
            )
        ]
        assert await deliver_queued_mail(session) == 1
        text, html = mail_parts(mailbox, waiting.email, OFFER_SUBJECT)
        base = f"{settings.PUBLIC_BASE_URL}/api/v1/events/{event.id}"
        assert text == (
            f"Hello {waiting.display_name},\n\n"
            f'A seat freed up at "{TITLE}" and it is offered to you. It is held for you until '
            f"{UNTIL}; after that it goes to the next in line.\n\n"
            f"Accept it: POST {base}/registrations/me/accept\n"
            f"Decline it: POST {base}/registrations/me/decline\n\n"
            f"When: {WHEN}\nWhere: Room 101\n{base}\n"
        )
        assert f"<b>{UNTIL}</b>" in html
        assert f"<code>POST {base}/registrations/me/accept</code>" in html

    @pytest.mark.usefixtures("at_now")
    async def test_email_off_in_app_only(self, client, session, manager, auth_as, mailbox):
        waiting = await create_user(session)
        response = await client.patch(
            "/api/v1/users/me/notification-preferences",
            json={"WAITLIST_OFFER": {"email": False}},
            headers=await auth_as(waiting),
        )
        assert response.status_code == 200
        assert response.json()["WAITLIST_OFFER"] == {"email": False, "in_app": True}
        event = await create_event(
            session, owner=manager, title=TITLE, capacity=1, waitlist_mode=WaitlistMode.OFFER
        )
        seated = await create_user(session)
        await register(session, event, seated)
        await register(session, event, waiting)

        await client.delete(url(event.id, "/me"), headers=await auth_as(seated))

        assert [kind for kind, *_ in await inbox(session, waiting)] == [K.WAITLIST_OFFER]
        assert await deliver_queued_mail(session) == 0
        assert mailbox.to(waiting.email) == []


class TestWaitlistOfferExpired:
    async def test_inbox_and_mail(self, client, session, manager, auth_as, mailbox, at_now):
        event, waiting = await offered(client, session, manager, auth_as)
        registration = (await registrations(session, event))[1]
        at_now.advance(hours=12)

        assert await waitlist.expire_waitlist_offers(session) == 1

        assert (await inbox(session, waiting))[1:] == [
            (
                K.WAITLIST_OFFER_EXPIRED,
                EXPIRED_SUBJECT,
                f'Your seat offer for "{TITLE}" ({WHEN}) expired. While registration is open, '
                "you may register again, at the end of the line.",
                {"event_id": str(event.id), "registration_id": str(registration.id)},
            )
        ]
        assert await deliver_queued_mail(session) == 2
        text, html = mail_parts(mailbox, waiting.email, EXPIRED_SUBJECT)
        base = f"{settings.PUBLIC_BASE_URL}/api/v1/events/{event.id}"
        assert text == (
            f"Hello {waiting.display_name},\n\n"
            f'The seat offered to you at "{TITLE}" was not accepted in time: the offer has '
            "expired. While registration is open, you may register again, at the end of the "
            f"line.\n\nWhen: {WHEN}\nWhere: Room 101\n{base}\n"
        )
        assert f"<b>{TITLE}</b> was not accepted in time" in html

    async def test_both_channels_off_nothing(self, client, session, manager, auth_as, at_now):
        event, waiting = await offered(client, session, manager, auth_as)
        response = await client.patch(
            "/api/v1/users/me/notification-preferences",
            json={"WAITLIST_OFFER_EXPIRED": {"email": False, "in_app": False}},
            headers=await auth_as(waiting),
        )
        assert response.status_code == 200
        at_now.advance(hours=12)

        assert await waitlist.expire_waitlist_offers(session) == 1

        assert [kind for kind, *_ in await inbox(session, waiting)] == [K.WAITLIST_OFFER]
        assert (await registrations(session, event))[1].status == "EXPIRED"


class TestPreferencesListTheKinds:
    async def test_both_kinds_listed_and_on_by_default(self, client, user, auth_as):
        response = await client.get(
            "/api/v1/users/me/notification-preferences", headers=await auth_as(user)
        )

        assert response.status_code == 200
        assert {
            kind: response.json()[kind] for kind in ("WAITLIST_OFFER", "WAITLIST_OFFER_EXPIRED")
        } == {
            "WAITLIST_OFFER": {"email": True, "in_app": True},
            "WAITLIST_OFFER_EXPIRED": {"email": True, "in_app": True},
        }
