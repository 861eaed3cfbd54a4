"""Rendering mail and queueing it in the caller's transaction."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pgqueuer import AsyncpgDriver, Queries
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.config import settings

SEND_EMAIL = "send_email"

SUBJECTS = {
    "verify_email": "Verify your email for event-manager",
    "reset_password": "Reset your event-manager password",
    "account_locked": "Your event-manager account was locked",
    "role_changed": "Your event-manager role changed",
    "professional_status_changed": "Your professional status changed",
    "event_submitted": "Event awaiting approval: {title}",
    "event_approved": "Your event is published: {title}",
    "event_rejected": "Your event was not approved: {title}",
    "event_updated": "Event changed: {title}",
    "event_cancelled": "Event cancelled: {title}",
    "event_reminder": "Reminder: {title} starts within {within}",
    "registration_confirmed": "Registration received: {title}",
    "waitlist_promoted": "You have a seat: {title}",
    "waitlist_offer": "A seat is offered to you: {title}",
    "waitlist_offer_expired": "Your seat offer expired: {title}",
    "connection_requested": "Connection request: {title}",
    "connection_accepted": "Connection accepted: {title}",
    "webhook_disabled": "Your webhook was disabled",
}

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def duration(minutes: int) -> str:
    """60 -> "1 hour", 1440 -> "24 hours", 90 -> "90 minutes"."""
    if minutes % 60:
        return f"{minutes} minute{'s' * (minutes != 1)}"
    hours = minutes // 60
    return f"{hours} hour{'s' * (hours != 1)}"


def local_time(moment: datetime, timezone: str) -> str:
    """A moment as an event's mails show times: "Wed 04 Mar 2099, 10:00 (Europe/Berlin)"."""
    return f"{moment.astimezone(ZoneInfo(timezone)):%a %d %b %Y, %H:%M} ({timezone})"


_templates.filters["duration"] = duration
_templates.filters["local_time"] = local_time


def subject(template: str, context: Mapping[str, Any]) -> str:
    """A mail's subject (and its in-app notice's title): the event's title, and for a reminder
    how soon it starts."""
    hours_before = context.get("hours_before")
    return SUBJECTS[template].format(
        title=context.get("event", {}).get("title", ""),
        within="" if hours_before is None else duration(hours_before * 60),
    )


# Attachments travel inside the job's JSON payload (base64): a calendar file is a few KiB at
# most (the event's fields are bounded); anything near this size belongs elsewhere.
MAX_ATTACHMENT_BYTES = 256 * 1024


class Attachment(BaseModel):
    """A file sent with a mail; a text/* one is UTF-8."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    filename: str
    content_type: str = Field(pattern=r"^[a-z]+/[a-z0-9.+-]+$")
    content: bytes = Field(max_length=MAX_ATTACHMENT_BYTES)


class OutgoingMail(BaseModel):
    """The job payload: a rendered message with a stable Message-ID (delivery is at least once)."""

    to: str
    subject: str
    text: str
    html: str
    message_id: str
    attachments: list[Attachment] = []


def render(
    template: str, to: str, *, attachments: Sequence[Attachment] = (), **context: Any
) -> OutgoingMail:
    context.setdefault("base_url", settings.PUBLIC_BASE_URL.rstrip("/"))
    return OutgoingMail(
        to=to,
        subject=subject(template, context),
        text=_templates.get_template(f"{template}.txt").render(context),
        html=_templates.get_template(f"{template}.html").render(context),
        message_id=make_msgid(domain=settings.MAIL_FROM.rpartition("@")[2] or "localhost"),
        attachments=list(attachments),
    )


async def queries_for(session: AsyncSession) -> Queries:
    """pgqueuer queries on the session's own connection, inside its transaction."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    if not raw.is_in_transaction():
        # SQLAlchemy begins lazily: run one statement so the enqueue cannot run in autocommit.
        await session.execute(text("SELECT 1"))
    assert raw.is_in_transaction()
    return Queries(AsyncpgDriver(raw))


async def enqueue_mails(session: AsyncSession, mails: Sequence[OutgoingMail]) -> None:
    """Queue mails in one statement; they are sent only if the caller's transaction commits."""
    if not mails:
        return
    queries = await queries_for(session)
    await queries.enqueue(
        [SEND_EMAIL] * len(mails),
        [mail.model_dump_json().encode() for mail in mails],
        [0] * len(mails),
    )


async def enqueue_email(session: AsyncSession, template: str, *, to: str, **context: Any) -> None:
    """Queue one mail; it is sent only if the caller's transaction commits."""
    await enqueue_mails(session, [render(template, to, **context)])
