"""The networking model family: an event's directory of attendees who opted in, and the
connections (contact requests) made between them."""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api import clock
from api.events.models import TIMESTAMP
from api.examples import EVENT_ID, examples
from api.networking import examples as networking_examples
from api.pagination import Page
from api.users.models import UserPublic


class DirectoryMember(SQLModel, table=True):
    """A CONFIRMED registrant who opted into the event's directory (API-attendees.md). The row
    goes when the registration leaves CONFIRMED (api.registrations.hooks) or on opting out."""

    __tablename__ = "directory_member"
    __table_args__ = (
        # A user's memberships: the export, and the cascade of an account's deletion.
        sa.Index("ix_directory_member_user_id", "user_id"),
    )

    # The primary key is the unique pair, event first: the directory of one event.
    event_id: uuid.UUID = Field(foreign_key="event.id", ondelete="CASCADE", primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE", primary_key=True)
    joined_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)


class ConnectionStatus(StrEnum):
    """PENDING: requested, not yet answered; ACCEPTED: the two share their emails."""

    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"


class ConnectionDirection(StrEnum):
    """Seen from the caller: `outgoing` they asked, `incoming` they were asked."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"


class Connection(SQLModel, table=True):
    """A request between two members of an event's directory, and once accepted a contact of
    both. A pair of users has one request or connection at most, whichever event it was made
    at: the database refuses a second (racing requests make one)."""

    __table_args__ = (
        # A pair has one request or connection at most, either way round, at any event; the
        # lookup of a pair's connection (api.networking.connections) reads it too.
        sa.Index(
            "uq_connection_pair",
            sa.text("least(requester_id, addressee_id)"),
            sa.text("greatest(requester_id, addressee_id)"),
            unique=True,
        ),
        # The user's connections, either way, by status (GET /users/me/connections, the vCard).
        sa.Index("ix_connection_requester_status", "requester_id", "status"),
        sa.Index("ix_connection_addressee_status", "addressee_id", "status"),
        # An event's connections: its pending requests, withdrawn when its directory empties
        # (a cancellation), and the cascade of its deletion.
        sa.Index("ix_connection_event_id", "event_id"),
        sa.CheckConstraint("requester_id <> addressee_id", name="not_self"),
        sa.CheckConstraint(
            "(status = 'ACCEPTED') = (accepted_at IS NOT NULL)", name="accepted_at_iff_accepted"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    event_id: uuid.UUID = Field(foreign_key="event.id", ondelete="CASCADE")
    requester_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE")
    addressee_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE")
    status: ConnectionStatus = Field(
        default=ConnectionStatus.PENDING,
        sa_type=sa.Enum(ConnectionStatus, name="connection_status"),
    )
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)
    accepted_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)


# --- schemas ----------------------------------------------------------------------------------


class DirectoryEntry(SQLModel):
    """A row of an event's directory."""

    model_config = examples(
        networking_examples.DIRECTORY_ENTRY, list_path=f"/api/v1/events/{EVENT_ID}/directory"
    )

    user: UserPublic
    joined_at: datetime


class DirectoryPage(Page[DirectoryEntry]):
    """A page of an event's directory."""


class DirectoryMembership(SQLModel):
    """PUT /events/{id}/directory/me: the caller's place in the event's directory."""

    model_config = examples(networking_examples.DIRECTORY_MEMBERSHIP)

    event_id: uuid.UUID
    joined_at: datetime
    user: UserPublic


class ConnectionCreate(SQLModel):
    """POST /events/{id}/connections: the member to ask."""

    model_config = examples(networking_examples.CONNECTION_CREATE)

    user_id: uuid.UUID


class ConnectionUser(UserPublic):
    """The other party of a connection: the public profile, and the email once ACCEPTED."""

    model_config = examples(networking_examples.CONNECTION_USER)

    email: str | None = Field(description="Shared once the connection is ACCEPTED; null before")


class ConnectionPublic(SQLModel):
    """A connection as either party sees it."""

    model_config = examples(
        networking_examples.CONNECTION,
        networking_examples.PENDING_CONNECTION,
        list_path="/api/v1/users/me/connections",
    )

    id: uuid.UUID
    event_id: uuid.UUID
    event_title: str
    status: ConnectionStatus
    direction: ConnectionDirection
    created_at: datetime
    accepted_at: datetime | None
    user: ConnectionUser


class ConnectionPage(Page[ConnectionPublic]):
    """A page of the caller's connections."""


class ExportedDirectoryMembership(SQLModel):
    """An entry of the user's directory memberships in the personal data export."""

    model_config = examples(networking_examples.EXPORTED_MEMBERSHIP)

    event_id: uuid.UUID
    event_title: str
    joined_at: datetime
