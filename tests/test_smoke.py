import httpx

from api.users.models import User
from tests.factories import deliver_queued_mail
from tests.support import Mailbox


async def test_me(client: httpx.AsyncClient, user: User, auth_as) -> None:  # noqa: ANN001
    response = await client.get("/api/v1/users/me", headers=await auth_as(user))
    assert response.status_code == 200
    assert response.json()["email"] == user.email


async def test_register_sends_mail(client: httpx.AsyncClient, session, mailbox: Mailbox) -> None:  # noqa: ANN001
    response = await client.post(
        "/api/v1/auth/register", json={"email": "New@Example.com", "password": "a fine passphrase"}
    )
    assert response.status_code == 201
    assert await deliver_queued_mail(session) == 1
    assert len(mailbox.to("new@example.com")) == 1
