"""The reminder mail as it arrives over SMTP: the text and HTML with the can't-come link, and the
event's calendar file attached, the very bytes GET /events/{id}/calendar.ics serves."""

from datetime import UTC, timedelta
from email.message import EmailMessage

import icalendar
import pytest

from api.registrations.models import RegistrationStatus
from api.reminders.service import send_due_reminders
from tests.factories import create_event, create_user, deliver_queued_mail, register
from tests.reminders.conftest import CANT_COME_LINK, NOW
from tests.support import Mailbox

TITLE = "Café & CV clinic"


@pytest.fixture
async def delivered(session, manager, mailbox, frozen):
    """A reminder of an event 3 hours ahead, sent to its one confirmed registrant over SMTP."""
    starts_at = frozen.now + timedelta(hours=3)
    event = await create_event(
        session,
        owner=manager,
        title=TITLE,
        description="Bring your CV; we read it with you.",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        timezone="Europe/Paris",
        tags=["careers"],
    )
    attendee = await create_user(session)
    await register(session, event, attendee, RegistrationStatus.CONFIRMED)
    assert await send_due_reminders(session) == 1
    assert await deliver_queued_mail(session) == 1
    [message] = mailbox.to(attendee.email)
    return event, message


def attachments(message: EmailMessage) -> list[EmailMessage]:
    return list(message.iter_attachments())


class TestReminderMail:
    async def test_attaches_the_event_calendar_file(self, client, delivered):
        event, message = delivered

        [calendar_file] = attachments(message)

        assert message.get_content_type() == "multipart/mixed"
        assert calendar_file.get_content_type() == "text/calendar"
        assert calendar_file.get_content_disposition() == "attachment"
        assert calendar_file.get_filename() == f"event-{event.id}.ics"
        served = await client.get(f"/api/v1/events/{event.id}/calendar.ics")
        assert calendar_file.get_payload(decode=True) == served.content

    async def test_calendar_file_names_the_event(self, delivered):
        event, message = delivered
        [calendar_file] = attachments(message)

        calendar = icalendar.Calendar.from_ical(calendar_file.get_content())

        [vevent] = calendar.events
        assert str(vevent["UID"]) == f"{event.id}@testserver"
        assert str(vevent["SUMMARY"]) == TITLE
        assert vevent.decoded("DTSTART") == NOW.astimezone(UTC) + timedelta(hours=3)
        assert vevent.decoded("DTEND") == NOW.astimezone(UTC) + timedelta(hours=5)
        assert str(vevent["STATUS"]) == "CONFIRMED"

    async def test_text_and_html_carry_the_cant_come_link(self, delivered):
        _, message = delivered
        text = Mailbox.text(message)
        html = message.get_body(preferencelist=("html",))
        assert html is not None

        [token] = CANT_COME_LINK.findall(text)

        assert message["Subject"] == f"Reminder: {TITLE} starts within 24 hours"
        assert "Can't come after all? Give your seat to someone else:" in text
        assert f'href="http://testserver/cant-come?token={token}"' in html.get_content()

    async def test_the_link_from_the_mail_opens_the_form(self, client, delivered):
        _, message = delivered
        [token] = CANT_COME_LINK.findall(Mailbox.text(message))

        response = await client.get("/cant-come", params={"token": token})

        assert response.status_code == 200
        assert '<form method="post" action="/cant-come">' in response.text
