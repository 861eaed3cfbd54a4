"""The Auth section of API.md: register, verify, login and lockout, logout, password reset.

Also the token properties of SECURITY.md (REG-1, REG-2, REG-4, AUTH-2, AUTH-4, AUTH-5, TOK-1..3,
RST-1 burst) and the production password-hash settings.
"""

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi_users.jwt import generate_jwt
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from api import clock
from api.config import settings
from api.mail.service import OutgoingMail
from api.users.manager import LOCKED_INDEFINITELY, UserDatabase, UserManager
from api.users.models import NICKNAME_PATTERN, AccessToken, User, UserRole, hash_token
from api.users.passwords import ThreadedPasswordHelper, password_helper
from tests.factories import (
    DEFAULT_PASSWORD,
    OWNER_FIELDS,
    create_user,
    deliver_queued_mail,
    queued_mail,
    reload,
)
from tests.support import Mailbox, free_port, samples

REGISTER = "/api/v1/auth/register"
REQUEST_VERIFY = "/api/v1/auth/request-verify-token"
VERIFY = "/api/v1/auth/verify"
LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
FORGOT = "/api/v1/auth/forgot-password"
RESET = "/api/v1/auth/reset-password"
ME = "/api/v1/users/me"

NEW_PASSWORD = "another quite fine passphrase"
USER_FIELDS = OWNER_FIELDS
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}
BAD_CREDENTIALS = {"detail": "LOGIN_BAD_CREDENTIALS"}
LOCKED = {"detail": "LOGIN_ACCOUNT_LOCKED"}
LOCKED_SUBJECT = "Your event-manager account was locked"
COMMON_SAMPLE = [p for p in FREQUENCY_LISTS["passwords"] if len(p) >= 8][:20]


def new_email() -> str:
    return f"auth-{uuid.uuid4().hex[:12]}@example.com"


def link_token(body: str, page: str) -> str:
    """The token of the `{PUBLIC_BASE_URL}/<page>?token=...` link in a mail body."""
    found = re.findall(rf"http://testserver/{page}\?token=([A-Za-z0-9._-]+)", body)
    assert len(set(found)) == 1, body
    return str(found[0])


async def mails_to(session: AsyncSession, email: str) -> list[OutgoingMail]:
    return [m for m in await queued_mail(session) if m.to.lower() == email.lower()]


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, data={"username": email, "password": password})


async def login_headers(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await login(client, email, password)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def db_user(session: AsyncSession, user_id: uuid.UUID | str) -> User:
    """The user as stored now (re-read from the database, not the identity map)."""
    user = await session.get(User, uuid.UUID(str(user_id)))
    assert user is not None
    return await reload(session, user)


async def token_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    rows = await session.scalars(select(AccessToken).where(col(AccessToken.user_id) == user_id))
    return len(rows.all())


async def request_verification_token(
    client: httpx.AsyncClient, session: AsyncSession, email: str
) -> str:
    response = await client.post(REQUEST_VERIFY, json={"email": email})
    assert response.status_code == 202
    mails = await mails_to(session, email)
    return link_token(mails[-1].text, "verify-email")


async def reset_token(client: httpx.AsyncClient, session: AsyncSession, email: str) -> str:
    response = await client.post(FORGOT, json={"email": email})
    assert response.status_code == 202
    mails = [m for m in await mails_to(session, email) if "reset-password" in m.text]
    return link_token(mails[-1].text, "reset-password")


def freeze(monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
    monkeypatch.setattr(clock, "now", lambda: at)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == "Bearer"


class TestRegister:
    async def test_201_anonymous_unverified_user(self, client, session):
        email = new_email()
        response = await client.post(REGISTER, json={"email": email, "password": DEFAULT_PASSWORD})
        assert response.status_code == 201
        body = response.json()
        assert set(body) == USER_FIELDS
        assert body["email"] == email
        assert body["role"] == "ANONYMOUS"
        assert body["is_verified"] is False
        assert body["is_active"] is True
        assert body["is_professional"] is False
        assert body["is_locked"] is False
        assert body["last_login_at"] is None
        assert "password" not in body
        assert "hashed_password" not in body
        stored = await db_user(session, body["id"])
        assert stored.email == email
        assert stored.role is UserRole.ANONYMOUS
        assert password_helper.verify_and_update(DEFAULT_PASSWORD, stored.hashed_password)[0]

    async def test_nickname_generated_when_absent(self, client):
        response = await client.post(
            REGISTER, json={"email": "Jane.Doe+x@example.com", "password": DEFAULT_PASSWORD}
        )
        assert response.status_code == 201
        nickname = response.json()["nickname"]
        assert re.fullmatch(NICKNAME_PATTERN, nickname)
        assert nickname.startswith("JaneDoex-")

    async def test_profile_fields_saved(self, client, session):
        profile = {
            "nickname": "jane_doe-1",
            "first_name": "Jane",
            "last_name": "Doe",
            "bio": "Hello",
            "profile_picture_url": "https://img.example.com/me.WEBP",
            "linkedin_profile_url": "https://www.linkedin.com/in/jane",
            "github_profile_url": "https://github.com/jane-doe",
        }
        response = await client.post(
            REGISTER, json={"email": new_email(), "password": DEFAULT_PASSWORD, **profile}
        )
        assert response.status_code == 201
        assert {k: response.json()[k] for k in profile} == profile
        stored = await db_user(session, response.json()["id"])
        assert {k: getattr(stored, k) for k in profile} == profile

    async def test_verification_mail_sent(self, client, session, mailbox: Mailbox):
        email = new_email()
        response = await client.post(REGISTER, json={"email": email, "password": DEFAULT_PASSWORD})
        assert response.status_code == 201
        queued = await queued_mail(session)
        assert [(m.to, m.subject) for m in queued] == [
            (email, "Verify your email for event-manager")
        ]
        assert await deliver_queued_mail(session) == 1
        [message] = mailbox.to(email)
        text_token = link_token(Mailbox.text(message), "verify-email")
        html = message.get_body(preferencelist=("html",))
        assert html is not None
        assert link_token(str(html.get_content()), "verify-email") == text_token
        verified = await client.post(VERIFY, json={"token": text_token})
        assert verified.status_code == 200
        assert verified.json()["is_verified"] is True

    @pytest.mark.security("REG-3")
    async def test_duplicate_email_other_case_400(self, client, session, user):
        response = await client.post(
            REGISTER, json={"email": user.email.upper(), "password": DEFAULT_PASSWORD}
        )
        assert response.status_code == 400
        assert response.json() == {"detail": "REGISTER_USER_ALREADY_EXISTS"}
        assert await queued_mail(session) == []

    @pytest.mark.parametrize(
        ("password", "reason"),
        [
            ("short", "Password should be at least 8 characters"),
            ("1234567", "Password should be at least 8 characters"),
            ("password", "Password is too common"),
            ("Password123", "Password is too common"),
            ("{email}", "Password should not be the email"),
            ("{EMAIL}", "Password should not be the email"),
            ("{local}", "Password should not be the email"),
        ],
    )
    @pytest.mark.security("REG-2")
    async def test_invalid_password_400(self, client, session, password, reason):
        email = new_email()
        password = password.format(email=email, EMAIL=email.upper(), local=email.split("@")[0])
        response = await client.post(REGISTER, json={"email": email, "password": password})
        assert response.status_code == 400
        assert response.json() == {
            "detail": {"code": "REGISTER_INVALID_PASSWORD", "reason": reason}
        }
        assert await session.scalar(select(User).where(col(User.email) == email)) is None
        assert await queued_mail(session) == []

    @pytest.mark.parametrize(
        ("length", "status"), [(7, 400), (8, 201), (9, 201), (64, 201), (128, 201), (129, 422)]
    )
    @pytest.mark.security("REG-2")
    async def test_password_length(self, client, length, status):
        password = ("Zq8 rT5m Wv3y Kp" * 9)[:length]
        response = await client.post(REGISTER, json={"email": new_email(), "password": password})
        assert response.status_code == status
        if status == 400:
            assert response.json()["detail"]["code"] == "REGISTER_INVALID_PASSWORD"
        if status == 422:
            [error] = response.json()["detail"]
            assert error["loc"] == ["body", "password"]
            assert error["type"] == "string_too_long"

    @pytest.mark.security("REG-2")
    async def test_128_char_password_logs_in(self, client):
        email, password = new_email(), ("Zq8 rT5m Wv3y Kp" * 8)
        assert len(password) == 128
        response = await client.post(REGISTER, json={"email": email, "password": password})
        assert response.status_code == 201
        assert (await login(client, email, password)).json() == {
            "detail": "LOGIN_USER_NOT_VERIFIED"
        }

    @pytest.mark.parametrize("password", COMMON_SAMPLE)
    @pytest.mark.security("REG-2")
    async def test_common_password_refused(self, client, password):
        response = await client.post(REGISTER, json={"email": new_email(), "password": password})
        assert response.status_code == 400
        assert response.json() == {
            "detail": {"code": "REGISTER_INVALID_PASSWORD", "reason": "Password is too common"}
        }

    @pytest.mark.parametrize(
        "password",
        ["alllowercaseletters", "90817263549", "12 34 56 78 90 x", "pässwörd ünïcödé", "        x"],
    )
    @pytest.mark.security("REG-2")
    async def test_no_composition_rules(self, client, password):
        response = await client.post(REGISTER, json={"email": new_email(), "password": password})
        assert response.status_code == 201

    @pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "", "a b@example.com"])
    async def test_bad_email_422(self, client, email):
        response = await client.post(REGISTER, json={"email": email, "password": DEFAULT_PASSWORD})
        assert response.status_code == 422
        assert [e["loc"] for e in response.json()["detail"]] == [["body", "email"]]

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("profile_picture_url", "https://img.example.com/me.txt"),
            ("profile_picture_url", "https://img.example.com/png"),
            ("profile_picture_url", "ftp://img.example.com/me.png"),
            ("profile_picture_url", "img.example.com/me.png"),
            ("linkedin_profile_url", "https://example.com/in/jane"),
            ("linkedin_profile_url", "https://notlinkedin.com/in/jane"),
            ("linkedin_profile_url", "https://linkedin.com.evil.com/in/jane"),
            ("linkedin_profile_url", "javascript://linkedin.com/in/jane"),
            ("github_profile_url", "https://gitlab.com/jane"),
            ("github_profile_url", "https://github.com/jane/repo"),
            ("github_profile_url", "https://github.com/"),
            ("github_profile_url", "https://github.com/-jane"),
            ("nickname", "ab"),
            ("nickname", "a" * 31),
            ("nickname", "bad nick"),
            ("nickname", "jane!"),
            ("first_name", "x" * 101),
            ("last_name", "x" * 101),
            ("bio", "x" * 501),
        ],
    )
    async def test_bad_profile_field_422(self, client, session, field, value):
        email = new_email()
        response = await client.post(
            REGISTER, json={"email": email, "password": DEFAULT_PASSWORD, field: value}
        )
        assert response.status_code == 422
        assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]
        assert await session.scalar(select(User).where(col(User.email) == email)) is None

    async def test_profile_field_limits_accepted(self, client):
        profile = {
            "nickname": "a" * 30,
            "first_name": "x" * 100,
            "last_name": "y" * 100,
            "bio": "z" * 500,
            "profile_picture_url": "http://img.example.com/a/b.jpeg",
            "linkedin_profile_url": "https://linkedin.com/in/jane",
            "github_profile_url": "https://github.com/jane/",
        }
        response = await client.post(
            REGISTER, json={"email": new_email(), "password": DEFAULT_PASSWORD, **profile}
        )
        assert response.status_code == 201
        assert {k: response.json()[k] for k in profile} == profile

    @pytest.mark.security("REG-1")
    async def test_server_controlled_fields_ignored(self, client, session):
        """REG-1: role, flags and secrets in a register body never take effect."""
        email = new_email()
        response = await client.post(
            REGISTER,
            json={
                "email": email,
                "password": DEFAULT_PASSWORD,
                "role": "ADMIN",
                "is_superuser": True,
                "is_verified": True,
                "is_active": False,
                "is_professional": True,
                "professional_status_updated_at": "2020-01-01T00:00:00Z",
                "failed_login_count": 3,
                "locked_until": "2999-01-01T00:00:00Z",
                "hashed_password": "not a hash",
            },
        )
        assert response.status_code == 201
        body = response.json()
        assert (body["role"], body["is_verified"], body["is_active"]) == ("ANONYMOUS", False, True)
        assert body["is_professional"] is False
        stored = await db_user(session, body["id"])
        assert stored.role is UserRole.ANONYMOUS
        assert stored.is_superuser is False
        assert stored.is_verified is False
        assert stored.is_active is True
        assert stored.is_professional is False
        assert stored.professional_status_updated_at is None
        assert stored.failed_login_count == 0
        assert stored.locked_until is None
        assert password_helper.verify_and_update(DEFAULT_PASSWORD, stored.hashed_password)[0]
        assert len(await mails_to(session, email)) == 1

    async def test_nickname_taken_409(self, client, user):
        response = await client.post(
            REGISTER,
            json={
                "email": new_email(),
                "password": DEFAULT_PASSWORD,
                "nickname": user.nickname.upper(),
            },
        )
        assert response.status_code == 409
        assert response.json() == {"detail": "NICKNAME_TAKEN"}


class TestRequestVerifyToken:
    async def test_unknown_email_202_no_mail(self, client, session):
        response = await client.post(REQUEST_VERIFY, json={"email": new_email()})
        assert response.status_code == 202
        assert response.json() is None
        assert await queued_mail(session) == []

    async def test_unverified_202_new_mail(self, client, session, unverified_user, mailbox):
        response = await client.post(REQUEST_VERIFY, json={"email": unverified_user.email.upper()})
        assert response.status_code == 202
        assert response.json() is None
        assert [m.to for m in await queued_mail(session)] == [unverified_user.email]
        assert await deliver_queued_mail(session) == 1
        [message] = mailbox.to(unverified_user.email)
        token = link_token(Mailbox.text(message), "verify-email")
        assert (await client.post(VERIFY, json={"token": token})).status_code == 200

    async def test_verified_202_no_mail(self, client, session, user):
        response = await client.post(REQUEST_VERIFY, json={"email": user.email})
        assert response.status_code == 202
        assert response.json() is None
        assert await queued_mail(session) == []

    async def test_deactivated_202_no_mail(self, client, session):
        inactive = await create_user(session, role=UserRole.ANONYMOUS, is_active=False)
        response = await client.post(REQUEST_VERIFY, json={"email": inactive.email})
        assert response.status_code == 202
        assert await queued_mail(session) == []

    async def test_bad_email_422(self, client):
        response = await client.post(REQUEST_VERIFY, json={"email": "nope"})
        assert response.status_code == 422
        assert [e["loc"] for e in response.json()["detail"]] == [["body", "email"]]


def crafted_verify_token(user: User, *, secret: str, lifetime: int) -> str:
    """A verification token built by hand: signed with `secret`, expiring after `lifetime` s."""
    claims = {"sub": str(user.id), "email": user.email, "aud": "fastapi-users:verify"}
    return generate_jwt(claims, secret, lifetime)


@pytest.mark.security("REG-4")
class TestVerify:
    async def test_200_verified_and_authenticated(self, client, session, unverified_user):
        token = await request_verification_token(client, session, unverified_user.email)
        response = await client.post(VERIFY, json={"token": token})
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == str(unverified_user.id)
        assert (body["is_verified"], body["role"]) == (True, "AUTHENTICATED")
        stored = await db_user(session, unverified_user.id)
        assert (stored.is_verified, stored.role) == (True, UserRole.AUTHENTICATED)
        assert (await login(client, unverified_user.email, DEFAULT_PASSWORD)).status_code == 200

    @pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
    async def test_bad_token_400(self, client, token):
        response = await client.post(VERIFY, json={"token": token})
        assert response.status_code == 400
        assert response.json() == {"detail": "VERIFY_USER_BAD_TOKEN"}

    async def test_foreign_key_token_400(self, client, session, unverified_user):
        token = crafted_verify_token(
            unverified_user, secret="some-other-secret-key-that-is-long-enough", lifetime=3600
        )
        response = await client.post(VERIFY, json={"token": token})
        assert response.status_code == 400
        assert response.json() == {"detail": "VERIFY_USER_BAD_TOKEN"}
        assert (await db_user(session, unverified_user.id)).is_verified is False

    async def test_reused_token_400(self, client, session, unverified_user):
        token = await request_verification_token(client, session, unverified_user.email)
        assert (await client.post(VERIFY, json={"token": token})).status_code == 200
        response = await client.post(VERIFY, json={"token": token})
        assert response.status_code == 400
        assert response.json() == {"detail": "VERIFY_USER_ALREADY_VERIFIED"}

    async def test_expired_token_400(self, client, session, unverified_user):
        token = crafted_verify_token(unverified_user, secret=settings.signing_key, lifetime=-60)
        response = await client.post(VERIFY, json={"token": token})
        assert response.status_code == 400
        assert response.json() == {"detail": "VERIFY_USER_BAD_TOKEN"}
        assert (await db_user(session, unverified_user.id)).is_verified is False

    async def test_reset_token_400(self, client, session, unverified_user):
        token = await reset_token(client, session, unverified_user.email)
        response = await client.post(VERIFY, json={"token": token})
        assert response.status_code == 400
        assert response.json() == {"detail": "VERIFY_USER_BAD_TOKEN"}


class TestLogin:
    async def test_200_bearer_token(self, client, session, user, monkeypatch):
        at = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
        freeze(monkeypatch, at)
        response = await login(client, user.email, DEFAULT_PASSWORD)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access_token", "token_type"}
        assert body["token_type"] == "bearer"
        me = await client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.status_code == 200
        assert me.json()["id"] == str(user.id)
        assert (await db_user(session, user.id)).last_login_at == at

    async def test_email_case_insensitive(self, client, user):
        response = await login(client, user.email.upper(), DEFAULT_PASSWORD)
        assert response.status_code == 200

    @pytest.mark.security("AUTH-1")
    async def test_wrong_password_and_unknown_email_same_400(self, client, session, user):
        wrong = await login(client, user.email, "not the right passphrase")
        unknown = await login(client, new_email(), "not the right passphrase")
        assert (wrong.status_code, wrong.json()) == (400, BAD_CREDENTIALS)
        assert (unknown.status_code, unknown.json()) == (400, BAD_CREDENTIALS)
        assert wrong.headers["content-type"] == unknown.headers["content-type"]
        assert await token_count(session, user.id) == 0

    async def test_deactivated_400_bad_credentials(self, client, session):
        inactive = await create_user(session, is_active=False)
        response = await login(client, inactive.email, DEFAULT_PASSWORD)
        assert response.status_code == 400
        assert response.json() == BAD_CREDENTIALS
        assert await token_count(session, inactive.id) == 0

    async def test_unverified_400_not_verified(self, client, session, unverified_user):
        response = await login(client, unverified_user.email, DEFAULT_PASSWORD)
        assert response.status_code == 400
        assert response.json() == {"detail": "LOGIN_USER_NOT_VERIFIED"}
        assert await token_count(session, unverified_user.id) == 0

    async def test_unverified_wrong_password_400_bad_credentials(self, client, unverified_user):
        response = await login(client, unverified_user.email, "not the right passphrase")
        assert response.status_code == 400
        assert response.json() == BAD_CREDENTIALS

    async def test_missing_fields_422(self, client):
        response = await client.post(LOGIN, data={"username": "x@example.com"})
        assert response.status_code == 422
        assert [e["loc"] for e in response.json()["detail"]] == [["body", "password"]]

    async def test_bcrypt_hash_upgraded_to_argon2id(self, client, session):
        legacy = await create_user(session)
        legacy.hashed_password = BcryptHasher().hash(DEFAULT_PASSWORD)
        await session.flush()
        response = await login(client, legacy.email, DEFAULT_PASSWORD)
        assert response.status_code == 200
        stored = await db_user(session, legacy.id)
        assert stored.hashed_password.startswith("$argon2id$")
        assert password_helper.verify_and_update(DEFAULT_PASSWORD, stored.hashed_password)[0]


@pytest.mark.security("AUTH-2")
class TestLoginLockout:
    """AUTH-2 and the lockout rules of API.md."""

    async def fail(self, client: httpx.AsyncClient, email: str, times: int) -> list[Any]:
        return [(await login(client, email, "wrong passphrase here")).json() for _ in range(times)]

    async def test_locked_after_max_attempts(self, client, session, user, monkeypatch):
        at = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
        freeze(monkeypatch, at)
        assert await self.fail(client, user.email, 5) == [BAD_CREDENTIALS] * 5
        response = await login(client, user.email, DEFAULT_PASSWORD)
        assert response.status_code == 400
        assert response.json() == LOCKED
        stored = await db_user(session, user.id)
        assert stored.failed_login_count == 5
        assert stored.locked_until == at + timedelta(minutes=15)
        assert await token_count(session, user.id) == 0

    async def test_fewer_attempts_not_locked(self, client, session, user):
        assert await self.fail(client, user.email, 4) == [BAD_CREDENTIALS] * 4
        assert (await db_user(session, user.id)).failed_login_count == 4
        assert (await login(client, user.email, DEFAULT_PASSWORD)).status_code == 200

    async def test_max_attempts_setting(self, client, user, monkeypatch):
        monkeypatch.setattr(settings, "MAX_LOGIN_ATTEMPTS", 2)
        assert await self.fail(client, user.email, 2) == [BAD_CREDENTIALS] * 2
        assert (await login(client, user.email, DEFAULT_PASSWORD)).json() == LOCKED

    async def test_locked_account_checks_no_password(self, client, session, user, monkeypatch):
        checked: list[str] = []
        real_verify = password_helper.verify_and_update_async
        real_hash = password_helper.hash_async

        async def spy_verify(password: str, hashed: str) -> tuple[bool, str | None]:
            checked.append(password)
            return await real_verify(password, hashed)

        async def spy_hash(password: str) -> str:
            checked.append(password)
            return await real_hash(password)

        monkeypatch.setattr(password_helper, "verify_and_update_async", spy_verify)
        monkeypatch.setattr(password_helper, "hash_async", spy_hash)
        await self.fail(client, user.email, 5)
        assert len(checked) == 5
        assert await self.fail(client, user.email, 3) == [LOCKED] * 3
        assert (await login(client, user.email, DEFAULT_PASSWORD)).json() == LOCKED
        assert len(checked) == 5
        stored = await db_user(session, user.id)
        assert stored.failed_login_count == 5

    async def test_success_resets_count(self, client, session, user):
        await self.fail(client, user.email, 4)
        assert (await login(client, user.email, DEFAULT_PASSWORD)).status_code == 200
        assert (await db_user(session, user.id)).failed_login_count == 0
        assert await self.fail(client, user.email, 4) == [BAD_CREDENTIALS] * 4
        assert (await login(client, user.email, DEFAULT_PASSWORD)).status_code == 200

    async def test_case_variant_emails_count_together(self, client, session, user):
        variants = [user.email.upper(), user.email, user.email.title(), user.email.swapcase()]
        for email in [*variants, user.email.upper()]:
            assert await self.fail(client, email, 1) == [BAD_CREDENTIALS]
        assert (await db_user(session, user.id)).failed_login_count == 5
        assert (await login(client, user.email, DEFAULT_PASSWORD)).json() == LOCKED

    async def test_lock_is_temporary(self, client, session, user, monkeypatch):
        at = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
        freeze(monkeypatch, at)
        await self.fail(client, user.email, 5)
        freeze(monkeypatch, at + timedelta(minutes=14, seconds=59))
        assert (await login(client, user.email, DEFAULT_PASSWORD)).json() == LOCKED
        freeze(monkeypatch, at + timedelta(minutes=15, seconds=1))
        assert (await login(client, user.email, DEFAULT_PASSWORD)).status_code == 200
        stored = await db_user(session, user.id)
        assert (stored.failed_login_count, stored.locked_until) == (0, None)

    async def test_expired_lock_starts_a_new_count(self, client, session, user, monkeypatch):
        at = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
        freeze(monkeypatch, at)
        await self.fail(client, user.email, 5)
        freeze(monkeypatch, at + timedelta(minutes=16))
        assert await self.fail(client, user.email, 1) == [BAD_CREDENTIALS]
        stored = await db_user(session, user.id)
        assert (stored.failed_login_count, stored.locked_until) == (1, None)
        assert (await login(client, user.email, DEFAULT_PASSWORD)).status_code == 200

    async def test_lockout_minutes_zero_until_unlock(
        self, client, session, user, admin, auth_as, monkeypatch
    ):
        monkeypatch.setattr(settings, "LOCKOUT_MINUTES", 0)
        await self.fail(client, user.email, 5)
        assert (await db_user(session, user.id)).locked_until == LOCKED_INDEFINITELY
        freeze(monkeypatch, datetime.now(UTC) + timedelta(days=3650))
        assert (await login(client, user.email, DEFAULT_PASSWORD)).json() == LOCKED
        me = await client.get(f"/api/v1/users/{user.id}", headers=await auth_as(admin))
        assert me.json()["is_locked"] is True
        unlock = await client.post(f"/api/v1/users/{user.id}/unlock", headers=await auth_as(admin))
        assert unlock.status_code == 200
        assert unlock.json()["is_locked"] is False
        stored = await db_user(session, user.id)
        assert (stored.failed_login_count, stored.locked_until) == (0, None)
        assert (await login(client, user.email, DEFAULT_PASSWORD)).status_code == 200

    async def test_lockout_minutes_zero_until_reset(self, client, session, user, monkeypatch):
        monkeypatch.setattr(settings, "LOCKOUT_MINUTES", 0)
        await self.fail(client, user.email, 5)
        token = await reset_token(client, session, user.email)
        response = await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        assert response.status_code == 200
        assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200

    async def test_one_locked_mail(self, client, session, user, mailbox):
        await self.fail(client, user.email, 8)
        await login(client, user.email, DEFAULT_PASSWORD)
        assert [(m.to, m.subject) for m in await queued_mail(session)] == [
            (user.email, LOCKED_SUBJECT)
        ]
        assert await deliver_queued_mail(session) == 1
        [message] = mailbox.to(user.email)
        assert message["Subject"] == LOCKED_SUBJECT
        assert "locked after 5 failed sign-in attempts" in Mailbox.text(message)


@pytest.mark.security("TOK-2")
class TestLogout:
    async def test_204_then_token_401(self, client, session, user):
        headers = await login_headers(client, user.email, DEFAULT_PASSWORD)
        response = await client.post(LOGOUT, headers=headers)
        assert response.status_code == 204
        assert response.content == b""
        assert_401(await client.get(ME, headers=headers))
        assert_401(await client.post(LOGOUT, headers=headers))
        assert await token_count(session, user.id) == 0

    async def test_other_sessions_kept(self, client, user):
        first = await login_headers(client, user.email, DEFAULT_PASSWORD)
        second = await login_headers(client, user.email, DEFAULT_PASSWORD)
        assert (await client.post(LOGOUT, headers=first)).status_code == 204
        assert (await client.get(ME, headers=second)).status_code == 200

    async def test_no_token_401(self, client):
        assert_401(await client.post(LOGOUT))

    async def test_unknown_token_401(self, client):
        assert_401(await client.post(LOGOUT, headers={"Authorization": "Bearer nope"}))


class TestForgotPassword:
    async def test_known_email_202_reset_mail(self, client, session, user, mailbox):
        response = await client.post(FORGOT, json={"email": user.email.upper()})
        assert response.status_code == 202
        assert response.json() is None
        queued = await queued_mail(session)
        assert [(m.to, m.subject) for m in queued] == [
            (user.email, "Reset your event-manager password")
        ]
        assert await deliver_queued_mail(session) == 1
        [message] = mailbox.to(user.email)
        token = link_token(Mailbox.text(message), "reset-password")
        html = message.get_body(preferencelist=("html",))
        assert html is not None
        assert link_token(str(html.get_content()), "reset-password") == token
        reset = await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        assert reset.status_code == 200

    @pytest.mark.security("RST-1")
    async def test_unknown_email_202_no_mail(self, client, session):
        response = await client.post(FORGOT, json={"email": new_email()})
        assert response.status_code == 202
        assert response.json() is None
        assert await queued_mail(session) == []

    async def test_deactivated_202_no_mail(self, client, session):
        inactive = await create_user(session, is_active=False)
        response = await client.post(FORGOT, json={"email": inactive.email})
        assert response.status_code == 202
        assert await queued_mail(session) == []

    async def test_bad_email_422(self, client):
        response = await client.post(FORGOT, json={"email": "nope"})
        assert response.status_code == 422
        assert [e["loc"] for e in response.json()["detail"]] == [["body", "email"]]

    @pytest.mark.security("RST-1")
    async def test_at_most_five_mails_an_hour(self, client, session, user, monkeypatch):
        """RST-1 burst: the 6th request in an hour still answers 202 but sends nothing."""
        at = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
        freeze(monkeypatch, at)
        for minute in range(6):
            freeze(monkeypatch, at + timedelta(minutes=minute))
            response = await client.post(FORGOT, json={"email": user.email})
            assert response.status_code == 202
        assert len(await mails_to(session, user.email)) == 5
        freeze(monkeypatch, at + timedelta(minutes=59))
        assert (await client.post(FORGOT, json={"email": user.email})).status_code == 202
        assert len(await mails_to(session, user.email)) == 5
        freeze(monkeypatch, at + timedelta(minutes=61))
        assert (await client.post(FORGOT, json={"email": user.email})).status_code == 202
        assert len(await mails_to(session, user.email)) == 6

    @pytest.mark.security("RST-1")
    async def test_limit_is_per_address(self, client, session, user, manager):
        for _ in range(6):
            await client.post(FORGOT, json={"email": user.email})
        await client.post(FORGOT, json={"email": manager.email})
        assert len(await mails_to(session, user.email)) == 5
        assert len(await mails_to(session, manager.email)) == 1


class TestResetPassword:
    async def test_200_new_password_works_old_fails(self, client, session, user):
        token = await reset_token(client, session, user.email)
        response = await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        assert response.status_code == 200
        assert response.json() is None
        assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200
        old = await login(client, user.email, DEFAULT_PASSWORD)
        assert (old.status_code, old.json()) == (400, BAD_CREDENTIALS)

    @pytest.mark.security("AUTH-4")
    async def test_clears_lockout(self, client, session, user):
        for _ in range(5):
            await login(client, user.email, "wrong passphrase here")
        assert (await login(client, user.email, DEFAULT_PASSWORD)).json() == LOCKED
        token = await reset_token(client, session, user.email)
        assert (
            await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        ).status_code == 200
        stored = await db_user(session, user.id)
        assert (stored.failed_login_count, stored.locked_until) == (0, None)
        assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200

    @pytest.mark.security("TOK-2")
    async def test_revokes_earlier_tokens(self, client, session, user, auth_as):
        issued = await auth_as(user)
        logged_in = await login_headers(client, user.email, DEFAULT_PASSWORD)
        token = await reset_token(client, session, user.email)
        assert (
            await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        ).status_code == 200
        assert_401(await client.get(ME, headers=issued))
        assert_401(await client.get(ME, headers=logged_in))
        assert await token_count(session, user.id) == 0

    @pytest.mark.security("REG-4")
    async def test_token_single_use(self, client, session, user):
        token = await reset_token(client, session, user.email)
        first = await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        assert first.status_code == 200
        again = await client.post(
            RESET, json={"token": token, "password": "yet another passphrase"}
        )
        assert again.status_code == 400
        assert again.json() == {"detail": "RESET_PASSWORD_BAD_TOKEN"}
        assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200

    @pytest.mark.security("REG-4")
    async def test_older_token_dies_with_the_password(self, client, session, user):
        older = await reset_token(client, session, user.email)
        newer = await reset_token(client, session, user.email)
        assert (
            await client.post(RESET, json={"token": newer, "password": NEW_PASSWORD})
        ).status_code == 200
        response = await client.post(RESET, json={"token": older, "password": "third passphrase"})
        assert response.json() == {"detail": "RESET_PASSWORD_BAD_TOKEN"}

    @pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
    async def test_bad_token_400(self, client, token):
        response = await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        assert response.status_code == 400
        assert response.json() == {"detail": "RESET_PASSWORD_BAD_TOKEN"}

    @pytest.mark.security("REG-4")
    async def test_expired_token_400(self, client, session, user):
        manager = UserManager(UserDatabase(session, User))
        token = generate_jwt(
            {
                "sub": str(user.id),
                "password_fgpt": manager._fingerprint(user.hashed_password),
                "aud": manager.reset_password_token_audience,
            },
            settings.signing_key,
            -60,
        )
        response = await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        assert response.status_code == 400
        assert response.json() == {"detail": "RESET_PASSWORD_BAD_TOKEN"}
        assert (await login(client, user.email, DEFAULT_PASSWORD)).status_code == 200

    @pytest.mark.security("REG-4")
    async def test_verification_token_400(self, client, session, unverified_user):
        token = await request_verification_token(client, session, unverified_user.email)
        response = await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        assert response.status_code == 400
        assert response.json() == {"detail": "RESET_PASSWORD_BAD_TOKEN"}

    async def test_deactivated_user_400(self, client, session, user):
        token = await reset_token(client, session, user.email)
        user.is_active = False
        await session.flush()
        response = await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        assert response.status_code == 400
        assert response.json() == {"detail": "RESET_PASSWORD_BAD_TOKEN"}

    @pytest.mark.parametrize(
        ("password", "reason"),
        [
            ("short", "Password should be at least 8 characters"),
            ("password", "Password is too common"),
            ("{email}", "Password should not be the email"),
            ("x" * 129, "Password should be at most 128 characters"),
        ],
        ids=["short", "common", "email", "too-long"],
    )
    async def test_weak_password_400(self, client, session, user, password, reason):
        token = await reset_token(client, session, user.email)
        response = await client.post(
            RESET, json={"token": token, "password": password.format(email=user.email)}
        )
        assert response.status_code == 400
        assert response.json() == {
            "detail": {"code": "RESET_PASSWORD_INVALID_PASSWORD", "reason": reason}
        }
        assert (await login(client, user.email, DEFAULT_PASSWORD)).status_code == 200
        # The password did not change, so the token still works.
        ok = await client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        assert ok.status_code == 200

    async def test_missing_fields_422(self, client):
        response = await client.post(RESET, json={"token": "x"})
        assert response.status_code == 422
        assert [e["loc"] for e in response.json()["detail"]] == [["body", "password"]]


THROTTLED: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    (LOGIN, lambda: {"data": {"username": new_email(), "password": "whatever passphrase"}}),
    (REGISTER, lambda: {"json": {"email": new_email(), "password": DEFAULT_PASSWORD}}),
    (REQUEST_VERIFY, lambda: {"json": {"email": new_email()}}),
    (FORGOT, lambda: {"json": {"email": new_email()}}),
]


@pytest.mark.security("AUTH-4")
class TestThrottle:
    """AUTH-4: per-client-IP throttle on the unauthenticated auth endpoints."""

    @pytest.mark.parametrize(
        ("path", "request_kwargs"),
        THROTTLED,
        ids=["login", "register", "request-verify-token", "forgot-password"],
    )
    async def test_fourth_request_429(self, client, rate_limit, path, request_kwargs):
        rate_limit("3/minute")
        answers = [(await client.post(path, **request_kwargs())).status_code for _ in range(3)]
        assert 429 not in answers
        response = await client.post(path, **request_kwargs())
        assert response.status_code == 429
        assert response.json() == {"detail": "TOO_MANY_REQUESTS"}
        assert response.headers["Retry-After"].isdigit()
        assert 1 <= int(response.headers["Retry-After"]) <= 60

    async def test_other_client_ip_not_throttled(self, app: FastAPI, client, rate_limit):
        rate_limit("3/minute")
        for _ in range(4):
            last = await login(client, new_email(), "whatever passphrase")
        assert last.status_code == 429
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4567))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            response = await login(other, new_email(), "whatever passphrase")
        assert (response.status_code, response.json()) == (400, BAD_CREDENTIALS)

    async def test_other_routes_not_throttled(self, client, rate_limit, user, auth_as):
        rate_limit("3/minute")
        headers = await auth_as(user)
        for _ in range(6):
            assert (await client.get(ME, headers=headers)).status_code == 200
            assert (await client.post(VERIFY, json={"token": "bad"})).status_code == 400
            bad_reset = await client.post(RESET, json={"token": "bad", "password": NEW_PASSWORD})
            assert bad_reset.status_code == 400
            assert (await client.get("/health")).status_code == 200

    async def test_off_by_default_in_tests(self, client):
        for _ in range(12):
            response = await login(client, new_email(), "whatever passphrase")
            assert response.status_code == 400


async def test_throttle_storage_refusing_lets_the_request_through_counted(
    client, rate_limit, monkeypatch: pytest.MonkeyPatch
):
    """A Redis that refuses connections (a closed port): the throttle fails open, counted in
    /metrics (tests/test_throttle_shared.py covers the log, the timeout and the recovery)."""
    monkeypatch.setattr(settings, "RATE_LIMIT_STORAGE_URL", f"redis://127.0.0.1:{free_port()}/0")
    rate_limit("1/minute")  # and a storage built afresh, from the URL above
    series = "event_manager_rate_limit_storage_errors_total"
    before = samples((await client.get("/metrics")).text)[series]
    for _ in range(3):
        response = await login(client, new_email(), "whatever passphrase")
        assert (response.status_code, response.json()) == (400, BAD_CREDENTIALS)
    assert samples((await client.get("/metrics")).text)[series] - before == 3


class TestUpdateMe:
    """AUTH-5, TOK-2 and REG-1 through PATCH /users/me."""

    @pytest.mark.security("AUTH-5")
    async def test_password_without_current_400(self, client, user, auth_as):
        response = await client.patch(
            ME, json={"password": NEW_PASSWORD}, headers=await auth_as(user)
        )
        assert response.status_code == 400
        assert response.json() == {
            "detail": {
                "code": "CURRENT_PASSWORD_INVALID",
                "reason": "current_password is required to change it",
            }
        }
        assert (await login(client, user.email, DEFAULT_PASSWORD)).status_code == 200

    @pytest.mark.security("AUTH-5")
    async def test_password_wrong_current_400(self, client, user, auth_as):
        response = await client.patch(
            ME,
            json={"password": NEW_PASSWORD, "current_password": "not my passphrase"},
            headers=await auth_as(user),
        )
        assert response.status_code == 400
        assert response.json() == {
            "detail": {
                "code": "CURRENT_PASSWORD_INVALID",
                "reason": "current_password is not the account's password",
            }
        }
        assert (await login(client, user.email, NEW_PASSWORD)).json() == BAD_CREDENTIALS

    @pytest.mark.security("TOK-2")
    async def test_password_change_revokes_every_token(self, client, session, user, auth_as):
        other = await auth_as(user)
        caller = await login_headers(client, user.email, DEFAULT_PASSWORD)
        response = await client.patch(
            ME,
            json={"password": NEW_PASSWORD, "current_password": DEFAULT_PASSWORD},
            headers=caller,
        )
        assert response.status_code == 200
        assert response.json()["id"] == str(user.id)
        assert_401(await client.get(ME, headers=caller))
        assert_401(await client.get(ME, headers=other))
        assert await token_count(session, user.id) == 0
        assert (await login(client, user.email, DEFAULT_PASSWORD)).json() == BAD_CREDENTIALS
        assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200

    async def test_weak_new_password_400(self, client, user, auth_as):
        response = await client.patch(
            ME,
            json={"password": "password", "current_password": DEFAULT_PASSWORD},
            headers=await auth_as(user),
        )
        assert response.status_code == 400
        assert response.json() == {
            "detail": {"code": "UPDATE_USER_INVALID_PASSWORD", "reason": "Password is too common"}
        }

    async def test_profile_change_keeps_tokens(self, client, user, auth_as):
        headers = await auth_as(user)
        response = await client.patch(ME, json={"bio": "New bio"}, headers=headers)
        assert response.status_code == 200
        assert response.json()["bio"] == "New bio"
        assert (await client.get(ME, headers=headers)).status_code == 200

    @pytest.mark.security("AUTH-5")
    async def test_email_change_resets_verification(self, client, session, user, auth_as):
        email = new_email()
        response = await client.patch(ME, json={"email": email}, headers=await auth_as(user))
        assert response.status_code == 200
        body = response.json()
        assert (body["email"], body["is_verified"], body["role"]) == (email, False, "ANONYMOUS")
        stored = await db_user(session, user.id)
        assert (stored.email, stored.is_verified, stored.role) == (
            email,
            False,
            UserRole.ANONYMOUS,
        )
        [mail] = await queued_mail(session)
        assert mail.to == email
        token = link_token(mail.text, "verify-email")
        verified = await client.post(VERIFY, json={"token": token})
        assert verified.status_code == 200
        assert verified.json()["role"] == "AUTHENTICATED"

    async def test_email_taken_400(self, client, session, user, manager, auth_as):
        response = await client.patch(
            ME, json={"email": manager.email.upper()}, headers=await auth_as(user)
        )
        assert response.status_code == 400
        assert response.json() == {"detail": "UPDATE_USER_EMAIL_ALREADY_EXISTS"}
        stored = await db_user(session, user.id)
        assert (stored.email, stored.is_verified) == (user.email, True)
        assert await queued_mail(session) == []

    async def test_nickname_taken_409(self, client, session, user, manager, auth_as):
        response = await client.patch(
            ME, json={"nickname": manager.nickname.upper()}, headers=await auth_as(user)
        )
        assert response.status_code == 409
        assert response.json() == {"detail": "NICKNAME_TAKEN"}
        assert (await db_user(session, user.id)).nickname == user.nickname

    @pytest.mark.security("REG-1")
    async def test_server_controlled_fields_ignored(
        self, client, session, unverified_user, auth_as
    ):
        """REG-1 through PATCH /users/me."""
        headers = await auth_as(unverified_user)
        response = await client.patch(
            ME,
            json={
                "role": "ADMIN",
                "is_superuser": True,
                "is_verified": True,
                "is_active": False,
                "is_professional": True,
                "failed_login_count": 7,
                "bio": "still me",
            },
            headers=headers,
        )
        assert response.status_code == 200
        stored = await db_user(session, unverified_user.id)
        assert stored.bio == "still me"
        assert stored.role is UserRole.ANONYMOUS
        assert stored.is_superuser is False
        assert stored.is_verified is False
        assert stored.is_active is True
        assert stored.is_professional is False
        assert stored.failed_login_count == 0
        assert (await client.get(ME, headers=headers)).status_code == 200


class TestCurrentUserToken:
    """TOK-1..3 and REG-4 on GET /users/me."""

    @pytest.mark.parametrize(
        "kind", ["alg_none", "foreign_key", "expired", "no_exp", "tampered", "empty"]
    )
    @pytest.mark.security("TOK-1")
    async def test_crafted_token_401(self, client, user, auth_as, kind):
        real = (await auth_as(user))["Authorization"].removeprefix("Bearer ")
        claims = {"sub": str(user.id), "aud": ["fastapi-users:auth"]}
        future = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
        past = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
        key = settings.signing_key
        token = {
            "alg_none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({**claims, 'exp': future})}.",
            "foreign_key": jwt.encode({**claims, "exp": future}, "x" * 64, algorithm="HS256"),
            "expired": jwt.encode({**claims, "exp": past}, key, algorithm="HS256"),
            "no_exp": jwt.encode(claims, key, algorithm="HS256"),
            "tampered": real[:-1] + ("A" if real[-1] != "A" else "B"),
            "empty": "",
        }[kind]
        assert_401(await client.get(ME, headers={"Authorization": f"Bearer {token}"}))

    @pytest.mark.security("TOK-1")
    async def test_query_string_token_401(self, client, user, auth_as):
        token = (await auth_as(user))["Authorization"].removeprefix("Bearer ")
        assert_401(await client.get(ME, params={"access_token": token}))

    @pytest.mark.security("TOK-1")
    async def test_cookie_token_401(self, client, user, auth_as):
        token = (await auth_as(user))["Authorization"].removeprefix("Bearer ")
        response = await client.get(
            ME, headers={"Cookie": f"access_token={token}; fastapiusersauth={token}"}
        )
        assert_401(response)

    @pytest.mark.security("TOK-1")
    async def test_other_scheme_401(self, client, user, auth_as):
        token = (await auth_as(user))["Authorization"].removeprefix("Bearer ")
        assert_401(await client.get(ME, headers={"Authorization": f"Token {token}"}))

    @pytest.mark.security("REG-4")
    async def test_verification_token_as_bearer_401(self, client, session, unverified_user):
        token = await request_verification_token(client, session, unverified_user.email)
        assert_401(await client.get(ME, headers={"Authorization": f"Bearer {token}"}))

    @pytest.mark.security("REG-4")
    async def test_reset_token_as_bearer_401(self, client, session, user):
        token = await reset_token(client, session, user.email)
        assert_401(await client.get(ME, headers={"Authorization": f"Bearer {token}"}))

    @pytest.mark.security("TOK-1")
    async def test_expired_access_token_401(self, client, session, user):
        headers = await login_headers(client, user.email, DEFAULT_PASSWORD)
        assert (await client.get(ME, headers=headers)).status_code == 200
        # DatabaseStrategy compares created_at with the real clock: age the row instead.
        token = await session.get(
            AccessToken, hash_token(headers["Authorization"].removeprefix("Bearer "))
        )
        assert token is not None
        lifetime = timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
        token.created_at = datetime.now(UTC) - lifetime - timedelta(seconds=5)
        await session.flush()
        assert_401(await client.get(ME, headers=headers))

    @pytest.mark.security("TOK-2")
    async def test_deactivation_by_staff_revokes(self, client, session, user, admin, auth_as):
        headers = await auth_as(user)
        response = await client.patch(
            f"/api/v1/users/{user.id}", json={"is_active": False}, headers=await auth_as(admin)
        )
        assert response.status_code == 200
        assert response.json()["is_active"] is False
        assert_401(await client.get(ME, headers=headers))
        assert await token_count(session, user.id) == 0

    @pytest.mark.security("TOK-2")
    async def test_delete_me_revokes(self, client, session, user, auth_as):
        headers = await auth_as(user)
        assert (await client.delete(ME, headers=headers)).status_code == 204
        assert_401(await client.get(ME, headers=headers))
        assert await session.scalar(select(User).where(col(User.id) == user.id)) is None

    @pytest.mark.security("TOK-3")
    async def test_demoted_manager_403_at_once(self, client, manager, admin, auth_as):
        headers = await auth_as(manager)
        assert (await client.get("/api/v1/users", headers=headers)).status_code == 200
        demote = await client.put(
            f"/api/v1/users/{manager.id}/role",
            json={"role": "AUTHENTICATED"},
            headers=await auth_as(admin),
        )
        assert demote.status_code == 200
        response = await client.get("/api/v1/users", headers=headers)
        assert response.status_code == 403
        assert response.json() == {"detail": "FORBIDDEN"}


class TestPasswordHashing:
    """The production argon2id parameters (tests run with cheaper ones)."""

    @pytest.fixture
    def production_helper(self, monkeypatch) -> ThreadedPasswordHelper:
        monkeypatch.setattr(settings, "PASSWORD_HASH_TIME_COST", 3)
        monkeypatch.setattr(settings, "PASSWORD_HASH_MEMORY_KIB", 65536)
        return ThreadedPasswordHelper()

    async def test_hash_and_verify(self, production_helper):
        hashed = await production_helper.hash_async(DEFAULT_PASSWORD)
        assert hashed.startswith("$argon2id$v=19$m=65536,t=3,")
        assert await production_helper.verify_and_update_async(DEFAULT_PASSWORD, hashed) == (
            True,
            None,
        )
        assert await production_helper.verify_and_update_async("wrong", hashed) == (False, None)

    async def test_bcrypt_verified_and_upgraded(self, production_helper):
        legacy = BcryptHasher().hash(DEFAULT_PASSWORD)
        assert legacy.startswith("$2b$")
        verified, new_hash = await production_helper.verify_and_update_async(
            DEFAULT_PASSWORD, legacy
        )
        assert verified is True
        assert new_hash is not None
        assert new_hash.startswith("$argon2id$v=19$m=65536,t=3,")
        assert await production_helper.verify_and_update_async(DEFAULT_PASSWORD, new_hash) == (
            True,
            None,
        )
        assert await production_helper.verify_and_update_async("wrong", legacy) == (False, None)

    async def test_cheaper_argon2_upgraded(self, production_helper):
        cheap = password_helper.hash(DEFAULT_PASSWORD)
        assert cheap.startswith("$argon2id$v=19$m=1024,t=1,")
        verified, new_hash = await production_helper.verify_and_update_async(
            DEFAULT_PASSWORD, cheap
        )
        assert verified is True
        assert new_hash is not None
        assert new_hash.startswith("$argon2id$v=19$m=65536,t=3,")


class TestTokenStorage:
    async def test_only_the_hash_of_a_token_is_stored(self, client, session, user):
        response = await client.post(
            "/api/v1/auth/login", data={"username": user.email, "password": DEFAULT_PASSWORD}
        )
        token = response.json()["access_token"]
        stored = (
            await session.scalars(
                select(col(AccessToken.token)).where(col(AccessToken.user_id) == user.id)
            )
        ).all()
        assert stored == [hashlib.sha256(token.encode()).hexdigest()]
        me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        # The stored value itself is not a usable bearer token.
        leaked = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {stored[0]}"}
        )
        assert leaked.status_code == 401

    async def test_token_expires_on_the_service_clock(self, client, user, monkeypatch):
        headers = await login_headers(client, user.email, DEFAULT_PASSWORD)
        lifetime = timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
        freeze(monkeypatch, datetime.now(UTC) + lifetime - timedelta(seconds=30))
        assert (await client.get(ME, headers=headers)).status_code == 200
        freeze(monkeypatch, datetime.now(UTC) + lifetime + timedelta(seconds=30))
        assert_401(await client.get(ME, headers=headers))
