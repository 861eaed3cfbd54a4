"""The Notifications section of API.md: the inbox and the notification preferences."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.notifications import service as notification_service
from api.notifications.models import Notification, NotificationKind, NotificationPreference
from api.users.models import User
from tests.factories import create_user

LIST = "/api/v1/notifications"
READ_ALL = "/api/v1/notifications/read-all"
PREFERENCES = "/api/v1/users/me/notification-preferences"
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
NOT_FOUND = {"detail": "NOTIFICATION_NOT_FOUND"}
ITEM_FIELDS = {"id", "kind", "title", "body", "data", "read_at", "created_at"}
T0 = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
DEFAULTS = {kind.value: {"email": True, "in_app": True} for kind in NotificationKind}


def read_url(notification_id: uuid.UUID | str) -> str:
    return f"/api/v1/notifications/{notification_id}/read"


def links(query: str, *, page: int, pages: int) -> dict[str, str | None]:
    def link(number: int) -> str:
        return f"http://testserver{LIST}?{query}page={number}&size=1"

    return {
        "self": link(page),
        "first": link(1),
        "last": link(pages),
        "next": link(page + 1) if page < pages else None,
        "prev": link(page - 1) if page > 1 else None,
    }


async def add_notice(
    session: AsyncSession,
    user: User,
    *,
    minutes: int,
    read: bool = False,
    kind: NotificationKind = NotificationKind.EVENT_APPROVED,
) -> Notification:
    """A notice written straight to the inbox, created `minutes` after T0."""
    created_at = T0 + timedelta(minutes=minutes)
    notice = Notification(
        user_id=user.id,
        kind=kind,
        title=f"Notice at +{minutes} min",
        body=f"Body of the notice at +{minutes} min",
        data={"event_id": str(uuid.uuid4()), "minutes": minutes},
        created_at=created_at,
        read_at=created_at + timedelta(seconds=30) if read else None,
    )
    session.add(notice)
    await session.flush()
    return notice


def view(notice: Notification) -> dict[str, Any]:
    """NotificationPublic as API.md describes it, datetimes parsed."""
    return {
        "id": str(notice.id),
        "kind": notice.kind.value,
        "title": notice.title,
        "body": notice.body,
        "data": notice.data,
        "read_at": notice.read_at,
        "created_at": notice.created_at,
    }


def parsed(item: dict[str, Any]) -> dict[str, Any]:
    return {
        key: datetime.fromisoformat(value)
        if key in ("read_at", "created_at") and value is not None
        else value
        for key, value in item.items()
    }


async def db_notice(session: AsyncSession, notice_id: uuid.UUID) -> Notification:
    stored = (
        await session.scalars(
            select(Notification)
            .where(col(Notification.id) == notice_id)
            .execution_options(populate_existing=True)
        )
    ).one()
    return stored


async def read_states(session: AsyncSession, user: User) -> list[datetime | None]:
    rows = await session.scalars(
        select(col(Notification.read_at))
        .where(col(Notification.user_id) == user.id)
        .order_by(col(Notification.created_at))
    )
    return list(rows)


class TestListNotifications:
    async def test_anonymous_401(self, client):
        response = await client.get(LIST)

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED

    async def test_empty_inbox(self, client, user, auth_as):
        response = await client.get(LIST, headers=await auth_as(user))

        assert response.status_code == 200
        assert response.json() == {
            "items": [],
            "total": 0,
            "total_capped": False,
            "page": 1,
            "size": 20,
            "pages": 1,
            "links": {
                "self": f"http://testserver{LIST}?page=1&size=20",
                "first": f"http://testserver{LIST}?page=1&size=20",
                "last": f"http://testserver{LIST}?page=1&size=20",
                "next": None,
                "prev": None,
            },
            "unread_count": 0,
        }

    async def test_newest_first(self, client, session, user, auth_as):
        middle = await add_notice(session, user, minutes=5)
        oldest = await add_notice(session, user, minutes=0, read=True)
        newest = await add_notice(session, user, minutes=10)

        response = await client.get(LIST, headers=await auth_as(user))

        assert response.status_code == 200
        body = response.json()
        assert [parsed(item) for item in body["items"]] == [
            view(newest),
            view(middle),
            view(oldest),
        ]
        assert (body["total"], body["unread_count"]) == (3, 2)

    async def test_raised_notices_newest_first(self, client, session, user, auth_as, monkeypatch):
        for minutes, role in ((0, "AUTHENTICATED"), (1, "MANAGER")):
            monkeypatch.setattr(clock, "now", lambda m=minutes: T0 + timedelta(minutes=m))
            await notification_service.notify(
                session,
                user,
                NotificationKind.ROLE_CHANGED,
                old_role="ANONYMOUS",
                new_role=role,
                reason=None,
            )
        monkeypatch.undo()

        response = await client.get(LIST, headers=await auth_as(user))

        assert response.status_code == 200
        items = response.json()["items"]
        assert [(item["body"], datetime.fromisoformat(item["created_at"])) for item in items] == [
            ("Your role changed from ANONYMOUS to MANAGER.", T0 + timedelta(minutes=1)),
            ("Your role changed from ANONYMOUS to AUTHENTICATED.", T0),
        ]

    async def test_unread_true(self, client, session, user, auth_as):
        unread_old = await add_notice(session, user, minutes=0)
        await add_notice(session, user, minutes=1, read=True)
        unread_new = await add_notice(session, user, minutes=2)

        response = await client.get(LIST, params={"unread": "true"}, headers=await auth_as(user))

        assert response.status_code == 200
        body = response.json()
        assert [item["id"] for item in body["items"]] == [str(unread_new.id), str(unread_old.id)]
        assert (body["total"], body["unread_count"]) == (2, 2)

    async def test_unread_false(self, client, session, user, auth_as):
        await add_notice(session, user, minutes=0)
        read_old = await add_notice(session, user, minutes=1, read=True)
        read_new = await add_notice(session, user, minutes=2, read=True)

        response = await client.get(LIST, params={"unread": "false"}, headers=await auth_as(user))

        assert response.status_code == 200
        body = response.json()
        assert [item["id"] for item in body["items"]] == [str(read_new.id), str(read_old.id)]
        assert (body["total"], body["unread_count"]) == (2, 1)

    async def test_unread_count_ignores_page_and_filter(self, client, session, user, auth_as):
        for minutes in range(3):
            await add_notice(session, user, minutes=minutes)
        await add_notice(session, user, minutes=3, read=True)

        response = await client.get(
            LIST, params={"unread": "false", "page": 1, "size": 1}, headers=await auth_as(user)
        )

        assert response.status_code == 200
        body = response.json()
        assert (len(body["items"]), body["total"], body["unread_count"]) == (1, 1, 3)

    async def test_item_fields(self, client, session, user, auth_as):
        notice = await add_notice(session, user, minutes=0)

        response = await client.get(LIST, headers=await auth_as(user))

        assert response.status_code == 200
        [item] = response.json()["items"]
        assert set(item) == ITEM_FIELDS
        assert parsed(item) == view(notice)

    async def test_other_users_notices_hidden(self, client, session, user, auth_as):
        other = await create_user(session)
        await add_notice(session, other, minutes=0)
        await add_notice(session, other, minutes=1, read=True)
        own = await add_notice(session, user, minutes=2)

        response = await client.get(LIST, headers=await auth_as(user))

        assert response.status_code == 200
        body = response.json()
        assert [item["id"] for item in body["items"]] == [str(own.id)]
        assert (body["total"], body["unread_count"]) == (1, 1)

    async def test_pagination(self, client, session, user, auth_as):
        notices = [await add_notice(session, user, minutes=minutes) for minutes in range(3)]
        headers = await auth_as(user)

        pages = [
            (await client.get(LIST, params={"page": page, "size": 1}, headers=headers)).json()
            for page in (1, 2, 3)
        ]

        assert [page["items"][0]["id"] for page in pages] == [
            str(notice.id) for notice in reversed(notices)
        ]
        assert [(page["total"], page["page"], page["size"], page["pages"]) for page in pages] == [
            (3, 1, 1, 3),
            (3, 2, 1, 3),
            (3, 3, 1, 3),
        ]
        assert [page["links"] for page in pages] == [
            links("", page=number, pages=3) for number in (1, 2, 3)
        ]

    async def test_pagination_keeps_filter(self, client, session, user, auth_as):
        for minutes in range(2):
            await add_notice(session, user, minutes=minutes)

        response = await client.get(
            LIST, params={"unread": "true", "size": 1}, headers=await auth_as(user)
        )

        assert response.status_code == 200
        assert response.json()["links"] == links("unread=true&", page=1, pages=2)


class TestMarkNotificationRead:
    async def test_owner_200(self, client, session, user, auth_as):
        notice = await add_notice(session, user, minutes=0)

        response = await client.post(read_url(notice.id), headers=await auth_as(user))

        assert response.status_code == 200
        body = parsed(response.json())
        assert body["read_at"] is not None
        assert body == {**view(notice), "read_at": body["read_at"]}
        assert (await db_notice(session, notice.id)).read_at == body["read_at"]

    async def test_second_call_keeps_first_read_at(
        self, client, session, user, auth_as, monkeypatch
    ):
        notice = await add_notice(session, user, minutes=0)
        headers = await auth_as(user)
        # Near the real time: the access token's lifetime is measured against the clock too.
        first_at = clock.now().replace(microsecond=0) + timedelta(minutes=1)
        monkeypatch.setattr(clock, "now", lambda: first_at)
        first = await client.post(read_url(notice.id), headers=headers)
        monkeypatch.setattr(clock, "now", lambda: first_at + timedelta(minutes=5))

        second = await client.post(read_url(notice.id), headers=headers)

        assert (first.status_code, second.status_code) == (200, 200)
        assert parsed(second.json()) == parsed(first.json())
        assert parsed(second.json())["read_at"] == first_at
        assert (await db_notice(session, notice.id)).read_at == first_at

    async def test_someone_elses_404(self, client, session, user, auth_as):
        other = await create_user(session)
        notice = await add_notice(session, other, minutes=0)

        response = await client.post(read_url(notice.id), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == NOT_FOUND
        assert (await db_notice(session, notice.id)).read_at is None

    async def test_unknown_id_404(self, client, user, auth_as):
        response = await client.post(read_url(uuid.uuid4()), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == NOT_FOUND

    async def test_anonymous_401(self, client, session, user):
        notice = await add_notice(session, user, minutes=0)

        response = await client.post(read_url(notice.id))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert (await db_notice(session, notice.id)).read_at is None


class TestMarkAllRead:
    async def test_204_marks_own_unread(self, client, session, user, auth_as, monkeypatch):
        other = await create_user(session)
        already = await add_notice(session, user, minutes=0, read=True)
        await add_notice(session, user, minutes=1)
        await add_notice(session, user, minutes=2)
        await add_notice(session, other, minutes=3)
        headers = await auth_as(user)
        at = clock.now().replace(microsecond=0) + timedelta(minutes=1)
        monkeypatch.setattr(clock, "now", lambda: at)

        response = await client.post(READ_ALL, headers=headers)

        assert response.status_code == 204
        assert response.content == b""
        assert await read_states(session, user) == [already.read_at, at, at]
        assert await read_states(session, other) == [None]

    async def test_anonymous_401(self, client, session, user):
        await add_notice(session, user, minutes=0)

        response = await client.post(READ_ALL)

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert await read_states(session, user) == [None]


class TestGetPreferences:
    async def test_defaults(self, client, user, auth_as):
        response = await client.get(PREFERENCES, headers=await auth_as(user))

        assert response.status_code == 200
        assert response.json() == DEFAULTS
        assert len(DEFAULTS) == 16

    async def test_stored_choice(self, client, session, user, auth_as):
        session.add(
            NotificationPreference(
                user_id=user.id, kind=NotificationKind.EVENT_REMINDER, email=False, in_app=True
            )
        )

        response = await client.get(PREFERENCES, headers=await auth_as(user))

        assert response.status_code == 200
        assert response.json() == {
            **DEFAULTS,
            "EVENT_REMINDER": {"email": False, "in_app": True},
        }

    async def test_anonymous_401(self, client):
        response = await client.get(PREFERENCES)

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


async def stored_preferences(session: AsyncSession, user: User) -> dict[str, tuple[bool, bool]]:
    rows = await session.scalars(
        select(NotificationPreference)
        .where(col(NotificationPreference.user_id) == user.id)
        .execution_options(populate_existing=True)
    )
    return {row.kind.value: (row.email, row.in_app) for row in rows}


class TestUpdatePreferences:
    async def test_email_off_200(self, client, session, user, auth_as):
        headers = await auth_as(user)

        response = await client.patch(
            PREFERENCES, json={"EVENT_APPROVED": {"email": False}}, headers=headers
        )

        expected = {**DEFAULTS, "EVENT_APPROVED": {"email": False, "in_app": True}}
        assert response.status_code == 200
        assert response.json() == expected
        assert await stored_preferences(session, user) == {"EVENT_APPROVED": (False, True)}
        assert (await client.get(PREFERENCES, headers=headers)).json() == expected

    async def test_second_patch_keeps_first(self, client, session, user, auth_as):
        headers = await auth_as(user)
        first = await client.patch(
            PREFERENCES, json={"EVENT_APPROVED": {"email": False}}, headers=headers
        )

        second = await client.patch(
            PREFERENCES, json={"EVENT_APPROVED": {"in_app": False}}, headers=headers
        )

        assert first.status_code == 200
        assert second.status_code == 200
        assert second.json() == {
            **DEFAULTS,
            "EVENT_APPROVED": {"email": False, "in_app": False},
        }
        assert await stored_preferences(session, user) == {"EVENT_APPROVED": (False, False)}

    async def test_back_on(self, client, session, user, auth_as):
        headers = await auth_as(user)
        await client.patch(PREFERENCES, json={"ROLE_CHANGED": {"email": False}}, headers=headers)

        response = await client.patch(
            PREFERENCES, json={"ROLE_CHANGED": {"email": True}}, headers=headers
        )

        assert response.status_code == 200
        assert response.json() == DEFAULTS
        assert await stored_preferences(session, user) == {"ROLE_CHANGED": (True, True)}

    async def test_unknown_kind_422(self, client, session, user, auth_as):
        response = await client.patch(
            PREFERENCES,
            json={"EVENT_APPROVED": {"email": False}, "NO_SUCH_KIND": {"email": False}},
            headers=await auth_as(user),
        )

        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "NO_SUCH_KIND", "[key]"]
        assert await stored_preferences(session, user) == {}

    @pytest.mark.parametrize(
        "body",
        [
            {"EVENT_APPROVED": {"email": "sometimes"}},
            {"EVENT_APPROVED": {"in_app": [True]}},
            {"EVENT_APPROVED": True},
        ],
        ids=["string", "list", "not-an-object"],
    )
    async def test_bad_value_422(self, client, session, user, auth_as, body):
        response = await client.patch(PREFERENCES, json=body, headers=await auth_as(user))

        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"][:2] == ["body", "EVENT_APPROVED"]
        assert await stored_preferences(session, user) == {}

    async def test_empty_body_unchanged(self, client, session, user, auth_as):
        response = await client.patch(PREFERENCES, json={}, headers=await auth_as(user))

        assert response.status_code == 200
        assert response.json() == DEFAULTS
        assert await stored_preferences(session, user) == {}

    async def test_only_own_preferences(self, client, session, user, auth_as):
        other = await create_user(session)

        response = await client.patch(
            PREFERENCES, json={"EVENT_APPROVED": {"email": False}}, headers=await auth_as(user)
        )

        assert response.status_code == 200
        assert await stored_preferences(session, other) == {}

    async def test_anonymous_401(self, client):
        response = await client.patch(PREFERENCES, json={"EVENT_APPROVED": {"email": False}})

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
