"""GET /api/v1/audit-log (API.md, Audit log and administration): admins read the trail that
staff actions write; nothing can change it.

Each test first empties audit_log inside its own (rolled-back) transaction, so entries that
committed tests leave behind cannot change its exact pages.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

import api.clock
from api.events.models import EventStatus
from api.users.models import UserRole
from tests.factories import create_event, create_user

URL = "/api/v1/audit-log"
BASE = f"http://testserver{URL}"
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
FORBIDDEN = {"detail": "FORBIDDEN"}
ENTRY_FIELDS = {
    "id",
    "at",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "reason",
}
NOW = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)
T1, T2, T3, T4 = (NOW + timedelta(minutes=m) for m in (1, 2, 3, 4))


@dataclass
class Trail:
    """The four entries written through the API, oldest first, as API.md shows them."""

    headers: dict[str, str]
    role_changed: dict[str, Any]
    approved: dict[str, Any]
    rejected: dict[str, Any]
    cancelled: dict[str, Any]

    @property
    def newest_first(self) -> list[dict[str, Any]]:
        return [self.cancelled, self.rejected, self.approved, self.role_changed]


def parsed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries with `at` parsed and `id` dropped (ids are random; their shape is tested apart)."""
    return [
        {**{k: v for k, v in item.items() if k != "id"}, "at": datetime.fromisoformat(item["at"])}
        for item in items
    ]


async def empty_audit_log(session: AsyncSession) -> None:
    await session.execute(text("DELETE FROM audit_log"))


@pytest.fixture
async def empty_log(session):
    await empty_audit_log(session)


@pytest.fixture
async def trail(client, session, auth_as, monkeypatch) -> Trail:
    """A role change, an approval, a rejection and a cancellation, a minute apart."""
    await empty_audit_log(session)
    clock = {"now": NOW}
    monkeypatch.setattr(api.clock, "now", lambda: clock["now"])
    admin = await create_user(session, role=UserRole.ADMIN)
    manager = await create_user(session, role=UserRole.MANAGER)
    member = await create_user(session)
    admins_event = await create_event(session, owner=admin, status=EventStatus.PENDING)
    managers_pending = await create_event(session, owner=manager, status=EventStatus.PENDING)
    managers_published = await create_event(session, owner=manager)
    headers = await auth_as(admin)
    manager_headers = await auth_as(manager)

    clock["now"] = T1
    response = await client.put(
        f"/api/v1/users/{member.id}/role",
        json={"role": "MANAGER", "reason": "Runs the Berlin meetup"},
        headers=headers,
    )
    assert response.status_code == 200
    clock["now"] = T2
    response = await client.post(
        f"/api/v1/events/{admins_event.id}/approve", headers=manager_headers
    )
    assert response.status_code == 200
    clock["now"] = T3
    response = await client.post(
        f"/api/v1/events/{managers_pending.id}/reject",
        json={"feedback": "Please add an agenda."},
        headers=headers,
    )
    assert response.status_code == 200
    clock["now"] = T4
    response = await client.post(
        f"/api/v1/events/{managers_published.id}/cancel",
        json={"reason": "The venue closed."},
        headers=headers,
    )
    assert response.status_code == 200

    return Trail(
        headers=headers,
        role_changed={
            "at": T1,
            "actor_id": str(admin.id),
            "action": "ROLE_CHANGED",
            "target_type": "user",
            "target_id": str(member.id),
            "before": {"role": "AUTHENTICATED"},
            "after": {"role": "MANAGER"},
            "reason": "Runs the Berlin meetup",
        },
        approved={
            "at": T2,
            "actor_id": str(manager.id),
            "action": "EVENT_APPROVED",
            "target_type": "event",
            "target_id": str(admins_event.id),
            "before": {"status": "PENDING"},
            "after": {"status": "PUBLISHED", "published_at": T2.isoformat()},
            "reason": None,
        },
        rejected={
            "at": T3,
            "actor_id": str(admin.id),
            "action": "EVENT_REJECTED",
            "target_type": "event",
            "target_id": str(managers_pending.id),
            "before": {"status": "PENDING"},
            "after": {"status": "REJECTED", "review_feedback": "Please add an agenda."},
            "reason": "Please add an agenda.",
        },
        cancelled={
            "at": T4,
            "actor_id": str(admin.id),
            "action": "EVENT_CANCELLED",
            "target_type": "event",
            "target_id": str(managers_published.id),
            "before": {"status": "PUBLISHED", "registered_count": 0, "waitlist_count": 0},
            "after": {"status": "CANCELLED", "registered_count": 0, "waitlist_count": 0},
            "reason": "The venue closed.",
        },
    )


class TestListAuditLog:
    async def test_anonymous_401(self, client):
        response = await client.get(URL)

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"

    async def test_user_403(self, client, user, auth_as):
        response = await client.get(URL, headers=await auth_as(user))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN

    async def test_manager_403(self, client, manager, auth_as):
        response = await client.get(URL, headers=await auth_as(manager))

        assert response.status_code == 403
        assert response.json() == FORBIDDEN

    async def test_admin_200_newest_first(self, client, trail):
        response = await client.get(URL, headers=trail.headers)

        assert response.status_code == 200
        body = response.json()
        assert {k: v for k, v in body.items() if k != "items"} == {
            "total": 4,
            "total_capped": False,
            "page": 1,
            "size": 20,
            "pages": 1,
            "links": {
                "self": f"{BASE}?page=1&size=20",
                "first": f"{BASE}?page=1&size=20",
                "last": f"{BASE}?page=1&size=20",
                "next": None,
                "prev": None,
            },
        }
        assert parsed(body["items"]) == trail.newest_first

    async def test_entry_has_exactly_the_documented_fields(self, client, session, trail):
        response = await client.get(URL, headers=trail.headers)

        items = response.json()["items"]
        assert [set(item) for item in items] == [ENTRY_FIELDS] * 4
        ids = await session.scalars(
            text("SELECT id FROM audit_log ORDER BY at DESC"),
        )
        assert [uuid.UUID(item["id"]) for item in items] == ids.all()

    @pytest.mark.usefixtures("empty_log")
    async def test_admin_with_no_entries_gets_an_empty_page(self, client, admin, auth_as):
        response = await client.get(URL, headers=await auth_as(admin))

        assert response.status_code == 200
        assert response.json()["items"] == []
        assert response.json()["total"] == 0

    async def test_filter_actor_id(self, client, trail):
        response = await client.get(
            URL, params={"actor_id": trail.approved["actor_id"]}, headers=trail.headers
        )

        assert response.status_code == 200
        assert parsed(response.json()["items"]) == [trail.approved]
        assert response.json()["total"] == 1

    async def test_filter_target_id(self, client, trail):
        response = await client.get(
            URL, params={"target_id": trail.role_changed["target_id"]}, headers=trail.headers
        )

        assert response.status_code == 200
        assert parsed(response.json()["items"]) == [trail.role_changed]

    async def test_filter_action(self, client, trail):
        response = await client.get(URL, params={"action": "EVENT_REJECTED"}, headers=trail.headers)

        assert response.status_code == 200
        assert parsed(response.json()["items"]) == [trail.rejected]

    async def test_since_is_inclusive_and_until_exclusive(self, client, trail):
        response = await client.get(
            URL,
            params={"since": T2.isoformat(), "until": T4.isoformat()},
            headers=trail.headers,
        )

        assert response.status_code == 200
        assert parsed(response.json()["items"]) == [trail.rejected, trail.approved]
        assert response.json()["total"] == 2

    async def test_since_in_another_offset(self, client, trail):
        since = (T3 + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")  # T3, in +02:00

        response = await client.get(URL, params={"since": since}, headers=trail.headers)

        assert response.status_code == 200
        assert parsed(response.json()["items"]) == [trail.cancelled, trail.rejected]

    async def test_filters_combine(self, client, trail):
        response = await client.get(
            URL,
            params={"actor_id": trail.approved["actor_id"], "action": "EVENT_CANCELLED"},
            headers=trail.headers,
        )

        assert response.status_code == 200
        assert response.json()["items"] == []
        assert response.json()["total"] == 0

    async def test_second_page_of_one(self, client, trail):
        response = await client.get(URL, params={"page": 2, "size": 1}, headers=trail.headers)

        assert response.status_code == 200
        body = response.json()
        assert parsed(body["items"]) == [trail.rejected]
        assert (body["total"], body["page"], body["size"], body["pages"]) == (4, 2, 1, 4)
        assert body["links"] == {
            "self": f"{BASE}?page=2&size=1",
            "first": f"{BASE}?page=1&size=1",
            "last": f"{BASE}?page=4&size=1",
            "next": f"{BASE}?page=3&size=1",
            "prev": f"{BASE}?page=1&size=1",
        }

    @pytest.mark.parametrize(
        ("params", "loc", "error_type"),
        [
            pytest.param({"action": "EVENT_DELETED"}, "action", "enum", id="bad-action"),
            pytest.param({"actor_id": "42"}, "actor_id", "uuid_parsing", id="bad-actor-id"),
            pytest.param({"target_id": "x"}, "target_id", "uuid_parsing", id="bad-target-id"),
            pytest.param(
                {"since": "2031-03-04T09:00:00"}, "since", "timezone_aware", id="naive-since"
            ),
            pytest.param(
                {"until": "2031-03-04T09:00:00"}, "until", "timezone_aware", id="naive-until"
            ),
            pytest.param({"since": "yesterday"}, "since", "datetime_from_date_parsing", id="text"),
            pytest.param({"size": 0}, "size", "greater_than_equal", id="size-zero"),
        ],
    )
    async def test_bad_query_422(self, client, admin, auth_as, params, loc, error_type):
        response = await client.get(URL, params=params, headers=await auth_as(admin))

        assert response.status_code == 422
        assert [(e["type"], e["loc"]) for e in response.json()["detail"]] == [
            (error_type, ["query", loc])
        ]


class TestAuditLogIsReadOnly:
    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
    async def test_no_write_method(self, client, session, trail, method):
        response = await client.request(method, URL, json={}, headers=trail.headers)

        assert response.status_code == 405
        assert response.json() == {"detail": "METHOD_NOT_ALLOWED"}
        count = await session.scalar(text("SELECT count(*) FROM audit_log"))
        assert count == 4

    @pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
    async def test_no_route_for_one_entry(self, client, trail, method):
        response = await client.request(method, f"{URL}/{uuid.uuid4()}", headers=trail.headers)

        assert response.status_code == 404
        assert response.json() == {"detail": "NOT_FOUND"}

    def test_openapi_lists_only_get(self, app):
        paths = {
            path: set(operations)
            for path, operations in app.openapi()["paths"].items()
            if path.startswith(URL)
        }

        assert paths == {URL: {"get"}}
