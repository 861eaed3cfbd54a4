"""Delivering one rendered mail: over SMTP, or to the log when SMTP_HOST is unset."""

import sys
from email.message import EmailMessage

import aiosmtplib
import structlog

from api.config import Environment, settings
from api.mail.service import OutgoingMail

log = structlog.get_logger(__name__)

IMPLICIT_TLS_PORT = 465


def build_message(mail: OutgoingMail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.MAIL_FROM
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Message-ID"] = mail.message_id
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    for attachment in mail.attachments:
        # multipart/mixed: the text and HTML alternatives first, then each file.
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
            params={"charset": "utf-8"} if maintype == "text" else {},
        )
    return message


class MailNotConfiguredError(RuntimeError):
    """SMTP_HOST is unset outside development: the job fails and is retried, then held."""


async def send(mail: OutgoingMail) -> None:
    if not settings.SMTP_HOST:
        if settings.ENVIRONMENT is not Environment.DEVELOPMENT:
            # Mail carries tokens and addresses: it is never printed outside development.
            raise MailNotConfiguredError("SMTP_HOST is not set: mail kept in the queue")
        # Development without a mail server: show the mail, links included, to the person at the
        # terminal as plain text rather than inside an escaped log record.
        log.info("mail_printed_smtp_unset", message_id=mail.message_id, subject=mail.subject)
        sys.stderr.write(
            f"\n----- mail (SMTP_HOST is unset, so it is printed, not sent) -----\n"
            f"To: {mail.to}\nSubject: {mail.subject}\n\n{mail.text}"
            f"----- end of mail -----\n\n"
        )
        return
    await aiosmtplib.send(
        build_message(mail),
        hostname=settings.SMTP_HOST,
        port=settings.SMTP_PORT,
        username=settings.SMTP_USERNAME,
        password=settings.SMTP_PASSWORD,
        # Port 465 speaks TLS from the first byte (implicit TLS); others may upgrade with STARTTLS.
        use_tls=settings.SMTP_PORT == IMPLICIT_TLS_PORT,
        start_tls=settings.SMTP_STARTTLS and settings.SMTP_PORT != IMPLICIT_TLS_PORT,
        timeout=settings.SMTP_TIMEOUT_SECONDS,
    )
    log.info("mail_sent", subject=mail.subject, message_id=mail.message_id)
