"""POST /events/{id}/check-in {code} (API-integrations.md, Check-in codes and tickets): the
holder of a check-in code is checked in as POST .../registrations/{id}/check-in does."""

import uuid
from datetime import datetime
from typing import Any

import pytest

from api.events.models import Event
from api.registrations.models import Registration
from api.users.models import UserRole
from tests.events.test_registrations import attendee_view, parsed_attendee
from tests.factories import create_event, create_user, register
from tests.registrations.test_checkin_codes import row_of

CHECKIN_CODE_NOT_FOUND = {"detail": "CHECKIN_CODE_NOT_FOUND"}
NOT_EVENT_OWNER = {
    "detail": {
        "code": "NOT_EVENT_OWNER",
        "reason": "Only the event's creator, managers and admins may",
    }
}


def check_in_url(event_id: uuid.UUID) -> str:
    return f"/api/v1/events/{event_id}/check-in"


def grouped(code: str) -> str:
    """The code as someone might type it: lower case, in groups."""
    return f"{code[:3]}-{code[3:6]} {code[6:]}".lower()


def misread(code: str) -> str:
    """The code with 0 typed as O and 1 as I or L, where it has them."""
    return code.replace("0", "O").replace("1", "I", 1).replace("1", "l")


async def confirmed(session: Any, event: Event) -> tuple[Registration, Any]:
    attendee = await create_user(session)
    registration = await register(session, event, attendee)
    assert registration.checkin_code is not None
    return registration, attendee


class TestCheckInByCode:
    async def _check_in_200(self, client, session, event, staff, auth_as) -> None:
        registration, attendee = await confirmed(session, event)

        response = await client.post(
            check_in_url(event.id),
            json={"code": registration.checkin_code},
            headers=await auth_as(staff),
        )

        assert response.status_code == 200
        row = await row_of(session, registration.id)
        assert row.checked_in_at is not None
        assert parsed_attendee(response.json()) == attendee_view(row, attendee, None)

    async def test_creator_200(self, client, session, event, manager, auth_as):
        await self._check_in_200(client, session, event, manager, auth_as)

    async def test_other_manager_200(self, client, session, event, auth_as):
        other_manager = await create_user(session, role=UserRole.MANAGER)
        await self._check_in_200(client, session, event, other_manager, auth_as)

    async def test_admin_200(self, client, session, event, admin, auth_as):
        await self._check_in_200(client, session, event, admin, auth_as)

    @pytest.mark.parametrize(
        "typing",
        [
            str.lower,
            grouped,
            misread,
            lambda code: f"  {' '.join(code)}  ",
            lambda code: "-".join(code),
        ],
        ids=["lower", "grouped", "misread", "spaced", "hyphens"],
    )
    async def test_as_typed_200(self, client, session, event, manager, auth_as, typing):
        registration, attendee = await confirmed(session, event)
        assert registration.checkin_code is not None
        # A code with a 0 and two 1s, so that misread() types an O, an I and an L.
        registration.checkin_code = "01" + registration.checkin_code[2:-1] + "1"
        session.add(registration)
        await session.flush()

        response = await client.post(
            check_in_url(event.id),
            json={"code": typing(registration.checkin_code)},
            headers=await auth_as(manager),
        )

        assert response.status_code == 200
        row = await row_of(session, registration.id)
        assert parsed_attendee(response.json()) == attendee_view(row, attendee, None)

    def test_misread_types_o_i_and_l(self):
        assert misread("01ABCDEF10") == "OIABCDEFlO"

    async def test_another_events_code_404(self, client, session, event, manager, auth_as):
        other_event = await create_event(session, owner=manager)
        registration, _ = await confirmed(session, other_event)

        response = await client.post(
            check_in_url(event.id),
            json={"code": registration.checkin_code},
            headers=await auth_as(manager),
        )

        assert response.status_code == 404
        assert response.json() == CHECKIN_CODE_NOT_FOUND
        assert (await row_of(session, registration.id)).checked_in_at is None

    @pytest.mark.parametrize("code", ["7K3M9QX2T", "7K3M9QX2TDX", "7K3M9QX2TU", "!!!!!!!!!!", " "])
    async def test_malformed_404(self, client, event, manager, auth_as, code):
        response = await client.post(
            check_in_url(event.id), json={"code": code}, headers=await auth_as(manager)
        )

        assert response.status_code == 404
        assert response.json() == CHECKIN_CODE_NOT_FOUND

    async def test_unknown_code_404(self, client, session, event, manager, auth_as):
        registration, _ = await confirmed(session, event)
        unknown = "0000000000" if registration.checkin_code != "0000000000" else "1111111111"

        response = await client.post(
            check_in_url(event.id), json={"code": unknown}, headers=await auth_as(manager)
        )

        assert response.status_code == 404
        assert response.json() == CHECKIN_CODE_NOT_FOUND

    @pytest.mark.parametrize("code", ["", "0" * 65])
    async def test_length_422(self, client, event, manager, auth_as, code):
        response = await client.post(
            check_in_url(event.id), json={"code": code}, headers=await auth_as(manager)
        )

        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert (error["loc"], error["type"]) == (
            ["body", "code"],
            "string_too_short" if not code else "string_too_long",
        )

    async def test_missing_code_422(self, client, event, manager, auth_as):
        response = await client.post(
            check_in_url(event.id), json={}, headers=await auth_as(manager)
        )

        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert (error["loc"], error["type"]) == (["body", "code"], "missing")

    async def test_twice_409_says_when(self, client, session, event, manager, auth_as):
        registration, _ = await confirmed(session, event)
        headers = await auth_as(manager)
        first = await client.post(
            check_in_url(event.id), json={"code": registration.checkin_code}, headers=headers
        )

        response = await client.post(
            check_in_url(event.id), json={"code": registration.checkin_code}, headers=headers
        )

        assert first.status_code == 200
        assert response.status_code == 409
        body = response.json()
        assert body == {
            "detail": {
                "code": "ALREADY_CHECKED_IN",
                "reason": "Already checked in",
                "checked_in_at": body["detail"]["checked_in_at"],
            }
        }
        first_time = datetime.fromisoformat(first.json()["checked_in_at"])
        assert datetime.fromisoformat(body["detail"]["checked_in_at"]) == first_time
        assert (await row_of(session, registration.id)).checked_in_at == first_time

    async def test_after_check_in_by_id_409(self, client, session, event, manager, auth_as):
        registration, _ = await confirmed(session, event)
        headers = await auth_as(manager)
        by_id = await client.post(
            f"/api/v1/events/{event.id}/registrations/{registration.id}/check-in", headers=headers
        )

        response = await client.post(
            check_in_url(event.id), json={"code": registration.checkin_code}, headers=headers
        )

        assert by_id.status_code == 200
        assert response.status_code == 409
        assert response.json()["detail"]["code"] == "ALREADY_CHECKED_IN"
        assert datetime.fromisoformat(
            response.json()["detail"]["checked_in_at"]
        ) == datetime.fromisoformat(by_id.json()["checked_in_at"])

    async def test_user_403(self, client, session, event, user, auth_as):
        registration, _ = await confirmed(session, event)

        response = await client.post(
            check_in_url(event.id),
            json={"code": registration.checkin_code},
            headers=await auth_as(user),
        )

        assert response.status_code == 403
        assert response.json() == NOT_EVENT_OWNER
        assert (await row_of(session, registration.id)).checked_in_at is None

    async def test_unknown_event_404(self, client, manager, auth_as):
        response = await client.post(
            check_in_url(uuid.uuid4()), json={"code": "0000000000"}, headers=await auth_as(manager)
        )

        assert response.status_code == 404
        assert response.json() == {"detail": "EVENT_NOT_FOUND"}

    def test_openapi_lists_the_errors(self, app):
        responses = app.openapi()["paths"]["/api/v1/events/{event_id}/check-in"]["post"][
            "responses"
        ]

        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Attendee"
        }
        assert "CHECKIN_CODE_NOT_FOUND" in responses["404"]["description"]
        assert "ALREADY_CHECKED_IN" in responses["409"]["description"]
        assert "NOT_CONFIRMED" in responses["409"]["description"]
