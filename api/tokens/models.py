"""Personal API tokens: long-lived bearer tokens of a user, limited to scopes.

This package sits below api.users (whose authentication reads these tables), so it names the
user table by string and imports nothing from api.users.
"""

import hashlib
import secrets
import string
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import sqlalchemy as sa
from pydantic import AfterValidator, AwareDatetime, StringConstraints
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from api import clock
from api.examples import examples
from api.pagination import Page
from api.tokens import examples as token_examples

TIMESTAMP = sa.DateTime(timezone=True)
TOKEN_PREFIX = "em_pat_"
TOKEN_RANDOM_LENGTH = 43
SHOWN_PREFIX_LENGTH = 12
MAX_LIFETIME = timedelta(days=365)
BASE62 = string.digits + string.ascii_letters


class Scope(StrEnum):
    EVENTS_READ = "events:read"
    EVENTS_WRITE = "events:write"
    REGISTRATIONS_READ = "registrations:read"
    REGISTRATIONS_WRITE = "registrations:write"
    USERS_READ = "users:read"
    NOTIFICATIONS_READ = "notifications:read"
    NOTIFICATIONS_WRITE = "notifications:write"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    ADMIN_READ = "admin:read"


def is_api_token(token: str) -> bool:
    """Whether a bearer token is an API token (else it is taken for a login token)."""
    return token.startswith(TOKEN_PREFIX)


def new_token() -> str:
    """`em_pat_` + 43 random base62 characters (about 256 bits)."""
    return TOKEN_PREFIX + "".join(secrets.choice(BASE62) for _ in range(TOKEN_RANDOM_LENGTH))


def hash_api_token(token: str) -> str:
    """What is stored of an API token: its SHA-256. The token is random and long, so a fast
    hash is enough (nothing to guess), and the lookup stays one index probe."""
    return hashlib.sha256(token.encode()).hexdigest()


def default_expiry() -> datetime:
    return clock.now() + MAX_LIFETIME


def _unique_scopes(scopes: list[Scope]) -> list[Scope]:
    if len(set(scopes)) != len(scopes):
        raise ValueError("scopes must not repeat")
    return scopes


def _within_lifetime(value: datetime) -> datetime:
    now = clock.now()
    if value <= now:
        raise ValueError("must be in the future")
    if value > now + MAX_LIFETIME:
        raise ValueError("must be at most 365 days ahead")
    return value


TokenName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Scopes = Annotated[list[Scope], AfterValidator(_unique_scopes)]
Expiry = Annotated[AwareDatetime, AfterValidator(_within_lifetime)]


class ApiTokenBase(SQLModel):
    name: TokenName = Field(max_length=100)
    scopes: Scopes = Field(min_length=1, sa_type=ARRAY(sa.String(30)))
    expires_at: datetime = Field(sa_type=TIMESTAMP)


class ApiToken(ApiTokenBase, table=True):
    __tablename__ = "api_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    token_hash: str = Field(max_length=64, unique=True)  # hash_api_token(the token)
    token_prefix: str = Field(max_length=SHOWN_PREFIX_LENGTH)
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)
    last_used_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)


class ApiTokenCreate(ApiTokenBase):
    """POST /users/me/api-tokens. `expires_at` defaults to 365 days from now."""

    model_config = examples(token_examples.TOKEN_CREATE)

    expires_at: Expiry = Field(
        default_factory=default_expiry,
        description="In the future and at most 365 days ahead; default 365 days from now",
    )


class ApiTokenPublic(ApiTokenBase):
    """An API token as listed: never the token itself."""

    model_config = examples(token_examples.TOKEN_PUBLIC, list_path="/api/v1/users/me/api-tokens")

    id: uuid.UUID
    token_prefix: str
    created_at: datetime
    last_used_at: datetime | None


class ApiTokenPage(Page[ApiTokenPublic]):
    """A page of the caller's API tokens."""


class ApiTokenCreated(ApiTokenPublic):
    """The one answer that shows the token: keep it, it is not shown again."""

    model_config = examples(token_examples.TOKEN_CREATED)

    token: str
