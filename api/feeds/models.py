"""The personal calendar feed: one secret URL per user that calendar applications subscribe to.

The feed token in the URL authenticates it, so only its SHA-256 is stored (the lookup is one
index probe). GET /users/me/calendar-feed shows the URL again on every call, so the token is not
random but derived: HMAC-SHA256 of a random stored nonce under the server's signing key. A copy
of the database alone therefore holds no working feed URL; rotating the feed draws a new nonce.
"""

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api import clock
from api.config import settings
from api.examples import examples
from api.feeds import examples as feed_examples

TIMESTAMP = sa.DateTime(timezone=True)
TOKEN_LENGTH = 32  # characters of [A-Za-z0-9_-]: 192 bits
NONCE_BYTES = 32


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def feed_token(nonce: str) -> str:
    """The feed token a nonce stands for (under the current signing key)."""
    digest = hmac.new(
        settings.signing_key.encode(), f"calendar-feed:{nonce}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).decode()[:TOKEN_LENGTH]


def hash_feed_token(token: str) -> str:
    """What is stored of a feed token: its SHA-256 (the token is random: a fast hash is enough)."""
    return hashlib.sha256(token.encode()).hexdigest()


class CalendarFeed(SQLModel, table=True):
    __tablename__ = "calendar_feed"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE", unique=True)
    nonce: str = Field(max_length=2 * NONCE_BYTES)  # feed_token(nonce) is the token
    token_hash: str = Field(max_length=64, unique=True)  # hash_feed_token(the token)
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)


class CalendarFeedPublic(SQLModel):
    """The caller's feed: subscribe to `url` in a calendar application. Keep it private: anyone
    holding it reads the feed."""

    model_config = examples(feed_examples.FEED)

    url: str = Field(description="{PUBLIC_BASE_URL}/api/v1/calendar/{feed_token}.ics")
    created_at: datetime = Field(description="when this URL was made (the last rotation)")
