"""GET /users/me/registrations/{id} and its ticket.png (API-integrations.md, Check-in codes and
tickets): the registrant's own registration, and the QR code of its check-in code."""

import io

import PIL.Image
import zxingcpp

from tests.events.test_registrations import (
    own_registration_view,
    parsed_own_registration,
)
from tests.factories import create_event, create_user, register
from tests.registrations.test_checkin_codes import own_url

REGISTRATION_NOT_FOUND = {"detail": "REGISTRATION_NOT_FOUND"}
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}


def decoded(png: bytes) -> list[tuple[str, str, str]]:
    """What a QR reader finds in the image: (text, format, error correction level)."""
    return [
        (barcode.text, barcode.format.name, barcode.ec_level)
        for barcode in zxingcpp.read_barcodes(PIL.Image.open(io.BytesIO(png)))
    ]


class TestGetMyRegistration:
    async def test_confirmed_200(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)

        response = await client.get(own_url(registration.id), headers=await auth_as(user))

        assert response.status_code == 200
        assert parsed_own_registration(response.json()) == own_registration_view(
            registration, event, None
        )
        assert response.json()["checkin_code"] == registration.checkin_code

    async def test_waitlisted_200_with_place_and_no_code(
        self, client, session, manager, user, auth_as
    ):
        event = await create_event(session, owner=manager, capacity=1)
        await register(session, event, await create_user(session))
        await register(session, event, await create_user(session))
        registration = await register(session, event, user)

        response = await client.get(own_url(registration.id), headers=await auth_as(user))

        assert response.status_code == 200
        assert parsed_own_registration(response.json()) == own_registration_view(
            registration, event, 2
        )
        assert response.json()["checkin_code"] is None

    async def test_another_users_404(self, client, session, event, user, auth_as):
        registration = await register(session, event, await create_user(session))

        response = await client.get(own_url(registration.id), headers=await auth_as(user))

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND

    async def test_staff_see_only_their_own_404(self, client, session, event, admin, auth_as):
        registration = await register(session, event, await create_user(session))

        response = await client.get(own_url(registration.id), headers=await auth_as(admin))

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND

    async def test_unknown_404(self, client, user, auth_as):
        response = await client.get(
            own_url("00000000-0000-4000-8000-000000000000"), headers=await auth_as(user)
        )

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND

    async def test_anonymous_401(self, client, session, event, user):
        registration = await register(session, event, user)

        response = await client.get(own_url(registration.id))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


class TestTicket:
    async def test_confirmed_200_qr_of_the_code(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)

        response = await client.get(
            own_url(registration.id, "/ticket.png"), headers=await auth_as(user)
        )

        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"] == "private, no-store"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert decoded(response.content) == [(registration.checkin_code, "QRCode", "M")]

    async def test_waitlisted_409(self, client, session, manager, user, auth_as):
        event = await create_event(session, owner=manager, capacity=1)
        await register(session, event, await create_user(session))
        registration = await register(session, event, user)

        response = await client.get(
            own_url(registration.id, "/ticket.png"), headers=await auth_as(user)
        )

        assert response.status_code == 409
        assert response.json() == {
            "detail": {"code": "NOT_CONFIRMED", "reason": "The registration is WAITLISTED"}
        }

    async def test_cancelled_409(self, client, session, event, user, auth_as):
        registration = await register(session, event, user)
        headers = await auth_as(user)
        await client.delete(f"/api/v1/events/{event.id}/registrations/me", headers=headers)

        response = await client.get(own_url(registration.id, "/ticket.png"), headers=headers)

        assert response.status_code == 409
        assert response.json() == {
            "detail": {"code": "NOT_CONFIRMED", "reason": "The registration is CANCELLED"}
        }

    async def test_another_users_404(self, client, session, event, user, auth_as):
        registration = await register(session, event, await create_user(session))

        response = await client.get(
            own_url(registration.id, "/ticket.png"), headers=await auth_as(user)
        )

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND

    async def test_unknown_404(self, client, user, auth_as):
        response = await client.get(
            own_url("00000000-0000-4000-8000-000000000000", "/ticket.png"),
            headers=await auth_as(user),
        )

        assert response.status_code == 404
        assert response.json() == REGISTRATION_NOT_FOUND

    async def test_anonymous_401(self, client, session, event, user):
        registration = await register(session, event, user)

        response = await client.get(own_url(registration.id, "/ticket.png"))

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED

    def test_openapi_says_image_png(self, app):
        operation = app.openapi()["paths"][
            "/api/v1/users/me/registrations/{registration_id}/ticket.png"
        ]["get"]

        assert operation["responses"]["200"]["content"] == {
            "image/png": {"schema": {"type": "string", "format": "binary"}}
        }
        assert {code: operation["responses"][code]["description"] for code in ("404", "409")} == {
            "404": "REGISTRATION_NOT_FOUND",
            "409": "NOT_CONFIRMED",
        }
