"""GET /users/me/connections.vcf (API-attendees.md; DIR-1): the caller's accepted connections as
vCard 3.0, read back with vobject, field by field."""

from typing import Any

import pytest
import vobject

from tests.factories import create_event, create_user
from tests.networking.helpers import MY_VCARDS, connect

pytestmark = pytest.mark.security("DIR-1")


def cards(text: str) -> list[dict[str, Any]]:
    """Every card's properties: name -> its values (N as (family, given); EMAIL with its TYPE)."""
    parsed = []
    for card in vobject.readComponents(text):
        assert card.name == "VCARD"
        fields: dict[str, Any] = {}
        for name, lines in card.contents.items():
            if name == "n":
                fields[name] = [(line.value.family, line.value.given) for line in lines]
            elif name == "email":
                fields[name] = [(line.value, line.params.get("TYPE")) for line in lines]
            else:
                fields[name] = [line.value for line in lines]
        parsed.append(fields)
    return parsed


class TestVCards:
    async def test_one_card_per_contact_newest_first(self, client, session, manager, auth_as):
        event = await create_event(session, owner=manager, title="Careers fair, spring; 2099")
        me = await create_user(session)
        ada = await create_user(
            session,
            nickname="ada_l",
            first_name="Ada",
            last_name="Lovelace",
            linkedin_profile_url="https://www.linkedin.com/in/ada",
            github_profile_url="https://github.com/ada",
        )
        plain = await create_user(session, nickname="just_a_nick")
        first_only = await create_user(session, nickname="grace_h", first_name="Grace")
        await connect(session, event, me, ada, accepted=True)
        await connect(session, event, plain, me, accepted=True)
        await connect(session, event, me, first_only, accepted=True)
        await connect(session, event, me, await create_user(session))  # pending: no card
        await connect(session, event, ada, plain, accepted=True)  # not mine

        response = await client.get(MY_VCARDS, headers=await auth_as(me))

        assert response.status_code == 200
        assert response.headers["content-type"] == "text/vcard; charset=utf-8"
        assert response.headers["content-disposition"] == 'attachment; filename="connections.vcf"'
        assert response.headers["cache-control"] == "private, no-store"
        note = ["Met at Careers fair, spring; 2099"]
        assert cards(response.text) == [
            {
                "version": ["3.0"],
                "fn": ["Grace"],
                "n": [("", "Grace")],
                "nickname": ["grace_h"],
                "email": [(first_only.email, ["INTERNET"])],
                "note": note,
                "uid": [f"urn:uuid:{first_only.id}"],
            },
            {
                "version": ["3.0"],
                "fn": ["just_a_nick"],
                "n": [("", "")],
                "nickname": ["just_a_nick"],
                "email": [(plain.email, ["INTERNET"])],
                "note": note,
                "uid": [f"urn:uuid:{plain.id}"],
            },
            {
                "version": ["3.0"],
                "fn": ["Ada Lovelace"],
                "n": [("Lovelace", "Ada")],
                "nickname": ["ada_l"],
                "email": [(ada.email, ["INTERNET"])],
                "url": ["https://www.linkedin.com/in/ada", "https://github.com/ada"],
                "note": note,
                "uid": [f"urn:uuid:{ada.id}"],
            },
        ]
        assert response.text.startswith("BEGIN:VCARD\r\nVERSION:3.0\r\n")

    async def test_no_contacts_empty(self, client, session, manager, user, auth_as):
        event = await create_event(session, owner=manager)
        await connect(session, event, await create_user(session), user)  # pending only

        response = await client.get(MY_VCARDS, headers=await auth_as(user))

        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["content-type"] == "text/vcard; charset=utf-8"

    async def test_anonymous_401(self, client):
        response = await client.get(MY_VCARDS)

        assert response.status_code == 401
        assert response.json() == {"detail": "UNAUTHORIZED"}

    def test_openapi_documents_the_file(self, app):
        operation = app.openapi()["paths"][MY_VCARDS]["get"]

        assert list(operation["responses"]["200"]["content"]) == ["text/vcard"]
        assert operation["x-token-scope"] == "registrations:read"
