"""GET /users/me/export (PRIV-1): every kind of personal record, and no secret of any kind.

A second test walks the table metadata: each column of a table that holds user data is either
in the export or in EXEMPT with its reason, so a table or column added without export support
fails here.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from api import clock
from api.audit import service as audit_service
from api.audit.models import AuditAction, AuditLog
from api.events.models import Event, EventStatus
from api.exports.service import SECTIONS
from api.feeds.models import CalendarFeed
from api.networking.models import Connection, DirectoryMember
from api.notifications.models import Notification, NotificationKind, NotificationPreference
from api.outbox.models import DomainEventType
from api.registrations.models import Registration, RegistrationStatus
from api.series.models import Series
from api.tokens.models import ApiToken, Scope
from api.users.models import AccessToken, User, UserRole
from api.webhooks.models import Webhook, new_secret
from tests.factories import (
    api_token_headers,
    create_event,
    create_series,
    create_user,
    register,
    token_headers,
)
from tests.networking.helpers import connect, public_profile

pytestmark = pytest.mark.security("PRIV-1")

PATH = "/api/v1/users/me/export"
SECTION_NAMES = [section.name for section in SECTIONS]
OWNER = "the exporting user, whose records the whole export is"
LOCKOUT = "lockout bookkeeping (AC-2: never shown); the export shows is_locked"
RESET_THROTTLE = "throttle bookkeeping of password-reset mails, never shown"
LOGIN_SESSION = "login sessions are credentials, not records about the user"
FEED = "the calendar feed is a secret URL (PRIV-1: no feed token in the export), shown to its "
"owner by GET /users/me/calendar-feed with its created_at"
PARTIES = "shown as `direction` and `user` (the other party; the exporter is the one)"
# (table, column) -> why the export leaves the column out. Nothing else may be left out.
EXEMPT: dict[tuple[str, str], str] = {
    ("user", "hashed_password"): "a secret: the password hash",
    ("user", "is_superuser"): "mirrors role (ADMIN), which the export shows",
    ("user", "failed_login_count"): LOCKOUT,
    ("user", "locked_until"): LOCKOUT,
    ("user", "reset_mail_window_start"): RESET_THROTTLE,
    ("user", "reset_mail_count"): RESET_THROTTLE,
    ("accesstoken", "token"): "a credential: the hash of a login token",
    ("accesstoken", "user_id"): LOGIN_SESSION,
    ("accesstoken", "created_at"): LOGIN_SESSION,
    ("event", "revision"): "bookkeeping: the count of changes behind calendars' SEQUENCE",
    ("registration", "confirmed_at"): "bookkeeping: created_at and promoted_at give when the "
    "registration got its seat",
    # The calendar feed is a URL holding a secret: GET /users/me/calendar-feed shows it to its
    # owner; the export never does, nor anything it is derived from.
    ("calendar_feed", "nonce"): "a secret: the feed token is derived from it",
    ("calendar_feed", "token_hash"): "a credential: the hash of the feed token",
    ("calendar_feed", "id"): FEED,
    ("calendar_feed", "user_id"): FEED,
    ("calendar_feed", "created_at"): FEED,
    ("registration", "seq"): "the internal arrival order; the export shows waitlist_position",
    ("registration", "updated_at"): "bookkeeping: created_at, promoted_at, checked_in_at and "
    "cancelled_at give each change's own time",
    ("notification", "user_id"): OWNER,
    ("notification_preference", "user_id"): OWNER,
    ("api_token", "token_hash"): "a credential: the hash of an API token",
    ("api_token", "user_id"): OWNER,
    ("webhook", "secret"): "a secret: the webhook's signing secret",
    ("webhook", "previous_secret"): "a secret: the signing secret before the last rotation",
    ("webhook", "previous_secret_expires_at"): "bookkeeping of the secret rotation",
    ("connection", "requester_id"): PARTIES,
    ("connection", "addressee_id"): PARTIES,
    ("directory_member", "user_id"): OWNER,
    **{
        ("idempotency_key", column): "a replay cache of the user's own recent answers, kept "
        "IDEMPOTENCY_KEY_TTL_HOURS and removed with the account"
        for column in (
            "id",
            "user_id",
            "key",
            "fingerprint",
            "response_status",
            "response_headers",
            "response_body",
            "created_at",
            "expires_at",
            "locked_until",
        )
    },
}


@dataclass
class Records:
    """One user with a record of every kind, and another user's records beside them."""

    me: User
    headers: dict[str, str]
    registration: Registration
    cancelled: Registration
    attended: Event
    created: Event
    series: Series
    occurrences: list[Event]
    notification: Notification
    as_actor: AuditLog
    as_target: AuditLog
    api_token: ApiToken
    webhook: Webhook
    contact: User
    accepted: Connection
    pending: Connection
    other: User
    other_records: list[uuid.UUID]


async def records(session: AsyncSession) -> Records:
    me = await create_user(session, role=UserRole.MANAGER, first_name="Ada", bio="Exported")
    other = await create_user(session, role=UserRole.AUTHENTICATED)
    host = await create_user(session, role=UserRole.MANAGER)
    admin = await create_user(session, role=UserRole.ADMIN)
    headers = await token_headers(session, me)
    await token_headers(session, other)
    await api_token_headers(session, me, [Scope.EVENTS_READ])
    await api_token_headers(session, other)

    attended = await create_event(session, owner=host, title="Export workshop")
    registration = await register(session, attended, me)
    past = await create_event(session, owner=host)
    cancelled = await register(session, past, me)
    cancelled.status, cancelled.cancelled_at = RegistrationStatus.CANCELLED, clock.now()
    cancelled.checkin_code = None
    past.registered_count = 0
    session.add_all([cancelled, past])
    created = await create_event(session, owner=me, title="My own event")
    series, occurrences = await create_series(
        session, owner=me, status=EventStatus.PENDING, title="My own series"
    )
    other_event = await create_event(session, owner=host)
    other_registration = await register(session, other_event, other)
    # In the directory of the attended event, with a contact there and a request to answer.
    contact = await create_user(session, first_name="Grace", last_name="Hopper")
    asking = await create_user(session)
    session.add(DirectoryMember(event_id=attended.id, user_id=me.id))
    accepted = await connect(session, attended, me, contact, accepted=True)
    pending = await connect(session, attended, asking, me)
    others_connection = await connect(session, other_event, other, host, accepted=True)

    notification = Notification(
        user_id=me.id,
        kind=NotificationKind.ROLE_CHANGED,
        title="Your role changed",
        body="You are a manager now.",
        data={"user_id": str(me.id)},
    )
    other_notification = Notification(
        user_id=other.id, kind=NotificationKind.ROLE_CHANGED, title="Not yours", body="."
    )
    session.add_all(
        [
            notification,
            other_notification,
            NotificationPreference(
                user_id=me.id, kind=NotificationKind.EVENT_APPROVED, email=False
            ),
            NotificationPreference(
                user_id=other.id, kind=NotificationKind.EVENT_UPDATED, in_app=False
            ),
        ]
    )
    as_target = await audit_service.record(
        session,
        actor_id=admin.id,
        action=AuditAction.ROLE_CHANGED,
        target_type="user",
        target_id=me.id,
        before={"role": UserRole.AUTHENTICATED},
        after={"role": UserRole.MANAGER},
        reason="Runs the workshops",
    )
    as_actor = await audit_service.record(
        session,
        actor_id=me.id,
        action=AuditAction.EVENT_APPROVED,
        target_type="event",
        target_id=other_event.id,
        before={"status": "PENDING"},
        after={"status": "PUBLISHED"},
    )
    about_other = await audit_service.record(
        session,
        actor_id=admin.id,
        action=AuditAction.PROFESSIONAL_STATUS_CHANGED,
        target_type="user",
        target_id=other.id,
        before={"is_professional": False},
        after={"is_professional": True},
    )
    webhook = Webhook(
        owner_id=me.id,
        url="https://hooks.example.com/mine",
        description="Mine",
        event_types=[DomainEventType.EVENT_PUBLISHED],
        secret=new_secret(),
        previous_secret=new_secret(),
        previous_secret_expires_at=clock.now(),
    )
    other_admin_webhook = Webhook(
        owner_id=admin.id,
        url="https://hooks.example.com/admin",
        event_types=[DomainEventType.USER_CREATED],
        secret=new_secret(),
    )
    session.add_all([webhook, other_admin_webhook])
    await session.flush()
    api_token = (
        await session.scalars(select(ApiToken).where(col(ApiToken.user_id) == me.id))
    ).one()
    other_token = (
        await session.scalars(select(ApiToken).where(col(ApiToken.user_id) == other.id))
    ).one()
    return Records(
        me=me,
        headers=headers,
        registration=registration,
        cancelled=cancelled,
        attended=attended,
        created=created,
        series=series,
        occurrences=occurrences,
        notification=notification,
        as_actor=as_actor,
        as_target=as_target,
        api_token=api_token,
        webhook=webhook,
        contact=contact,
        accepted=accepted,
        pending=pending,
        other=other,
        other_records=[
            other_event.id,
            other_registration.id,
            other_notification.id,
            about_other.id,
            other_token.id,
            other_admin_webhook.id,
            others_connection.id,
        ],
    )


def iso(moment: datetime) -> str:
    """A datetime as the API writes it (UTC, Z)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def export(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(PATH, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestExport:
    async def test_every_kind_of_record_is_exported(self, client, session):
        mine = await records(session)
        me = await session.get(User, mine.me.id)
        assert me is not None

        response = await client.get(PATH, headers=mine.headers)

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="event-manager-export-{clock.now():%Y-%m-%d}.json"'
        )
        assert response.headers["cache-control"] == "private, no-store"
        body = response.json()
        assert list(body) == [
            "format_version",
            "exported_at",
            "user",
            *SECTION_NAMES,
        ]
        assert body["format_version"] == 1
        for name in ("user", "registrations", "events_created", "series_created", "notifications"):
            assert body[name], name
        assert (body["user"]["id"], body["user"]["email"]) == (str(me.id), me.email)
        assert (body["user"]["first_name"], body["user"]["bio"], body["user"]["role"]) == (
            "Ada",
            "Exported",
            "MANAGER",
        )
        assert [(r["id"], r["status"], r["event"]["id"]) for r in body["registrations"]] == [
            (str(mine.cancelled.id), "CANCELLED", str(mine.cancelled.event_id)),
            (str(mine.registration.id), "CONFIRMED", str(mine.attended.id)),
        ]
        assert body["registrations"][1]["event"]["title"] == "Export workshop"
        assert [e["id"] for e in body["events_created"]] == [
            str(event.id) for event in (mine.created, *mine.occurrences)
        ]
        series = mine.series
        assert body["series_created"] == [
            {
                "id": str(series.id),
                "title": "My own series",
                "rrule": "FREQ=WEEKLY;COUNT=2",
                "timezone": "UTC",
                "status": "PENDING",
                "created_by": str(me.id),
                "reviewed_by": None,
                "review_feedback": None,
                "occurrence_count": 2,
                "first_starts_at": iso(mine.occurrences[0].starts_at),
                "last_starts_at": iso(mine.occurrences[1].starts_at),
                "created_at": iso(series.created_at),
                "published_at": None,
                "cancelled_at": None,
            }
        ]
        assert body["notifications"] == [
            {
                "id": str(mine.notification.id),
                "kind": "ROLE_CHANGED",
                "title": "Your role changed",
                "body": "You are a manager now.",
                "data": {"user_id": str(me.id)},
                "read_at": None,
                "created_at": body["notifications"][0]["created_at"],
            }
        ]
        preferences = {p.pop("kind"): p for p in body["notification_preferences"]}
        assert preferences == {
            kind.value: {"email": kind is not NotificationKind.EVENT_APPROVED, "in_app": True}
            for kind in NotificationKind
        }
        entries = {entry["id"]: entry for entry in body["audit_entries"]}
        assert set(entries) == {str(mine.as_actor.id), str(mine.as_target.id)}
        assert entries[str(mine.as_target.id)] | {"at": None} == {
            "id": str(mine.as_target.id),
            "at": None,
            "actor_id": str(mine.as_target.actor_id),
            "action": "ROLE_CHANGED",
            "target_type": "user",
            "target_id": str(me.id),
            "before": {"role": "AUTHENTICATED"},
            "after": {"role": "MANAGER"},
            "reason": "Runs the workshops",
        }
        token = mine.api_token
        assert body["api_tokens"] == [
            {
                "id": str(token.id),
                "name": "test token",
                "scopes": ["events:read"],
                "token_prefix": token.token_prefix,
                "created_at": body["api_tokens"][0]["created_at"],
                "expires_at": body["api_tokens"][0]["expires_at"],
                "last_used_at": None,
            }
        ]
        hook = mine.webhook
        assert body["webhooks"] == [
            {
                "id": str(hook.id),
                "owner_id": str(me.id),
                "url": "https://hooks.example.com/mine",
                "description": "Mine",
                "event_types": ["event.published"],
                "is_active": True,
                "failure_count": 0,
                "disabled_at": None,
                "disabled_reason": None,
                "created_at": body["webhooks"][0]["created_at"],
                "updated_at": body["webhooks"][0]["updated_at"],
            }
        ]
        contact = mine.contact
        assert [
            (c["id"], c["event_id"], c["event_title"], c["status"], c["direction"])
            for c in body["connections"]
        ] == [
            (str(mine.pending.id), str(mine.attended.id), "Export workshop", "PENDING", "incoming"),
            (
                str(mine.accepted.id),
                str(mine.attended.id),
                "Export workshop",
                "ACCEPTED",
                "outgoing",
            ),
        ]
        assert body["connections"][1]["user"] == public_profile(contact) | {"email": contact.email}
        assert body["connections"][0]["user"]["email"] is None
        assert [(m["event_id"], m["event_title"]) for m in body["directory_memberships"]] == [
            (str(mine.attended.id), "Export workshop")
        ]

    async def test_no_secret_and_nothing_of_another_user(self, client, session):
        mine = await records(session)
        me, other = await session.get(User, mine.me.id), await session.get(User, mine.other.id)
        assert me is not None
        assert other is not None
        feed = await client.get("/api/v1/users/me/calendar-feed", headers=mine.headers)
        feed_token = feed.json()["url"].removesuffix(".ics").rsplit("/", 1)[1]
        token_hashes = [
            *(await session.scalars(select(col(AccessToken.token)))).all(),
            *(await session.scalars(select(col(ApiToken.token_hash)))).all(),
            *(await session.scalars(select(col(CalendarFeed.token_hash)))).all(),
            *(await session.scalars(select(col(CalendarFeed.nonce)))).all(),
            *(await session.scalars(select(col(Webhook.secret)))).all(),
            *(
                await session.scalars(
                    select(col(Webhook.previous_secret)).where(
                        col(Webhook.previous_secret).is_not(None)
                    )
                )
            ).all(),
        ]

        response = await client.get(PATH, headers=mine.headers)

        assert response.status_code == 200
        text = response.text
        token = mine.headers["Authorization"].removeprefix("Bearer ")
        secrets = [me.hashed_password, other.hashed_password, token, feed_token, *token_hashes]
        assert len(feed_token) == 32
        assert [secret for secret in secrets if secret in text] == []
        for key in ("hashed_password", "password", "token", "secret", "failed_login_count"):
            assert f'"{key}"' not in text
        others = [str(other.id), other.email, *(str(id_) for id_ in mine.other_records)]
        # The other user's event shows once, as the target of an approval the exporter made.
        assert [value for value in others if value in text] == [str(mine.other_records[0])]

    async def test_a_user_with_no_records_gets_empty_sections(self, client, user, auth_as):
        body = await export(client, await auth_as(user))

        assert body["user"]["id"] == str(user.id)
        assert {
            name: body[name] for name in SECTION_NAMES if name != "notification_preferences"
        } == (dict.fromkeys(set(SECTION_NAMES) - {"notification_preferences"}, []))
        assert len(body["notification_preferences"]) == len(NotificationKind)

    async def test_anonymous_401(self, client):
        response = await client.get(PATH)

        assert response.status_code == 401
        assert response.json() == {"detail": "UNAUTHORIZED"}
        assert response.headers["WWW-Authenticate"] == "Bearer"

    def test_openapi_documents_the_file_and_401(self, app):
        operation = app.openapi()["paths"][PATH]["get"]

        assert list(operation["responses"]["200"]["content"]) == ["application/json"]
        assert "Content-Disposition" in operation["responses"]["200"]["headers"]
        assert operation["responses"]["401"]["description"] == "UNAUTHORIZED"


# --- completeness, walked from the metadata ---------------------------------------------------


def user_data_tables() -> dict[str, list[str]]:
    """Every table holding user data -> its columns: the user table, audit_log (bare ids), and
    each table with a foreign key to user.id."""
    tables = {}
    for table in SQLModel.metadata.sorted_tables:
        refers = any(
            fk.column.table.name == "user" and fk.column.name == "id"
            for column in table.columns
            for fk in column.foreign_keys
        )
        if refers or table.name in ("user", "audit_log"):
            tables[table.name] = [column.name for column in table.columns]
    return tables


def shown_keys(value: Any) -> set[str]:
    """The keys a section shows: of the object, or of each item of the list."""
    items = value if isinstance(value, list) else [value]
    return {key for item in items for key in item}


def unexported(tables: dict[str, list[str]], body: dict[str, Any]) -> list[str]:
    """The columns of user-data tables that neither the export shows nor EXEMPT explains."""
    source_of = {"user": "user"} | {s.source: s.name for s in SECTIONS if s.source is not None}
    missing = []
    for table, columns in tables.items():
        kept = [column for column in columns if (table, column) not in EXEMPT]
        if kept and table not in source_of:
            missing.append(f"{table}: no export section")
        elif kept:
            section = body[source_of[table]]
            assert section, f"the fixture has no {table} record"
            missing += [f"{table}.{column}" for column in kept if column not in shown_keys(section)]
    return missing


async def test_every_column_of_user_data_is_exported_or_exempt(client, session):
    mine = await records(session)
    body = await export(client, mine.headers)
    tables = user_data_tables()

    assert unexported(tables, body) == []
    # The exemptions name real columns, each with a reason.
    assert [key for key in EXEMPT if key[1] not in tables.get(key[0], [])] == []
    assert all(reason.strip() for reason in EXEMPT.values())
    assert set(tables) == {
        "user",
        "audit_log",
        "accesstoken",
        "api_token",
        "calendar_feed",
        "idempotency_key",
        "event",
        "series",
        "registration",
        "notification",
        "notification_preference",
        "webhook",
        "connection",
        "directory_member",
    }


async def test_the_walk_reports_a_new_column_or_table(client, session):
    mine = await records(session)
    body = await export(client, mine.headers)
    tables = user_data_tables()
    tables["notification"] = [*tables["notification"], "new_personal_field"]
    tables["new_table"] = ["id", "user_id"]

    assert unexported(tables, body) == [
        "notification.new_personal_field",
        "new_table: no export section",
    ]
