"""Every notification kind, raised by its real cause, in the inbox and in the mail as chosen.

Mail is checked where it ends up: the queued jobs are sent over real SMTP to the test mailbox
(factories.deliver_queued_mail), and the captured messages are compared exactly.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.events.models import Event, EventStatus
from api.notifications.models import Notification, NotificationKind
from api.registrations.models import RegistrationStatus
from api.reminders import service as reminder_service
from api.users.models import User, UserRole
from tests.factories import (
    create_event,
    create_user,
    deliver_queued_mail,
    event_body,
    queued_mail,
    register,
)
from tests.support import Mailbox

EVENTS = "/api/v1/events"
PREFERENCES = "/api/v1/users/me/notification-preferences"
TITLE = "Resume review night"
STARTS = datetime(2099, 3, 4, 9, 0, tzinfo=UTC)
ENDS = STARTS + timedelta(hours=2)
WHEN = "Wed 04 Mar 2099, 10:00 to 12:00 (Europe/Berlin)"
PLACE = "Room 101"
K = NotificationKind


# --- helpers ----------------------------------------------------------------------------------


async def make_event(
    session: AsyncSession,
    owner: User,
    status: EventStatus = EventStatus.PUBLISHED,
    **fields: Any,
) -> Event:
    values: dict[str, Any] = {
        "title": TITLE,
        "starts_at": STARTS,
        "ends_at": ENDS,
        "timezone": "Europe/Berlin",
        "location": PLACE,
        **fields,
    }
    return await create_event(session, owner=owner, status=status, **values)


async def inbox(session: AsyncSession, user: User) -> list[tuple[Any, ...]]:
    """The user's stored notices as (kind, title, body, data), oldest first."""
    rows = await session.scalars(
        select(Notification)
        .where(col(Notification.user_id) == user.id)
        .order_by(col(Notification.created_at), col(Notification.id))
    )
    return [(n.kind, n.title, n.body, n.data) for n in rows]


async def delivered(session: AsyncSession, mailbox: Mailbox) -> list[tuple[str, str]]:
    """Send the queued mail over SMTP; the captured messages as sorted (to, subject)."""
    await deliver_queued_mail(session)
    return sorted((str(m["To"]), str(m["Subject"])) for m in mailbox.messages)


def mail_text(mailbox: Mailbox, user: User) -> str:
    """The one captured message to the user, as plain text with SMTP's CRLF line ends undone."""
    [message] = mailbox.to(user.email)
    return Mailbox.text(message).replace("\r\n", "\n")


async def set_preferences(client: Any, headers: dict[str, str], changes: dict[str, Any]) -> None:
    response = await client.patch(PREFERENCES, json=changes, headers=headers)
    assert response.status_code == 200


# --- each kind from its cause -----------------------------------------------------------------


class TestEventSubmitted:
    async def test_create_tells_other_staff(
        self, client, session, manager, admin, user, auth_as, mailbox
    ):
        other_manager = await create_user(session, role=UserRole.MANAGER)
        await create_user(session, role=UserRole.MANAGER, is_active=False)
        body = event_body(
            title=TITLE,
            starts_at=STARTS.isoformat(),
            ends_at=ENDS.isoformat(),
            timezone="Europe/Berlin",
            location=PLACE,
        )

        response = await client.post(EVENTS, json=body, headers=await auth_as(manager))

        assert response.status_code == 201
        subject = f"Event awaiting approval: {TITLE}"
        notice = (
            K.EVENT_SUBMITTED,
            subject,
            f'"{TITLE}" ({WHEN}) awaits approval.',
            {"event_id": response.json()["id"]},
        )
        assert await inbox(session, other_manager) == [notice]
        assert await inbox(session, admin) == [notice]
        assert await inbox(session, manager) == []
        assert await inbox(session, user) == []
        assert await delivered(session, mailbox) == sorted(
            [(other_manager.email, subject), (admin.email, subject)]
        )
        assert f"{EVENTS}/{response.json()['id']}" in mail_text(mailbox, admin)

    async def test_resubmit_tells_other_staff(
        self, client, session, manager, admin, auth_as, mailbox
    ):
        event = await make_event(session, manager, EventStatus.REJECTED)

        response = await client.post(f"{EVENTS}/{event.id}/submit", headers=await auth_as(manager))

        assert response.status_code == 200
        subject = f"Event awaiting approval: {TITLE}"
        assert await inbox(session, admin) == [
            (
                K.EVENT_SUBMITTED,
                subject,
                f'"{TITLE}" ({WHEN}) awaits approval.',
                {"event_id": str(event.id)},
            )
        ]
        assert await inbox(session, manager) == []
        assert await delivered(session, mailbox) == [(admin.email, subject)]


class TestEventReviewed:
    async def test_approved(self, client, session, manager, admin, auth_as, mailbox):
        event = await make_event(session, manager, EventStatus.PENDING)

        response = await client.post(f"{EVENTS}/{event.id}/approve", headers=await auth_as(admin))

        assert response.status_code == 200
        subject = f"Your event is published: {TITLE}"
        assert await inbox(session, manager) == [
            (
                K.EVENT_APPROVED,
                subject,
                f'"{TITLE}" is approved and published.',
                {"event_id": str(event.id)},
            )
        ]
        assert await inbox(session, admin) == []
        assert await delivered(session, mailbox) == [(manager.email, subject)]
        assert f'"{TITLE}" ({WHEN}) was approved' in mail_text(mailbox, manager)

    async def test_rejected_with_feedback(self, client, session, manager, admin, auth_as, mailbox):
        event = await make_event(session, manager, EventStatus.PENDING)
        feedback = "Please add the agenda and the speaker's name."

        response = await client.post(
            f"{EVENTS}/{event.id}/reject",
            json={"feedback": feedback},
            headers=await auth_as(admin),
        )

        assert response.status_code == 200
        subject = f"Your event was not approved: {TITLE}"
        assert await inbox(session, manager) == [
            (
                K.EVENT_REJECTED,
                subject,
                f'"{TITLE}" was not approved. Feedback: {feedback}',
                {"event_id": str(event.id), "feedback": feedback},
            )
        ]
        assert await delivered(session, mailbox) == [(manager.email, subject)]
        assert f"Feedback from the reviewer:\n{feedback}\n" in mail_text(mailbox, manager)


class TestEventUpdated:
    async def test_new_place_tells_registrants(
        self, client, session, manager, user, auth_as, mailbox
    ):
        event = await make_event(session, manager)
        await register(session, event, user)

        response = await client.patch(
            f"{EVENTS}/{event.id}", json={"location": "Room 202"}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        subject = f"Event changed: {TITLE}"
        assert await inbox(session, user) == [
            (
                K.EVENT_UPDATED,
                subject,
                f'"{TITLE}" is now {WHEN}, at Room 202.',
                {"event_id": str(event.id)},
            )
        ]
        assert await inbox(session, manager) == []
        assert await delivered(session, mailbox) == [(user.email, subject)]
        assert f"It is now {WHEN}, at Room 202." in mail_text(mailbox, user)

    async def test_other_change_tells_nobody(self, client, session, manager, user, auth_as):
        event = await make_event(session, manager)
        await register(session, event, user)

        response = await client.patch(
            f"{EVENTS}/{event.id}",
            json={"description": "Now with pizza."},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert await inbox(session, user) == []
        assert await queued_mail(session) == []


class TestEventCancelled:
    async def test_with_reason(self, client, session, manager, user, auth_as, mailbox):
        event = await make_event(session, manager)
        await register(session, event, user)
        reason = "The speaker is ill."

        response = await client.post(
            f"{EVENTS}/{event.id}/cancel", json={"reason": reason}, headers=await auth_as(manager)
        )

        assert response.status_code == 200
        subject = f"Event cancelled: {TITLE}"
        assert await inbox(session, user) == [
            (
                K.EVENT_CANCELLED,
                subject,
                f'"{TITLE}" ({WHEN}) is cancelled. Reason: {reason}',
                {"event_id": str(event.id), "reason": reason},
            )
        ]
        assert await inbox(session, manager) == []
        assert await delivered(session, mailbox) == [(user.email, subject)]
        assert f"Reason: {reason}" in mail_text(mailbox, user)


class TestRegistrationConfirmed:
    async def test_seat(self, client, session, manager, user, auth_as, mailbox):
        event = await make_event(session, manager)

        response = await client.post(
            f"{EVENTS}/{event.id}/registrations", headers=await auth_as(user)
        )

        assert response.status_code == 201
        subject = f"Registration received: {TITLE}"
        assert await inbox(session, user) == [
            (
                K.REGISTRATION_CONFIRMED,
                subject,
                f'Your seat at "{TITLE}" is confirmed.',
                {"event_id": str(event.id)},
            )
        ]
        assert await inbox(session, manager) == []
        assert await delivered(session, mailbox) == [(user.email, subject)]
        assert f"When: {WHEN}\nWhere: {PLACE}" in mail_text(mailbox, user)

    async def test_waitlist(self, client, session, manager, user, auth_as, mailbox):
        event = await make_event(session, manager, capacity=1)
        await register(session, event, await create_user(session))

        response = await client.post(
            f"{EVENTS}/{event.id}/registrations", headers=await auth_as(user)
        )

        assert response.status_code == 201
        subject = f"Registration received: {TITLE}"
        assert await inbox(session, user) == [
            (
                K.REGISTRATION_CONFIRMED,
                subject,
                f'You are number 1 on the waitlist of "{TITLE}".',
                {"event_id": str(event.id), "waitlist_position": 1},
            )
        ]
        assert await delivered(session, mailbox) == [(user.email, subject)]
        assert "number 1 in line" in mail_text(mailbox, user)


class TestWaitlistPromoted:
    async def test_unregister_frees_a_seat(self, client, session, manager, user, auth_as, mailbox):
        event = await make_event(session, manager, capacity=1)
        await register(session, event, user)
        waiting = await create_user(session)
        await register(session, event, waiting)

        response = await client.delete(
            f"{EVENTS}/{event.id}/registrations/me", headers=await auth_as(user)
        )

        assert response.status_code == 204
        subject = f"You have a seat: {TITLE}"
        assert await inbox(session, waiting) == [
            (
                K.WAITLIST_PROMOTED,
                subject,
                f'A seat freed up: your place at "{TITLE}" ({WHEN}) is confirmed.',
                {"event_id": str(event.id)},
            )
        ]
        assert await inbox(session, user) == []
        assert await delivered(session, mailbox) == [(waiting.email, subject)]
        assert f"When: {WHEN}\nWhere: {PLACE}" in mail_text(mailbox, waiting)


class TestProStatusChanged:
    async def test_granted(self, client, session, manager, user, auth_as, mailbox):
        response = await client.put(
            f"/api/v1/users/{user.id}/professional",
            json={"is_professional": True, "reason": "Checked the credentials."},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        subject = "Your professional status changed"
        assert await inbox(session, user) == [
            (
                K.PRO_STATUS_CHANGED,
                subject,
                "Your professional status is now: professional. Reason: Checked the credentials.",
                {"is_professional": True, "reason": "Checked the credentials."},
            )
        ]
        assert await inbox(session, manager) == []
        assert await delivered(session, mailbox) == [(user.email, subject)]
        assert (
            "Your professional status is now: professional.\nReason: Checked the credentials."
            in (mail_text(mailbox, user))
        )


class TestRoleChanged:
    async def test_promoted(self, client, session, admin, user, auth_as, mailbox):
        response = await client.put(
            f"/api/v1/users/{user.id}/role",
            json={"role": "MANAGER", "reason": "Runs the meetups now."},
            headers=await auth_as(admin),
        )

        assert response.status_code == 200
        subject = "Your event-manager role changed"
        assert await inbox(session, user) == [
            (
                K.ROLE_CHANGED,
                subject,
                "Your role changed from AUTHENTICATED to MANAGER. Reason: Runs the meetups now.",
                {
                    "old_role": "AUTHENTICATED",
                    "new_role": "MANAGER",
                    "reason": "Runs the meetups now.",
                },
            )
        ]
        assert await inbox(session, admin) == []
        assert await delivered(session, mailbox) == [(user.email, subject)]
        assert "changed from AUTHENTICATED to MANAGER.\nReason: Runs the meetups now." in (
            mail_text(mailbox, user)
        )


class TestAccountLocked:
    async def test_after_max_attempts(self, client, session, user, mailbox, monkeypatch):
        at = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
        monkeypatch.setattr(clock, "now", lambda: at)
        attempts = settings.MAX_LOGIN_ATTEMPTS

        statuses = [
            (
                await client.post(
                    "/api/v1/auth/login",
                    data={"username": user.email, "password": "not the passphrase"},
                )
            ).status_code
            for _ in range(attempts)
        ]

        assert statuses == [400] * attempts
        subject = "Your event-manager account was locked"
        until = (at + timedelta(minutes=settings.LOCKOUT_MINUTES)).strftime("%Y-%m-%d %H:%M")
        assert await inbox(session, user) == [
            (
                K.ACCOUNT_LOCKED,
                subject,
                f"Your account was locked after {attempts} failed sign-in attempts"
                f" until {until} UTC.",
                {"attempts": attempts, "until": until},
            )
        ]
        assert await delivered(session, mailbox) == [(user.email, subject)]
        assert f"locked after {attempts} failed sign-in attempts until {until} UTC." in (
            mail_text(mailbox, user)
        )

    async def test_one_fewer_attempt_no_notice(self, client, session, user):
        for _ in range(settings.MAX_LOGIN_ATTEMPTS - 1):
            response = await client.post(
                "/api/v1/auth/login",
                data={"username": user.email, "password": "not the passphrase"},
            )
            assert response.status_code == 400

        assert await inbox(session, user) == []
        assert await queued_mail(session) == []


class TestEventReminder:
    async def test_confirmed_registrant_reminded(
        self, session, manager, user, mailbox, monkeypatch
    ):
        monkeypatch.setattr(clock, "now", lambda: STARTS - timedelta(hours=3))
        event = await make_event(session, manager, capacity=1)
        await register(session, event, user)
        waiting = await create_user(session)
        await register(session, event, waiting, RegistrationStatus.WAITLISTED)

        assert await reminder_service.send_due_reminders(session) == 1

        subject = f"Reminder: {TITLE} starts within 24 hours"
        assert await inbox(session, user) == [
            (
                K.EVENT_REMINDER,
                subject,
                f'"{TITLE}" starts {WHEN}, at {PLACE}.',
                {"event_id": str(event.id), "hours_before": 24},
            )
        ]
        assert await inbox(session, waiting) == []
        assert await inbox(session, manager) == []
        assert await delivered(session, mailbox) == [(user.email, subject)]
        assert f'"{TITLE}" starts {WHEN}.\nWhere: {PLACE}' in mail_text(mailbox, user)


# --- preferences ------------------------------------------------------------------------------

ROLE_SUBJECT = "Your event-manager role changed"
PRO_SUBJECT = "Your professional status changed"


async def change_role(client: Any, admin_headers: dict[str, str], user: User) -> None:
    response = await client.put(
        f"/api/v1/users/{user.id}/role", json={"role": "MANAGER"}, headers=admin_headers
    )
    assert response.status_code == 200


class TestPreferences:
    @pytest.mark.parametrize(
        ("channels", "in_inbox", "mailed"),
        [
            ({"email": False}, True, False),
            ({"in_app": False}, False, True),
            ({"email": False, "in_app": False}, False, False),
        ],
        ids=["email-off", "in-app-off", "both-off"],
    )
    async def test_channels(
        self, client, session, admin, user, auth_as, mailbox, channels, in_inbox, mailed
    ):
        await set_preferences(client, await auth_as(user), {"ROLE_CHANGED": channels})

        await change_role(client, await auth_as(admin), user)

        notice = (
            K.ROLE_CHANGED,
            ROLE_SUBJECT,
            "Your role changed from AUTHENTICATED to MANAGER.",
            {"old_role": "AUTHENTICATED", "new_role": "MANAGER"},
        )
        assert await inbox(session, user) == ([notice] if in_inbox else [])
        expected_mail = [(user.email, ROLE_SUBJECT)] if mailed else []
        assert [(m.to, m.subject) for m in await queued_mail(session)] == expected_mail
        assert await delivered(session, mailbox) == expected_mail

    async def test_other_kind_unaffected(self, client, session, admin, user, auth_as, mailbox):
        await set_preferences(
            client, await auth_as(user), {"ROLE_CHANGED": {"email": False, "in_app": False}}
        )

        response = await client.put(
            f"/api/v1/users/{user.id}/professional",
            json={"is_professional": True},
            headers=await auth_as(admin),
        )

        assert response.status_code == 200
        assert [kind for kind, *_ in await inbox(session, user)] == [K.PRO_STATUS_CHANGED]
        assert await delivered(session, mailbox) == [(user.email, PRO_SUBJECT)]

    async def test_per_recipient(self, client, session, manager, admin, auth_as, mailbox):
        quiet = await create_user(session, role=UserRole.MANAGER)
        await set_preferences(client, await auth_as(quiet), {"EVENT_SUBMITTED": {"email": False}})

        response = await client.post(
            EVENTS, json=event_body(title=TITLE), headers=await auth_as(manager)
        )

        assert response.status_code == 201
        subject = f"Event awaiting approval: {TITLE}"
        assert [kind for kind, *_ in await inbox(session, quiet)] == [K.EVENT_SUBMITTED]
        assert [kind for kind, *_ in await inbox(session, admin)] == [K.EVENT_SUBMITTED]
        assert await delivered(session, mailbox) == [(admin.email, subject)]


ALL_OFF = {kind.value: {"email": False, "in_app": False} for kind in NotificationKind}


class TestAlwaysSentMail:
    async def test_verification_mail(self, client, session, unverified_user, auth_as, mailbox):
        await set_preferences(client, await auth_as(unverified_user), ALL_OFF)

        response = await client.post(
            "/api/v1/auth/request-verify-token", json={"email": unverified_user.email}
        )

        assert response.status_code == 202
        assert await delivered(session, mailbox) == [
            (unverified_user.email, "Verify your email for event-manager")
        ]
        assert "verify-email" in mail_text(mailbox, unverified_user)
        assert await inbox(session, unverified_user) == []

    async def test_forgot_password_mail(self, client, session, user, auth_as, mailbox):
        await set_preferences(client, await auth_as(user), ALL_OFF)

        response = await client.post("/api/v1/auth/forgot-password", json={"email": user.email})

        assert response.status_code == 202
        assert await delivered(session, mailbox) == [
            (user.email, "Reset your event-manager password")
        ]
        assert "reset-password" in mail_text(mailbox, user)
        assert await inbox(session, user) == []
