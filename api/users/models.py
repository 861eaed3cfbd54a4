"""The user model family: one SQLModel base for the table and every API schema."""

import hashlib
import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi_users import schemas
from pydantic import AfterValidator, EmailStr, StringConstraints, field_validator
from sqlmodel import Field, SQLModel

from api import clock
from api.db import shown_columns
from api.examples import ADA_ID, examples
from api.pagination import Page
from api.users import examples as user_examples

TIMESTAMP = sa.DateTime(timezone=True)
NICKNAME_PATTERN = r"^[A-Za-z0-9_-]{3,30}$"
PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")
GITHUB_USER_PATH = re.compile(r"^/[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/?$")


class UserRole(StrEnum):
    ANONYMOUS = "ANONYMOUS"
    AUTHENTICATED = "AUTHENTICATED"
    MANAGER = "MANAGER"
    ADMIN = "ADMIN"


STAFF_ROLES = frozenset({UserRole.MANAGER, UserRole.ADMIN})


def _http_url(value: str) -> tuple[str, str]:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return parts.hostname.lower(), parts.path


def _picture_url(value: str) -> str:
    _, path = _http_url(value)
    if not path.lower().endswith(PICTURE_SUFFIXES):
        raise ValueError("must be an image URL ending in " + ", ".join(PICTURE_SUFFIXES))
    return value


def _linkedin_url(value: str) -> str:
    host, _ = _http_url(value)
    if host != "linkedin.com" and not host.endswith(".linkedin.com"):
        raise ValueError("must be a linkedin.com URL")
    return value


def _github_url(value: str) -> str:
    host, path = _http_url(value)
    if host not in ("github.com", "www.github.com") or not GITHUB_USER_PATH.match(path):
        raise ValueError("must be a github.com user URL such as https://github.com/octocat")
    return value


Nickname = Annotated[str, StringConstraints(pattern=NICKNAME_PATTERN)]
Name = Annotated[str, StringConstraints(max_length=100)]
Bio = Annotated[str, StringConstraints(max_length=500)]
PictureUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_picture_url)]
LinkedinUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_linkedin_url)]
GithubUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_github_url)]


class UserProfile(SQLModel):
    """Profile fields a user may show to other verified users."""

    first_name: Name | None = Field(default=None, max_length=100)
    last_name: Name | None = Field(default=None, max_length=100)
    bio: Bio | None = Field(default=None, max_length=500)
    profile_picture_url: PictureUrl | None = Field(default=None, max_length=2048)
    linkedin_profile_url: LinkedinUrl | None = Field(default=None, max_length=2048)
    github_profile_url: GithubUrl | None = Field(default=None, max_length=2048)


class UserBase(UserProfile):
    nickname: Nickname = Field(max_length=30)


class User(UserBase, table=True):
    __table_args__ = (
        sa.Index("uq_user_email_lower", sa.text("lower(email)"), unique=True),
        sa.Index("uq_user_nickname_lower", sa.text("lower(nickname)"), unique=True),
        sa.CheckConstraint("failed_login_count >= 0", name="failed_login_count_nonnegative"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320)
    hashed_password: str = Field(max_length=1024)
    is_active: bool = Field(default=True, index=True)
    is_superuser: bool = False
    is_verified: bool = Field(default=False, index=True)
    role: UserRole = Field(
        default=UserRole.ANONYMOUS,
        sa_type=sa.Enum(UserRole, name="user_role"),
        index=True,
    )
    is_professional: bool = Field(default=False, index=True)
    professional_status_updated_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    last_login_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    failed_login_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    locked_until: datetime | None = Field(default=None, sa_type=TIMESTAMP, index=True)
    reset_mail_window_start: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    reset_mail_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP, index=True)
    updated_at: datetime = Field(
        default_factory=clock.current_time,
        sa_type=TIMESTAMP,
        sa_column_kwargs={"onupdate": clock.current_time},
    )

    @property
    def display_name(self) -> str:
        """How mails address the user."""
        return self.first_name or self.nickname

    @property
    def is_locked(self) -> bool:
        return lock_in_force(self.locked_until)


def lock_in_force(locked_until: datetime | None) -> bool:
    """Whether a login lockout that ends at `locked_until` still holds."""
    return locked_until is not None and locked_until > clock.now()


class Viewer(NamedTuple):
    """The holder of a token, as far as a read that only checks who is asking needs to know."""

    id: uuid.UUID
    role: UserRole


def hash_token(token: str) -> str:
    """What is stored of a bearer token: its SHA-256, so a database leak leaks no live token."""
    return hashlib.sha256(token.encode()).hexdigest()


class AccessToken(SQLModel, table=True):
    """Opaque bearer tokens, stored hashed; deleting a row revokes the token at once."""

    token: str = Field(primary_key=True, max_length=64)  # hash_token(the bearer token)
    user_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP, index=True)


class UserRead(UserBase, schemas.BaseUser[uuid.UUID]):
    """A user as shown to its owner, managers and admins."""

    model_config = examples(user_examples.ADA_READ, list_path="/api/v1/users")

    # Stored addresses were validated on the way in; re-validating them (IDNA and all) on every
    # response cost more than the rest of the serialisation.
    email: str
    # Not in API.md's field list: role says it all (is_superuser only mirrors role is ADMIN).
    is_superuser: bool = Field(default=False, exclude=True)
    role: UserRole
    is_professional: bool
    professional_status_updated_at: datetime | None
    is_locked: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class UserPage(Page[UserRead]):
    """A page of user accounts."""


# Core reads of users as UserRead shows them (is_locked is computed from locked_until): the
# routes that only show users skip the ORM's identity map and change tracking.
USER_READ_COLUMNS = shown_columns(User, UserRead, "locked_until")


def user_read(row: sa.Row[Any], *, leave_out: Iterable[str] = ()) -> UserRead:
    """A row of USER_READ_COLUMNS (and the columns named in `leave_out`) in its public shape."""
    values = row._asdict()
    for key in leave_out:
        values.pop(key, None)
    values["is_locked"] = lock_in_force(values.pop("locked_until"))
    return UserRead.model_validate(values)


class UserDeleted(SQLModel):
    """The data of a `user.deleted` domain event: the account is gone, only its id remains."""

    model_config = examples({"id": ADA_ID})

    id: uuid.UUID


# What a `user.updated` domain event is about: a change of any of these (the profile, email,
# role, is_verified, is_active, is_professional), not a login, a lockout or its lifting.
ANNOUNCED_USER_FIELDS = frozenset(UserRead.model_fields) - {
    "is_locked",
    "last_login_at",
    "updated_at",
    "is_superuser",
}


class UserPublic(UserBase):
    """The public profile: what any verified user may see of another."""

    model_config = examples(user_examples.GRACE_PUBLIC)

    id: uuid.UUID
    is_professional: bool


class UserCreate(UserProfile, schemas.CreateUpdateDictModel):
    """Sign-up body. Server-controlled fields are not part of it: sent anyway, they are ignored."""

    model_config = examples(user_examples.SIGN_UP)

    email: EmailStr = Field(max_length=320)
    password: str = Field(max_length=128)
    nickname: Nickname | None = Field(default=None, max_length=30)


class UserProfileUpdate(SQLModel):
    """Every profile field, optional: the editable part shared by the two PATCH bodies."""

    nickname: Nickname | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    bio: Bio | None = None
    profile_picture_url: PictureUrl | None = None
    linkedin_profile_url: LinkedinUrl | None = None
    github_profile_url: GithubUrl | None = None


class UserUpdate(UserProfileUpdate, schemas.CreateUpdateDictModel):
    """PATCH /users/me. `current_password` is required to change the password."""

    model_config = examples(user_examples.PROFILE_EDIT, user_examples.PASSWORD_CHANGE)

    email: EmailStr | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=128)
    current_password: str | None = Field(default=None, max_length=128)


class UserStaffUpdate(UserProfileUpdate):
    """PATCH /users/{id} by a manager or admin: profile fields and activation."""

    model_config = examples(user_examples.STAFF_EDIT, user_examples.PROFILE_EDIT)

    is_active: bool | None = None


class UserAdminCreate(UserProfile, schemas.CreateUpdateDictModel):
    """POST /users by an admin: the account is created verified, with the given role."""

    model_config = examples(user_examples.ADMIN_CREATE)

    email: EmailStr = Field(max_length=320)
    password: str = Field(max_length=128)
    nickname: Nickname | None = Field(default=None, max_length=30)
    role: UserRole = UserRole.AUTHENTICATED
    is_professional: bool = False

    @field_validator("role")
    @classmethod
    def _verified_role(cls, role: UserRole) -> UserRole:
        if role is UserRole.ANONYMOUS:
            raise ValueError("an account created verified cannot be ANONYMOUS")
        return role

    def create_update_dict_superuser(self) -> dict[str, Any]:
        # Defaults count too: without `role` the account is AUTHENTICATED and verified, not
        # a fresh ANONYMOUS sign-up (fastapi-users dumps only the fields that were sent).
        return self.model_dump(exclude={"id"})


class RoleChange(SQLModel):
    model_config = examples(user_examples.ROLE_CHANGE)

    role: UserRole
    reason: str | None = Field(default=None, max_length=2000)


class ProfessionalStatusChange(SQLModel):
    model_config = examples(user_examples.PROFESSIONAL_CHANGE)

    is_professional: bool
    reason: str | None = Field(default=None, max_length=2000)


class UserSort(StrEnum):
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    EMAIL = "email"
    NICKNAME = "nickname"
