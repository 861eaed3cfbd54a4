"""fastapi-users UserManager: the account rules of API.md and SECURITY.md, through its hooks."""

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import BaseUserManager, UUIDIDMixin, exceptions
from fastapi_users.jwt import decode_jwt, generate_jwt
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
from fastapi_users_db_sqlalchemy.access_token import SQLAlchemyAccessTokenDatabase
from sqlalchemy import case, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import clock
from api.audit import service as audit_service
from api.config import settings
from api.db import SessionDep
from api.mail.service import enqueue_email
from api.notifications.models import NotificationKind
from api.notifications.service import notify
from api.registrations import service as registration_service
from api.users.errors import CurrentPasswordInvalid, LoginAccountLocked, LoginUserNotVerified
from api.users.models import AccessToken, User, UserRole, hash_token
from api.users.passwords import ThreadedPasswordHelper, password_helper, password_problem
from api.users.service import (
    announce_user_created,
    announce_user_deleted,
    announce_user_update,
    announced_fields,
    ensure_not_last_admin,
    revoke_tokens,
    save_user,
)

# Locked "until unlocked" (LOCKOUT_MINUTES=0) is a date no clock reaches.
LOCKED_INDEFINITELY = clock.now().replace(year=9999, month=12, day=31)


class UserDatabase(SQLAlchemyUserDatabase[User, uuid.UUID]):
    """Writes join the request's transaction (flush, no commit) and map unique violations."""

    session: AsyncSession

    async def create(self, create_dict: dict[str, Any]) -> User:
        return await save_user(self.session, User(**create_dict))

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        for key, value in update_dict.items():
            setattr(user, key, value)
        return await save_user(self.session, user)

    async def delete(self, user: User) -> None:
        await self.session.delete(user)
        await self.session.flush()


class AccessTokenDatabase(SQLAlchemyAccessTokenDatabase[AccessToken]):
    """Tokens are looked up and stored by their hash; only the client ever holds the token."""

    session: AsyncSession

    async def get_by_token(self, token: str, max_age: datetime | None = None) -> AccessToken | None:
        return await super().get_by_token(hash_token(token), max_age)

    async def create(self, create_dict: dict[str, Any]) -> AccessToken:
        stored = AccessToken(**{**create_dict, "token": hash_token(create_dict["token"])})
        self.session.add(stored)
        await self.session.flush()
        # DatabaseStrategy hands `.token` to the client: the plain token, on an unsaved copy.
        return AccessToken(token=create_dict["token"], user_id=stored.user_id)

    async def delete(self, access_token: AccessToken) -> None:
        await self.session.delete(access_token)
        await self.session.flush()


def _nickname_from(email: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]", "", email.partition("@")[0])[:21] or "user"
    return f"{stem}-{secrets.token_hex(4)}"


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = settings.signing_key
    verification_token_secret = settings.signing_key
    reset_password_token_lifetime_seconds = settings.RESET_TOKEN_EXPIRE_MINUTES * 60
    verification_token_lifetime_seconds = settings.VERIFICATION_TOKEN_EXPIRE_MINUTES * 60

    user_db: UserDatabase
    password_helper: ThreadedPasswordHelper

    def __init__(self, user_db: UserDatabase) -> None:
        super().__init__(user_db, password_helper)

    @property
    def session(self) -> AsyncSession:
        return self.user_db.session

    async def validate_password(self, password: str, user: Any) -> None:
        problem = password_problem(password, user.email)
        if problem:
            raise exceptions.InvalidPasswordException(reason=problem)

    # --- creation ------------------------------------------------------------------------------

    async def create(
        self, user_create: Any, safe: bool = False, request: Request | None = None
    ) -> User:
        await self.validate_password(user_create.password, user_create)
        if await self.user_db.get_by_email(user_create.email) is not None:
            raise exceptions.UserAlreadyExists()
        data = (
            user_create.create_update_dict() if safe else user_create.create_update_dict_superuser()
        )
        data["hashed_password"] = await self.password_helper.hash_async(data.pop("password"))
        data["nickname"] = data.get("nickname") or _nickname_from(data["email"])
        if data.get("role") is not None:
            data["is_verified"] = True
            data["is_superuser"] = data["role"] is UserRole.ADMIN
        if data.get("is_professional"):
            data["professional_status_updated_at"] = clock.now()
        user = await self.user_db.create(data)
        await announce_user_created(self.session, user)
        await self.on_after_register(user, request)
        return user

    async def on_after_register(self, user: User, request: Request | None = None) -> None:
        if not user.is_verified:
            await self.request_verify(user, request)

    async def on_after_request_verify(
        self, user: User, token: str, request: Request | None = None
    ) -> None:
        await enqueue_email(
            self.session,
            "verify_email",
            to=user.email,
            name=user.display_name,
            token=token,
            expires_minutes=settings.VERIFICATION_TOKEN_EXPIRE_MINUTES,
        )

    # --- updates -------------------------------------------------------------------------------

    async def update(
        self, user_update: Any, user: User, safe: bool = False, request: Request | None = None
    ) -> User:
        data = (
            user_update.create_update_dict() if safe else user_update.create_update_dict_superuser()
        )
        current_password = data.pop("current_password", None)
        for key in ("email", "password", "nickname"):
            if key in data and data[key] is None:
                del data[key]
        if "password" in data:
            if current_password is None:
                raise CurrentPasswordInvalid(reason="current_password is required to change it")
            verified, _ = await self.password_helper.verify_and_update_async(
                current_password, user.hashed_password
            )
            if not verified:
                raise CurrentPasswordInvalid(
                    reason="current_password is not the account's password"
                )
        updated = await self._update(user, data)
        await self.on_after_update(updated, data, request)
        return updated

    async def _update(self, user: User, update_dict: dict[str, Any]) -> User:
        changes: dict[str, Any] = {}
        revoke = False
        for field, value in update_dict.items():
            if field == "email" and value.lower() != user.email.lower():
                if await self.user_db.get_by_email(value) is not None:
                    raise exceptions.UserAlreadyExists()
                changes.update(email=value, is_verified=False)
                if user.role is UserRole.AUTHENTICATED:
                    changes["role"] = UserRole.ANONYMOUS
            elif field == "password":
                await self.validate_password(value, user)
                changes["hashed_password"] = await self.password_helper.hash_async(value)
                revoke = True
            elif field == "is_verified" and value and user.role is UserRole.ANONYMOUS:
                changes.update(is_verified=True, role=UserRole.AUTHENTICATED)
            else:
                changes[field] = value
        if changes.get("is_active") is False:
            revoke = True
        announced = announced_fields(user)
        updated = await self.user_db.update(user, changes)
        if revoke:
            await revoke_tokens(self.session, user.id)
        await announce_user_update(self.session, updated, announced)
        return updated

    async def on_after_update(
        self, user: User, update_dict: dict[str, Any], request: Request | None = None
    ) -> None:
        if "email" in update_dict and not user.is_verified:
            await self.request_verify(user, request)

    # --- password reset ------------------------------------------------------------------------

    def _fingerprint(self, hashed_password: str) -> str:
        # An HMAC, not fastapi-users' argon2 hash: cheap, and the token dies with the password.
        key = settings.signing_key.encode()
        return hmac.new(key, hashed_password.encode(), hashlib.sha256).hexdigest()

    async def _take_reset_mail_slot(self, user: User) -> bool:
        """At most RESET_MAILS_PER_HOUR reset mails per account, counted atomically."""
        now = clock.now()
        window_start = col(User.reset_mail_window_start)
        count = col(User.reset_mail_count)
        window_over = or_(window_start.is_(None), window_start < now - timedelta(hours=1))
        statement = (
            update(User)
            .where(col(User.id) == user.id)
            .where(or_(window_over, count < settings.RESET_MAILS_PER_HOUR))
            .values(
                reset_mail_count=case((window_over, 1), else_=count + 1),
                reset_mail_window_start=case((window_over, now), else_=window_start),
            )
            .returning(count)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(statement)).first() is not None

    async def forgot_password(self, user: User, request: Request | None = None) -> None:
        if not user.is_active:
            raise exceptions.UserInactive()
        if not await self._take_reset_mail_slot(user):
            return
        token = generate_jwt(
            {
                "sub": str(user.id),
                "password_fgpt": self._fingerprint(user.hashed_password),
                "aud": self.reset_password_token_audience,
            },
            self.reset_password_token_secret,
            self.reset_password_token_lifetime_seconds,
        )
        await self.on_after_forgot_password(user, token, request)

    async def on_after_forgot_password(
        self, user: User, token: str, request: Request | None = None
    ) -> None:
        await enqueue_email(
            self.session,
            "reset_password",
            to=user.email,
            name=user.display_name,
            token=token,
            expires_minutes=settings.RESET_TOKEN_EXPIRE_MINUTES,
        )

    async def user_for_reset_token(self, token: str) -> User:
        """The account a reset token may still change; InvalidResetPasswordToken otherwise."""
        try:
            data = decode_jwt(
                token, self.reset_password_token_secret, [self.reset_password_token_audience]
            )
            user = await self.get(self.parse_id(data["sub"]))
        except (jwt.PyJWTError, KeyError, exceptions.InvalidID, exceptions.UserNotExists) as e:
            raise exceptions.InvalidResetPasswordToken() from e
        fingerprint = str(data.get("password_fgpt", ""))
        if not hmac.compare_digest(fingerprint, self._fingerprint(user.hashed_password)):
            raise exceptions.InvalidResetPasswordToken()
        if not user.is_active:
            raise exceptions.UserInactive()
        return user

    async def reset_password(
        self, token: str, password: str, request: Request | None = None
    ) -> User:
        user = await self.user_for_reset_token(token)
        updated = await self._update(
            user, {"password": password, "failed_login_count": 0, "locked_until": None}
        )
        await self.on_after_reset_password(updated, request)
        return updated

    # --- login and lockout ---------------------------------------------------------------------

    async def _reserve_attempt(self, user_id: uuid.UUID) -> int | None:
        """Count an attempt before checking the password; None when the account is locked.

        One UPDATE decides it, so N parallel guesses evaluate at most MAX_LOGIN_ATTEMPTS passwords.
        """
        now = clock.now()
        current_lock = col(User.locked_until)
        lock_expired = current_lock <= now
        count = case((lock_expired, 1), else_=col(User.failed_login_count) + 1)
        lock_for = timedelta(minutes=settings.LOCKOUT_MINUTES) if settings.LOCKOUT_MINUTES else None
        locked_until = now + lock_for if lock_for else LOCKED_INDEFINITELY
        statement = (
            update(User)
            .where(col(User.id) == user_id)
            .where(or_(current_lock.is_(None), lock_expired))
            .values(
                failed_login_count=count,
                locked_until=case((count >= settings.MAX_LOGIN_ATTEMPTS, locked_until), else_=None),
            )
            .returning(col(User.failed_login_count))
            .execution_options(synchronize_session=False)
        )
        row = (await self.session.execute(statement)).first()
        # Committed at once: the attempt counts even though the request answers 400.
        await self.session.commit()
        return None if row is None else int(row[0])

    async def authenticate(self, credentials: OAuth2PasswordRequestForm) -> User | None:
        user = await self.user_db.get_by_email(credentials.username)
        if user is None:
            # The same statements and the same hashing as a real check (on an id that matches
            # nothing), so an unknown email cannot be told apart by timing.
            await self._reserve_attempt(uuid.uuid4())
            await self.password_helper.hash_async(credentials.password)
            await self.session.get(User, uuid.uuid4())
            return None
        attempt = await self._reserve_attempt(user.id)
        if attempt is None:
            raise LoginAccountLocked()
        verified, new_hash = await self.password_helper.verify_and_update_async(
            credentials.password, user.hashed_password
        )
        await self.session.refresh(user)
        if not verified:
            if attempt >= settings.MAX_LOGIN_ATTEMPTS:
                await self._notify_locked(user)
            return None
        changes: dict[str, Any] = {"failed_login_count": 0, "locked_until": None}
        if new_hash is not None:
            changes["hashed_password"] = new_hash
        await self.user_db.update(user, changes)
        await self.session.commit()
        if user.is_active and not user.is_verified:
            raise LoginUserNotVerified()
        return user

    async def _notify_locked(self, user: User) -> None:
        until = None if user.locked_until == LOCKED_INDEFINITELY else user.locked_until
        await notify(
            self.session,
            user,
            NotificationKind.ACCOUNT_LOCKED,
            attempts=settings.MAX_LOGIN_ATTEMPTS,
            until=f"{until.astimezone(UTC):%Y-%m-%d %H:%M}" if until else None,
        )
        await self.session.commit()

    async def on_after_login(
        self, user: User, request: Request | None = None, response: Response | None = None
    ) -> None:
        await self.user_db.update(user, {"last_login_at": clock.now()})

    # --- deletion ------------------------------------------------------------------------------

    async def on_before_delete(self, user: User, request: Request | None = None) -> None:
        await ensure_not_last_admin(self.session, user, becoming=None)
        await registration_service.release_user_registrations(self.session, user=user)
        await audit_service.redact_user(self.session, user.id)

    async def on_after_delete(self, user: User, request: Request | None = None) -> None:
        # After the row is gone (its lock taken): announced after any change still in flight.
        await announce_user_deleted(self.session, user)


async def get_user_db(session: SessionDep) -> UserDatabase:
    return UserDatabase(session, User)


async def get_access_token_db(session: SessionDep) -> AccessTokenDatabase:
    return AccessTokenDatabase(session, AccessToken)


async def get_user_manager(user_db: Annotated[UserDatabase, Depends(get_user_db)]) -> UserManager:
    return UserManager(user_db)
