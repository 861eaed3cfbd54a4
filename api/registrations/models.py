"""The registration model family: one SQLModel base for the table and its schemas."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api import clock
from api.events.models import TIMESTAMP, EventPublic
from api.examples import EVENT_ID, examples
from api.pagination import Page
from api.registrations import examples as registration_examples
from api.registrations.checkin import LENGTH as CHECKIN_CODE_LENGTH
from api.users.models import UserPublic


# In the database type's order, by which the attendee list sorts: seats (CONFIRMED, then OFFERED,
# which holds one), the line, then the ended ones.
class RegistrationStatus(StrEnum):
    """CONFIRMED (a seat), OFFERED (a seat offered, held until offer_expires_at) and WAITLISTED
    are live; CANCELLED and EXPIRED (an offer not accepted in time) have ended."""

    CONFIRMED = "CONFIRMED"
    OFFERED = "OFFERED"
    WAITLISTED = "WAITLISTED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


# The live registrations: at most one per user and event. CANCELLED and EXPIRED ones have ended.
ACTIVE_REGISTRATION = (
    RegistrationStatus.CONFIRMED,
    RegistrationStatus.OFFERED,
    RegistrationStatus.WAITLISTED,
)
# ACTIVE_REGISTRATION as SQL, for the partial unique index and the statements it must serve.
LIVE_STATUS_SQL = "status IN ('CONFIRMED', 'OFFERED', 'WAITLISTED')"
# An open offer, as SQL (literal, so that the partial index below serves the statements).
OPEN_OFFER_SQL = "status = 'OFFERED'"


class RegistrationBase(SQLModel):
    event_id: uuid.UUID = Field(foreign_key="event.id", ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE")
    status: RegistrationStatus = Field(
        sa_type=sa.Enum(RegistrationStatus, name="registration_status")
    )


class Registration(RegistrationBase, table=True):
    __table_args__ = (
        # One live registration per user and event: the database refuses a second.
        sa.Index(
            "uq_registration_event_user_active",
            "event_id",
            "user_id",
            unique=True,
            postgresql_where=sa.text(LIVE_STATUS_SQL),
        ),
        # The open offers by event and deadline: the settlement of lapsed ones (per event and
        # for all events). Partial: registrations without an open offer are not in it.
        sa.Index(
            "ix_registration_open_offer",
            "event_id",
            "offer_expires_at",
            postgresql_where=sa.text(OPEN_OFFER_SQL),
        ),
        # The attendee list, and the waitlist in order.
        sa.Index("ix_registration_event_status_seq", "event_id", "status", "seq"),
        sa.Index("ix_registration_user_created_at", "user_id", "created_at"),
        # Check-in codes are unique across events (NULLs allowed: only CONFIRMED ones have one).
        sa.Index("uq_registration_checkin_code", "checkin_code", unique=True),
        sa.CheckConstraint(
            "checkin_code IS NULL OR status = 'CONFIRMED'", name="checkin_code_only_confirmed"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Arrival order: taken under the event's row lock, so it is the exact order of the line.
    seq: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    )
    created_at: datetime = Field(default_factory=clock.current_time, sa_type=TIMESTAMP)
    updated_at: datetime = Field(
        default_factory=clock.current_time,
        sa_type=TIMESTAMP,
        sa_column_kwargs={"onupdate": clock.current_time},
    )
    promoted_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    checked_in_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    cancelled_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    # Set on becoming CONFIRMED, cleared on leaving it; shown to the registrant alone.
    checkin_code: str | None = Field(default=None, max_length=CHECKIN_CODE_LENGTH)
    # When it got a seat (created CONFIRMED or promoted); kept once cancelled, so that a
    # cancelled registration tells whether it had been CONFIRMED.
    confirmed_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)
    # Until when an offered seat is held (OFFER mode); kept once the offer has ended.
    offer_expires_at: datetime | None = Field(default=None, sa_type=TIMESTAMP)


class RegistrationPublic(RegistrationBase):
    model_config = examples(registration_examples.CHECKED_IN)

    id: uuid.UUID
    waitlist_position: int | None = Field(
        default=None, description="Place in line, 1 = next to be promoted; null unless WAITLISTED"
    )
    created_at: datetime
    promoted_at: datetime | None
    checked_in_at: datetime | None
    cancelled_at: datetime | None = Field(description="When it was CANCELLED or EXPIRED")
    offer_expires_at: datetime | None = Field(
        description="Until when an offered seat is held; kept once the offer has ended"
    )


class Attendee(RegistrationPublic):
    """A row of an event's attendee list (and a check-in answer): never the check-in code."""

    model_config = examples(
        registration_examples.ATTENDEE, list_path=f"/api/v1/events/{EVENT_ID}/registrations"
    )

    user: UserPublic


class AttendeePage(Page[Attendee]):
    """A page of an event's attendees."""


class RegistrationOwnerView(RegistrationPublic):
    """A registration as its registrant sees it (POST /events/{id}/registrations): with the
    check-in code, which no one else is shown."""

    model_config = examples(registration_examples.OWNER_VIEW, registration_examples.WAITLISTED)

    checkin_code: str | None = Field(
        description="What to show at the door (10 characters); null unless CONFIRMED"
    )


class OwnEventRegistration(RegistrationOwnerView):
    """GET /events/{id}/registrations/me: the caller's registration of the event, and whether
    they are in its networking directory."""

    model_config = examples(registration_examples.OWN_EVENT_REGISTRATION)

    in_directory: bool = Field(
        description="Whether the caller is in the event's networking directory (opted in while "
        "CONFIRMED; leaving CONFIRMED takes them out)"
    )


class OwnRegistration(RegistrationOwnerView):
    """A row of GET /users/me/registrations, and GET /users/me/registrations/{id}."""

    model_config = examples(
        registration_examples.OWN_REGISTRATION, list_path="/api/v1/users/me/registrations"
    )

    event: EventPublic

    @classmethod
    def of(cls, registration: Any, event: Any, position: int | None) -> Self:
        """From a row of the user's registrations: the registration, its event, its place."""
        return cls.model_validate(
            registration,
            update={"waitlist_position": position, "event": EventPublic.model_validate(event)},
        )


class OwnRegistrationPage(Page[OwnRegistration]):
    """A page of the caller's registrations."""


class CheckInByCode(SQLModel):
    """POST /events/{id}/check-in: a code as typed (case, spaces and hyphens do not matter)."""

    model_config = examples(registration_examples.CHECK_IN_BY_CODE)

    code: str = Field(min_length=1, max_length=64)
