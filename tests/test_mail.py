"""Mail rendering, attachments, and the development fallback without an SMTP server."""

import base64
import json

import pytest
from pydantic import ValidationError

from api.config import Environment, settings
from api.mail import sender
from api.mail.service import MAX_ATTACHMENT_BYTES, Attachment, OutgoingMail, duration, render


async def test_smtp_unset_prints_the_mail_in_development(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(settings, "SMTP_HOST", None)
    monkeypatch.setattr(settings, "ENVIRONMENT", Environment.DEVELOPMENT)
    mail = render(
        "verify_email", "ada@example.com", name="Ada", token="abc.def", expires_minutes=1440
    )

    await sender.send(mail)

    printed = capsys.readouterr().err
    assert "To: ada@example.com\nSubject: Verify your email for event-manager\n" in printed
    assert "http://testserver/verify-email?token=abc.def\n" in printed
    assert printed.rstrip().endswith("----- end of mail -----")


@pytest.mark.parametrize("environment", [Environment.TEST, Environment.PRODUCTION])
async def test_smtp_unset_outside_development_fails_without_printing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], environment: Environment
) -> None:
    monkeypatch.setattr(settings, "SMTP_HOST", None)
    monkeypatch.setattr(settings, "ENVIRONMENT", environment)
    mail = render("verify_email", "ada@example.com", name="Ada", token="abc", expires_minutes=5)

    # The job fails, so the worker retries it and then holds it: the mail is not lost.
    with pytest.raises(sender.MailNotConfiguredError, match="SMTP_HOST is not set"):
        await sender.send(mail)

    assert capsys.readouterr().err == ""


def test_render_escapes_html_but_not_text() -> None:
    mail = render(
        "role_changed",
        "ada@example.com",
        name="<Ada>",
        old_role="AUTHENTICATED",
        new_role="MANAGER",
        reason="runs <b>workshops</b>",
    )
    assert "Hello <Ada>," in mail.text
    assert "Hello &lt;Ada&gt;," in mail.html
    assert "Reason: runs &lt;b&gt;workshops&lt;/b&gt;" in mail.html
    assert mail.message_id.endswith("@event-manager.test>")


def test_render_refuses_missing_context() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        render("verify_email", "ada@example.com", name="Ada")


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(1, "1 minute"), (30, "30 minutes"), (60, "1 hour"), (90, "90 minutes"), (1440, "24 hours")],
)
def test_duration(minutes: int, text: str) -> None:
    assert duration(minutes) == text


def test_verification_mail_states_the_lifetime() -> None:
    mail = render("verify_email", "ada@example.com", name="Ada", token="t", expires_minutes=1440)
    assert "The link expires in 24 hours." in mail.text
    assert "The link expires in 24 hours." in mail.html


# --- attachments: through the job payload to a MIME message -----------------------------------

CALENDAR = "BEGIN:VCALENDAR\r\nSUMMARY:Café\r\nEND:VCALENDAR\r\n".encode()


def with_calendar() -> OutgoingMail:
    return render(
        "role_changed",
        "ada@example.com",
        attachments=[Attachment(filename="a.ics", content_type="text/calendar", content=CALENDAR)],
        name="Ada",
        old_role="AUTHENTICATED",
        new_role="MANAGER",
        reason=None,
    )


def test_attachment_survives_the_job_payload() -> None:
    mail = with_calendar()

    payload = json.loads(mail.model_dump_json())

    assert payload["attachments"] == [
        {
            "filename": "a.ics",
            "content_type": "text/calendar",
            "content": base64.b64encode(CALENDAR).decode(),
        }
    ]
    assert OutgoingMail.model_validate_json(json.dumps(payload)) == mail


def test_payload_queued_before_attachments_still_loads() -> None:
    mail = render("verify_email", "ada@example.com", name="Ada", token="t", expires_minutes=5)
    payload = json.loads(mail.model_dump_json())
    del payload["attachments"]

    assert OutgoingMail.model_validate_json(json.dumps(payload)) == mail


def test_attachment_size_is_bounded() -> None:
    with pytest.raises(ValidationError, match="at most 262144 bytes"):
        Attachment(
            filename="big.bin",
            content_type="application/octet-stream",
            content=b"x" * (MAX_ATTACHMENT_BYTES + 1),
        )


def test_mail_without_attachments_stays_two_alternatives() -> None:
    mail = render("verify_email", "ada@example.com", name="Ada", token="t", expires_minutes=5)

    message = sender.build_message(mail)

    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert list(message.iter_attachments()) == []


def test_attachment_follows_the_alternatives() -> None:
    message = sender.build_message(with_calendar())

    assert message.get_content_type() == "multipart/mixed"
    alternatives, calendar = message.iter_parts()
    assert [part.get_content_type() for part in alternatives.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("charset") == "utf-8"
    assert calendar.get_filename() == "a.ics"
    assert calendar.get_payload(decode=True) == CALENDAR
