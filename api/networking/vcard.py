"""The caller's contacts as vCard 3.0 (RFC 2426), one card per accepted connection, made with
vobject: GET /users/me/connections.vcf."""

from collections.abc import Iterable

import vobject

from api.networking.models import ConnectionPublic, ConnectionUser

CONTENT_TYPE = "text/vcard"
FILENAME = "connections.vcf"


def formatted_name(user: ConnectionUser) -> str:
    """FN: first and last name, else the nickname."""
    return " ".join(filter(None, [user.first_name, user.last_name])) or user.nickname


def card(connection: ConnectionPublic) -> str:
    """One contact: FN, N, NICKNAME, EMAIL, URL (LinkedIn, GitHub), NOTE, UID."""
    user = connection.user
    contact = vobject.vCard()
    contact.add("fn").value = formatted_name(user)
    contact.add("n").value = vobject.vcard.Name(
        family=user.last_name or "", given=user.first_name or ""
    )
    contact.add("nickname").value = user.nickname
    if user.email:
        email = contact.add("email")
        email.value = user.email
        email.type_param = "INTERNET"
    for url in (user.linkedin_profile_url, user.github_profile_url):
        if url:
            contact.add("url").value = url
    contact.add("note").value = f"Met at {connection.event_title}"
    contact.add("uid").value = f"urn:uuid:{user.id}"
    serialized: str = contact.serialize()
    return serialized


def vcards(connections: Iterable[ConnectionPublic]) -> bytes:
    """Every card, one after the other; empty when there are none. Some CPU per card: called
    off the event loop."""
    return "".join(card(connection) for connection in connections).encode()
