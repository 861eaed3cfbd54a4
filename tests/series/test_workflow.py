"""The series' state machine (API-attendees.md, Recurring series): approve, reject, submit,
delete and cancel carry the occurrences not CANCELLED along, with one notice per series and an
audit entry; on an occurrence the event routes approve, reject, submit and DELETE are 409
PART_OF_SERIES, and its own cancel tells only its registrants."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from api.audit.models import AuditAction, AuditLog
from api.events.models import Event, EventStatus
from api.notifications.models import NotificationKind
from api.registrations.models import Registration, RegistrationStatus
from tests.factories import create_series, create_user, queued_mail, register
from tests.series.conftest import (
    EVENTS,
    SERIES,
    db_series,
    iso,
    notices,
    occurrences,
    outbox_after,
    outbox_mark,
)

FEEDBACK = "Please add an agenda for each date."
CANNOT_REVIEW_OWN = {
    "detail": {
        "code": "CANNOT_REVIEW_OWN_EVENT",
        "reason": "Another manager or an admin must review this event",
    }
}


def transition_error(source: str, target: str) -> dict[str, Any]:
    return {
        "detail": {
            "code": "INVALID_EVENT_TRANSITION",
            "reason": f"An event cannot go from {source} to {target}",
        }
    }


def part_of_series(series_id: uuid.UUID, action: str) -> dict[str, Any]:
    return {
        "detail": {
            "code": "PART_OF_SERIES",
            "reason": f"The event is an occurrence of a series: {action} the series instead",
            "series_id": str(series_id),
        }
    }


async def audit_entries(session, target_id: uuid.UUID) -> list[dict[str, Any]]:
    entries = await session.scalars(
        select(AuditLog).where(col(AuditLog.target_id) == target_id).order_by(col(AuditLog.at))
    )
    return [
        {
            "actor_id": entry.actor_id,
            "action": entry.action,
            "target_type": entry.target_type,
            "before": entry.before,
            "after": entry.after,
            "reason": entry.reason,
        }
        for entry in entries
    ]


async def cancel_one(session, event: Event) -> None:
    """An occurrence cancelled on its own, before the series moves."""
    event.status, event.cancelled_at = EventStatus.CANCELLED, event.starts_at
    session.add(event)
    await session.flush()


def statuses(events: list[Event]) -> list[EventStatus]:
    return [event.status for event in events]


class TestApproveSeries:
    async def test_other_manager_200_carries_the_occurrences_not_cancelled(
        self, client, session, manager, other_manager, auth_as, now
    ):
        series, events = await create_series(
            session, owner=manager, status=EventStatus.PENDING, count=3
        )
        await cancel_one(session, events[1])
        seen = await outbox_mark(session)

        response = await client.post(
            f"{SERIES}/{series.id}/approve", headers=await auth_as(other_manager)
        )

        assert response.status_code == 200
        body = response.json()
        assert (body["status"], body["reviewed_by"], body["published_at"]) == (
            "PUBLISHED",
            str(other_manager.id),
            iso(now),
        )
        stored = await occurrences(session, series.id)
        assert statuses(stored) == [
            EventStatus.PUBLISHED,
            EventStatus.CANCELLED,
            EventStatus.PUBLISHED,
        ]
        assert [(e.reviewed_by, e.published_at) for e in (stored[0], stored[2])] == [
            (other_manager.id, now)
        ] * 2
        assert [(kind, data["id"], data["status"]) for kind, data in await outbox_after(
            session, seen
        )] == [
            ("event.published", str(stored[0].id), "PUBLISHED"),
            ("event.published", str(stored[2].id), "PUBLISHED"),
        ]  # fmt: skip

    async def test_creator_told_once_and_audited(
        self, client, session, manager, other_manager, auth_as, now
    ):
        series, events = await create_series(
            session, owner=manager, status=EventStatus.PENDING, count=4
        )

        response = await client.post(
            f"{SERIES}/{series.id}/approve", headers=await auth_as(other_manager)
        )

        assert response.status_code == 200
        assert await notices(session, NotificationKind.EVENT_APPROVED) == [
            (manager.id, {"series_id": str(series.id)})
        ]
        assert [(mail.to, mail.subject) for mail in await queued_mail(session)] == [
            (manager.email, f"Your event is published: {events[0].title}")
        ]
        assert await audit_entries(session, series.id) == [
            {
                "actor_id": other_manager.id,
                "action": AuditAction.SERIES_APPROVED,
                "target_type": "series",
                "before": {"status": "PENDING"},
                "after": {"status": "PUBLISHED", "published_at": now.isoformat()},
                "reason": None,
            }
        ]

    async def test_admin_on_own_series_200(self, client, session, admin, auth_as):
        series, _ = await create_series(session, owner=admin, status=EventStatus.PENDING)

        response = await client.post(f"{SERIES}/{series.id}/approve", headers=await auth_as(admin))

        assert (response.status_code, response.json()["status"]) == (200, "PUBLISHED")

    @pytest.mark.security("AC-3")
    async def test_manager_on_own_series_403(self, client, session, manager, auth_as):
        series, events = await create_series(session, owner=manager, status=EventStatus.PENDING)

        response = await client.post(
            f"{SERIES}/{series.id}/approve", headers=await auth_as(manager)
        )

        assert response.status_code == 403
        assert response.json() == CANNOT_REVIEW_OWN
        assert statuses(await occurrences(session, series.id)) == [EventStatus.PENDING] * 2
        assert await audit_entries(session, series.id) == []

    async def test_user_403(self, client, session, manager, user, auth_as):
        series, _ = await create_series(session, owner=manager, status=EventStatus.PENDING)

        response = await client.post(f"{SERIES}/{series.id}/approve", headers=await auth_as(user))

        assert (response.status_code, response.json()) == (403, {"detail": "FORBIDDEN"})

    async def test_unknown_404(self, client, admin, auth_as):
        response = await client.post(
            f"{SERIES}/{uuid.uuid4()}/approve", headers=await auth_as(admin)
        )

        assert (response.status_code, response.json()) == (404, {"detail": "SERIES_NOT_FOUND"})

    @pytest.mark.parametrize(
        "status", [EventStatus.PUBLISHED, EventStatus.REJECTED, EventStatus.CANCELLED]
    )
    async def test_not_pending_409(self, client, session, manager, other_manager, auth_as, status):
        series, _ = await create_series(session, owner=manager, status=status)

        response = await client.post(
            f"{SERIES}/{series.id}/approve", headers=await auth_as(other_manager)
        )

        assert response.status_code == 409
        assert response.json() == transition_error(status, "PUBLISHED")
        assert statuses(await occurrences(session, series.id)) == [status] * 2
        assert await audit_entries(session, series.id) == []
        assert await queued_mail(session) == []


class TestRejectSeries:
    async def test_other_manager_200(self, client, session, manager, other_manager, auth_as):
        series, events = await create_series(
            session, owner=manager, status=EventStatus.PENDING, count=3
        )
        seen = await outbox_mark(session)

        response = await client.post(
            f"{SERIES}/{series.id}/reject",
            json={"feedback": FEEDBACK},
            headers=await auth_as(other_manager),
        )

        assert response.status_code == 200
        assert (response.json()["status"], response.json()["review_feedback"]) == (
            "REJECTED",
            FEEDBACK,
        )
        stored = await occurrences(session, series.id)
        assert [(e.status, e.review_feedback, e.reviewed_by) for e in stored] == [
            (EventStatus.REJECTED, FEEDBACK, other_manager.id)
        ] * 3
        assert [kind for kind, _ in await outbox_after(session, seen)] == ["event.rejected"] * 3
        assert await notices(session, NotificationKind.EVENT_REJECTED) == [
            (manager.id, {"series_id": str(series.id), "feedback": FEEDBACK})
        ]
        assert await audit_entries(session, series.id) == [
            {
                "actor_id": other_manager.id,
                "action": AuditAction.SERIES_REJECTED,
                "target_type": "series",
                "before": {"status": "PENDING"},
                "after": {"status": "REJECTED", "review_feedback": FEEDBACK},
                "reason": FEEDBACK,
            }
        ]

    async def test_manager_on_own_series_403(self, client, session, manager, auth_as):
        series, _ = await create_series(session, owner=manager, status=EventStatus.PENDING)

        response = await client.post(
            f"{SERIES}/{series.id}/reject",
            json={"feedback": FEEDBACK},
            headers=await auth_as(manager),
        )

        assert (response.status_code, response.json()) == (403, CANNOT_REVIEW_OWN)

    async def test_feedback_required_422(self, client, session, manager, other_manager, auth_as):
        series, _ = await create_series(session, owner=manager, status=EventStatus.PENDING)

        response = await client.post(
            f"{SERIES}/{series.id}/reject", json={}, headers=await auth_as(other_manager)
        )

        assert response.status_code == 422
        assert statuses(await occurrences(session, series.id)) == [EventStatus.PENDING] * 2


class TestSubmitSeries:
    async def test_creator_resubmits_200(
        self, client, session, manager, other_manager, admin, auth_as
    ):
        series, events = await create_series(
            session, owner=manager, status=EventStatus.REJECTED, count=3
        )
        await cancel_one(session, events[0])
        seen = await outbox_mark(session)

        response = await client.post(f"{SERIES}/{series.id}/submit", headers=await auth_as(manager))

        assert (response.status_code, response.json()["status"]) == (200, "PENDING")
        assert statuses(await occurrences(session, series.id)) == [
            EventStatus.CANCELLED,
            EventStatus.PENDING,
            EventStatus.PENDING,
        ]
        assert [kind for kind, _ in await outbox_after(session, seen)] == ["event.submitted"] * 2
        data = {"series_id": str(series.id)}
        assert await notices(session, NotificationKind.EVENT_SUBMITTED) == sorted(
            [(other_manager.id, data), (admin.id, data)], key=str
        )

    async def test_other_manager_403(self, client, session, manager, other_manager, auth_as):
        series, _ = await create_series(session, owner=manager, status=EventStatus.REJECTED)

        response = await client.post(
            f"{SERIES}/{series.id}/submit", headers=await auth_as(other_manager)
        )

        assert response.status_code == 403
        assert response.json() == {
            "detail": {"code": "NOT_EVENT_OWNER", "reason": "Only the series' creator may"}
        }

    async def test_user_404(self, client, session, manager, user, auth_as):
        series, _ = await create_series(session, owner=manager, status=EventStatus.REJECTED)

        response = await client.post(f"{SERIES}/{series.id}/submit", headers=await auth_as(user))

        assert (response.status_code, response.json()) == (404, {"detail": "SERIES_NOT_FOUND"})

    async def test_not_rejected_409(self, client, session, manager, auth_as):
        series, _ = await create_series(session, owner=manager, status=EventStatus.PENDING)

        response = await client.post(f"{SERIES}/{series.id}/submit", headers=await auth_as(manager))

        assert (response.status_code, response.json()) == (
            409,
            transition_error("PENDING", "PENDING"),
        )


class TestDeleteSeries:
    @pytest.mark.parametrize("status", [EventStatus.PENDING, EventStatus.REJECTED])
    async def test_creator_204_deletes_every_occurrence(
        self, client, session, manager, auth_as, status
    ):
        series, events = await create_series(session, owner=manager, status=status, count=3)
        await cancel_one(session, events[2])
        ids = [event.id for event in events]
        seen = await outbox_mark(session)

        response = await client.delete(f"{SERIES}/{series.id}", headers=await auth_as(manager))

        assert response.status_code == 204
        assert await db_series(session, series.id) is None
        assert await occurrences(session, series.id) == []
        remaining = await session.scalars(select(Event).where(col(Event.id).in_(ids)))
        assert remaining.all() == []
        assert await outbox_after(session, seen) == [
            ("event.deleted", {"id": str(event_id), "created_by": str(manager.id)})
            for event_id in ids
        ]

    async def test_admin_204(self, client, session, manager, admin, auth_as):
        series, _ = await create_series(session, owner=manager, status=EventStatus.PENDING)

        response = await client.delete(f"{SERIES}/{series.id}", headers=await auth_as(admin))

        assert response.status_code == 204
        assert await db_series(session, series.id) is None

    @pytest.mark.parametrize("status", [EventStatus.PUBLISHED, EventStatus.CANCELLED])
    async def test_not_deletable_409(self, client, session, manager, auth_as, status):
        series, _ = await create_series(session, owner=manager, status=status)

        response = await client.delete(f"{SERIES}/{series.id}", headers=await auth_as(manager))

        assert response.status_code == 409
        assert response.json() == {
            "detail": {
                "code": "INVALID_EVENT_TRANSITION",
                "reason": f"A {status} series cannot be deleted; cancel it instead",
            }
        }
        assert len(await occurrences(session, series.id)) == 2

    async def test_other_manager_403(self, client, session, manager, other_manager, auth_as):
        series, _ = await create_series(session, owner=manager, status=EventStatus.PENDING)

        response = await client.delete(
            f"{SERIES}/{series.id}", headers=await auth_as(other_manager)
        )

        assert response.status_code == 403
        assert response.json() == {
            "detail": {
                "code": "NOT_EVENT_OWNER",
                "reason": "Only the series' creator or an admin may",
            }
        }
        assert await db_series(session, series.id) is not None


class TestCancelSeries:
    async def test_cancels_what_has_not_started_and_tells_each_registrant(
        self, client, session, manager, auth_as, now
    ):
        series, events = await create_series(session, owner=manager, count=4)
        started, alone, upcoming, last = events
        started.starts_at, started.ends_at = now - timedelta(hours=1), now + timedelta(hours=1)
        session.add(started)
        await cancel_one(session, alone)
        ada, bob, cy = [await create_user(session) for _ in range(3)]
        await register(session, started, ada)
        await register(session, upcoming, ada)
        await register(session, upcoming, bob)
        await register(session, last, bob)
        waiting = await register(session, last, cy, RegistrationStatus.WAITLISTED)
        seen = await outbox_mark(session)

        response = await client.post(
            f"{SERIES}/{series.id}/cancel",
            json={"reason": "The room is gone"},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        assert (response.json()["status"], response.json()["cancelled_at"]) == (
            "CANCELLED",
            iso(now),
        )
        stored = await occurrences(session, series.id)
        assert [(e.status, e.registered_count, e.cancellation_reason) for e in stored] == [
            (EventStatus.PUBLISHED, 1, None),
            (EventStatus.CANCELLED, 0, None),
            (EventStatus.CANCELLED, 0, "The room is gone"),
            (EventStatus.CANCELLED, 0, "The room is gone"),
        ]
        live = await session.scalars(
            select(Registration).where(col(Registration.status) != RegistrationStatus.CANCELLED)
        )
        assert [(r.event_id, r.user_id) for r in live] == [(started.id, ada.id)]
        assert await notices(session, NotificationKind.EVENT_CANCELLED) == sorted(
            [
                (ada.id, {"event_id": str(upcoming.id), "reason": "The room is gone"}),
                (bob.id, {"event_id": str(upcoming.id), "reason": "The room is gone"}),
                (bob.id, {"event_id": str(last.id), "reason": "The room is gone"}),
                (cy.id, {"event_id": str(last.id), "reason": "The room is gone"}),
            ],
            key=str,
        )
        written = await outbox_after(session, seen)
        assert sorted((kind, data.get("event_id", data["id"])) for kind, data in written) == sorted(
            [
                ("registration.cancelled", str(upcoming.id)),
                ("registration.cancelled", str(upcoming.id)),
                ("registration.cancelled", str(last.id)),
                ("registration.cancelled", str(last.id)),
                ("event.cancelled", str(upcoming.id)),
                ("event.cancelled", str(last.id)),
            ]
        )
        assert waiting.id in {uuid.UUID(d["id"]) for k, d in written if k.startswith("reg")}
        assert await audit_entries(session, series.id) == [
            {
                "actor_id": manager.id,
                "action": AuditAction.SERIES_CANCELLED,
                "target_type": "series",
                "before": {"status": "PUBLISHED"},
                "after": {
                    "status": "CANCELLED",
                    "cancelled_at": now.isoformat(),
                    "cancelled_event_ids": [str(upcoming.id), str(last.id)],
                },
                "reason": "The room is gone",
            }
        ]

    async def test_pending_series_200(self, client, session, manager, admin, auth_as):
        series, _ = await create_series(session, owner=manager, status=EventStatus.PENDING)

        response = await client.post(f"{SERIES}/{series.id}/cancel", headers=await auth_as(admin))

        assert (response.status_code, response.json()["status"]) == (200, "CANCELLED")
        assert statuses(await occurrences(session, series.id)) == [EventStatus.CANCELLED] * 2

    @pytest.mark.parametrize("status", [EventStatus.REJECTED, EventStatus.CANCELLED])
    async def test_not_cancellable_409(self, client, session, manager, auth_as, status):
        series, _ = await create_series(session, owner=manager, status=status)

        response = await client.post(f"{SERIES}/{series.id}/cancel", headers=await auth_as(manager))

        assert (response.status_code, response.json()) == (
            409,
            transition_error(status, "CANCELLED"),
        )
        assert statuses(await occurrences(session, series.id)) == [status] * 2

    async def test_other_manager_403(self, client, session, manager, other_manager, auth_as):
        series, _ = await create_series(session, owner=manager)

        response = await client.post(
            f"{SERIES}/{series.id}/cancel", headers=await auth_as(other_manager)
        )

        assert response.status_code == 403
        assert statuses(await occurrences(session, series.id)) == [EventStatus.PUBLISHED] * 2


class TestOccurrences:
    @pytest.mark.parametrize(
        ("method", "action", "verb", "status", "body"),
        [
            ("POST", "approve", "review", EventStatus.PENDING, None),
            ("POST", "reject", "review", EventStatus.PENDING, {"feedback": FEEDBACK}),
            ("POST", "submit", "submit", EventStatus.REJECTED, None),
            ("DELETE", "", "delete", EventStatus.PENDING, None),
        ],
    )
    async def test_part_of_series_409(
        self, client, session, manager, admin, auth_as, method, action, verb, status, body
    ):
        series, events = await create_series(session, owner=manager, status=status)
        caller = admin if verb == "review" else manager
        path = f"{EVENTS}/{events[0].id}" + (f"/{action}" if action else "")

        response = await client.request(method, path, json=body, headers=await auth_as(caller))

        assert response.status_code == 409
        assert response.json() == part_of_series(series.id, verb)
        assert statuses(await occurrences(session, series.id)) == [status] * 2
        assert await queued_mail(session) == []

    async def test_own_cancel_tells_only_its_registrants(self, client, session, manager, auth_as):
        series, events = await create_series(session, owner=manager)
        ada, bob = await create_user(session), await create_user(session)
        await register(session, events[0], ada)
        await register(session, events[1], bob)

        response = await client.post(
            f"{EVENTS}/{events[0].id}/cancel", headers=await auth_as(manager)
        )

        assert (response.status_code, response.json()["series_id"]) == (200, str(series.id))
        assert statuses(await occurrences(session, series.id)) == [
            EventStatus.CANCELLED,
            EventStatus.PUBLISHED,
        ]
        assert await notices(session, NotificationKind.EVENT_CANCELLED) == [
            (ada.id, {"event_id": str(events[0].id)})
        ]
        stored = await db_series(session, series.id)
        assert stored is not None
        assert stored.status is EventStatus.PUBLISHED
