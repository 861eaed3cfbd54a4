"""Mail rendering and the development fallback without an SMTP server."""

import pytest

from api.config import Environment, settings
from api.mail import sender
from api.mail.service import duration, render


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
