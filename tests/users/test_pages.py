"""The two HTML pages behind the mail links: /verify-email and /reset-password."""

import html
import re

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.users.models import User, UserRole
from tests.factories import DEFAULT_PASSWORD, queued_mail, reload, token_headers

NEW_PASSWORD = "another quite fine passphrase"
BAD_VERIFY_LINK = "The verification link is invalid, expired or already used."
BAD_RESET_LINK = "The password reset link is invalid, expired or already used."


async def mailed_token(session: AsyncSession, email: str, page: str) -> str:
    """The token of the last `{PUBLIC_BASE_URL}/<page>?token=...` link mailed to `email`."""
    texts = [m.text for m in await queued_mail(session) if m.to == email and page in m.text]
    found = re.findall(rf"http://testserver/{page}\?token=([A-Za-z0-9._-]+)", texts[-1])
    assert len(found) == 1
    return str(found[0])


async def verification_token(client: httpx.AsyncClient, session: AsyncSession, user: User) -> str:
    response = await client.post("/api/v1/auth/request-verify-token", json={"email": user.email})
    assert response.status_code == 202
    return await mailed_token(session, user.email, "verify-email")


async def reset_token(client: httpx.AsyncClient, session: AsyncSession, user: User) -> str:
    response = await client.post("/api/v1/auth/forgot-password", json={"email": user.email})
    assert response.status_code == 202
    return await mailed_token(session, user.email, "reset-password")


async def login_status(client: httpx.AsyncClient, email: str, password: str) -> int:
    response = await client.post(
        "/api/v1/auth/login", data={"username": email, "password": password}
    )
    return response.status_code


def assert_page(response: httpx.Response, status: int, *texts: str) -> str:
    assert response.status_code == status
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = html.unescape(response.text)
    assert page.startswith("<!doctype html>")
    for text in texts:
        assert text in page
    return page


def hidden_token(token: str) -> str:
    return f'<input type="hidden" name="token" value="{token}">'


class TestVerifyEmailPage:
    async def test_valid_token_200_form(self, client, session, unverified_user):
        token = await verification_token(client, session, unverified_user)
        response = await client.get("/verify-email", params={"token": token})
        page = assert_page(response, 200, "Verify your email", unverified_user.email)
        assert hidden_token(token) in page
        assert '<form method="post" action="/verify-email">' in page
        # Showing the form consumes nothing: mail scanners prefetch links.
        assert (await reload(session, unverified_user)).is_verified is False

    @pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
    async def test_bad_token_400(self, client, token):
        response = await client.get("/verify-email", params={"token": token})
        assert_page(response, 400, "This link does not work", BAD_VERIFY_LINK)

    async def test_no_token_400(self, client):
        response = await client.get("/verify-email")
        assert_page(response, 400, BAD_VERIFY_LINK)

    async def test_used_token_400(self, client, session, unverified_user):
        token = await verification_token(client, session, unverified_user)
        assert (await client.post("/verify-email", data={"token": token})).status_code == 200
        response = await client.get("/verify-email", params={"token": token})
        page = assert_page(response, 400, BAD_VERIFY_LINK)
        assert token not in page

    async def test_reset_token_400(self, client, session, unverified_user):
        token = await reset_token(client, session, unverified_user)
        response = await client.get("/verify-email", params={"token": token})
        assert_page(response, 400, BAD_VERIFY_LINK)


class TestVerifyEmailSubmit:
    async def test_200_user_verified(self, client, session, unverified_user):
        token = await verification_token(client, session, unverified_user)
        response = await client.post("/verify-email", data={"token": token})
        assert_page(response, 200, "Email verified", "Your email is verified.")
        stored = await reload(session, unverified_user)
        assert (stored.is_verified, stored.role) == (True, UserRole.AUTHENTICATED)
        assert await login_status(client, stored.email, DEFAULT_PASSWORD) == 200

    @pytest.mark.parametrize("token", ["garbage", "a.b.c"])
    async def test_bad_token_400(self, client, token):
        response = await client.post("/verify-email", data={"token": token})
        assert_page(response, 400, "This link does not work", BAD_VERIFY_LINK)

    async def test_used_token_400(self, client, session, unverified_user):
        token = await verification_token(client, session, unverified_user)
        assert (await client.post("/verify-email", data={"token": token})).status_code == 200
        response = await client.post("/verify-email", data={"token": token})
        assert_page(response, 400, BAD_VERIFY_LINK)
        stored = await reload(session, unverified_user)
        assert (stored.is_verified, stored.role) == (True, UserRole.AUTHENTICATED)

    async def test_missing_token_400_page(self, client):
        response = await client.post("/verify-email", data={})
        assert_page(response, 400, BAD_VERIFY_LINK)


class TestResetPasswordPage:
    async def test_valid_token_200_form(self, client, session, user):
        token = await reset_token(client, session, user)
        response = await client.get("/reset-password", params={"token": token})
        page = assert_page(response, 200, "Choose a new password")
        assert hidden_token(token) in page
        assert '<form method="post" action="/reset-password">' in page
        assert 'maxlength="128"' in page
        assert await login_status(client, user.email, DEFAULT_PASSWORD) == 200

    async def test_no_token_400(self, client):
        response = await client.get("/reset-password")
        assert_page(response, 400, "This link does not work", BAD_RESET_LINK)

    @pytest.mark.parametrize("token", ["garbage", "a.b.c"])
    async def test_bad_token_400(self, client, token):
        response = await client.get("/reset-password", params={"token": token})
        assert_page(response, 400, BAD_RESET_LINK)

    async def test_used_token_400(self, client, session, user):
        token = await reset_token(client, session, user)
        done = await client.post("/reset-password", data={"token": token, "password": NEW_PASSWORD})
        assert done.status_code == 200
        response = await client.get("/reset-password", params={"token": token})
        page = assert_page(response, 400, BAD_RESET_LINK)
        assert token not in page

    async def test_verification_token_400(self, client, session, unverified_user):
        token = await verification_token(client, session, unverified_user)
        response = await client.get("/reset-password", params={"token": token})
        assert_page(response, 400, BAD_RESET_LINK)


class TestResetPasswordSubmit:
    @pytest.mark.parametrize(
        ("password", "reason"),
        [
            ("short", "Password should be at least 8 characters"),
            ("password", "Password is too common"),
            ("{email}", "Password should not be the email"),
        ],
    )
    async def test_weak_password_400_shows_reason(self, client, session, user, password, reason):
        token = await reset_token(client, session, user)
        response = await client.post(
            "/reset-password",
            data={"token": token, "password": password.format(email=user.email)},
        )
        page = assert_page(response, 400, "Choose a new password")
        assert f'<p class="error" id="password-error">{reason}</p>' in page
        # The reason is the field's description, for a screen reader too.
        assert 'aria-invalid="true" aria-describedby="password-error">' in page
        assert hidden_token(token) in page
        assert await login_status(client, user.email, DEFAULT_PASSWORD) == 200

    async def test_good_password_200_login_works(self, client, session, user):
        headers = await token_headers(session, user)
        token = await reset_token(client, session, user)
        response = await client.post(
            "/reset-password", data={"token": token, "password": NEW_PASSWORD}
        )
        assert_page(response, 200, "Password changed", "every session was signed out")
        assert await login_status(client, user.email, NEW_PASSWORD) == 200
        assert await login_status(client, user.email, DEFAULT_PASSWORD) == 400
        assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 401

    async def test_reused_token_400(self, client, session, user):
        token = await reset_token(client, session, user)
        first = await client.post(
            "/reset-password", data={"token": token, "password": NEW_PASSWORD}
        )
        assert first.status_code == 200
        again = await client.post(
            "/reset-password", data={"token": token, "password": "yet another passphrase"}
        )
        assert_page(again, 400, "This link does not work", BAD_RESET_LINK)
        assert await login_status(client, user.email, NEW_PASSWORD) == 200

    @pytest.mark.parametrize("token", ["garbage", "a.b.c"])
    async def test_bad_token_400(self, client, token):
        response = await client.post(
            "/reset-password", data={"token": token, "password": NEW_PASSWORD}
        )
        assert_page(response, 400, BAD_RESET_LINK)

    async def test_clears_lockout(self, client, session, user):
        for _ in range(5):
            await login_status(client, user.email, "wrong passphrase here")
        assert await login_status(client, user.email, DEFAULT_PASSWORD) == 400
        token = await reset_token(client, session, user)
        response = await client.post(
            "/reset-password", data={"token": token, "password": NEW_PASSWORD}
        )
        assert response.status_code == 200
        assert await login_status(client, user.email, NEW_PASSWORD) == 200


class TestResetPasswordSubmitWithoutFields:
    async def test_missing_token_400_page(self, client):
        response = await client.post("/reset-password", data={"password": "a fine new passphrase"})
        assert_page(response, 400, BAD_RESET_LINK)
