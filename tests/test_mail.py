"""Mail rendering and the development fallback without an SMTP server."""

import pytest

from api.config import settings
from api.mail import sender
from api.mail.service import render


async def test_smtp_unset_prints_the_mail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(settings, "SMTP_HOST", None)
    mail = render("verify_email", "ada@example.com", name="Ada", token="abc.def", expires_hours=24)

    await sender.send(mail)

    printed = capsys.readouterr().err
    assert "To: ada@example.com\nSubject: Verify your email for event-manager\n" in printed
    assert "http://testserver/verify-email?token=abc.def\n" in printed
    assert printed.rstrip().endswith("----- end of mail -----")


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
