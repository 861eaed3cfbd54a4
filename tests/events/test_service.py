"""api.events.service rules HTTP cannot reach alone: REL-4 for the event workflow, and the
database constraints that make an overbooked event or a double registration impossible."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

import api.clock
from api.audit.models import AuditAction, AuditLog
from api.events import service as event_service
from api.events.models import Event, EventStatus
from api.registrations import service as registration_service
from api.registrations.models import Registration, RegistrationStatus
from api.users.models import User
from tests.factories import create_event, create_user, queued_mail, register


class Boom(Exception):
    """A failure after the service call, in the same transaction."""


async def db_event(session: AsyncSession, event_id: uuid.UUID) -> Event:
    statement = (
        select(Event).where(col(Event.id) == event_id).execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).one()


async def audit_actions(session: AsyncSession, target_id: uuid.UUID) -> list[AuditAction]:
    rows = await session.scalars(
        select(col(AuditLog.action)).where(col(AuditLog.target_id) == target_id)
    )
    return list(rows.all())


async def registration_statuses(
    session: AsyncSession, event_id: uuid.UUID
) -> list[RegistrationStatus]:
    rows = await session.scalars(
        select(col(Registration.status))
        .where(col(Registration.event_id) == event_id)
        .order_by(col(Registration.seq))
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


Action = Callable[[AsyncSession, User, Event], Awaitable[Any]]


async def approve(session: AsyncSession, actor: User, event: Event) -> None:
    await event_service.approve_event(session, reviewer=actor, event=event)


async def reject(session: AsyncSession, actor: User, event: Event) -> None:
    await event_service.reject_event(session, reviewer=actor, event=event, feedback="Too vague")


async def cancel(session: AsyncSession, actor: User, event: Event) -> None:
    await event_service.cancel_event(session, actor=actor, event=event, reason="Venue closed")


# action, the status the event starts in, the one it ends in, the audit action, mails queued
# (the creator for a review; the two registrants for a cancellation).
ACTIONS: list[tuple[Action, EventStatus, EventStatus, AuditAction, int]] = [
    (approve, EventStatus.PENDING, EventStatus.PUBLISHED, AuditAction.EVENT_APPROVED, 1),
    (reject, EventStatus.PENDING, EventStatus.REJECTED, AuditAction.EVENT_REJECTED, 1),
    (cancel, EventStatus.PUBLISHED, EventStatus.CANCELLED, AuditAction.EVENT_CANCELLED, 2),
]
IDS = [action.__name__ for action, *_ in ACTIONS]


@pytest.mark.security("REL-4")
class TestAuditAtomicity:
    """REL-4: an event's status change, its audit entry and its notices commit together."""

    async def _event(self, session: AsyncSession, manager: User, status: EventStatus) -> Event:
        event = await create_event(session, owner=manager, status=status, capacity=1)
        if status is EventStatus.PUBLISHED:
            await register(session, event, await create_user(session))
            await register(session, event, await create_user(session))
        return event

    @pytest.mark.parametrize(("action", "start", "end", "audit_action", "mails"), ACTIONS, ids=IDS)
    async def test_committed_change_has_its_entry(
        self, session, manager, admin, action, start, end, audit_action, mails
    ):
        event = await self._event(session, manager, start)

        async with session.begin_nested():
            await action(session, admin, event)

        assert (await db_event(session, event.id)).status is end
        assert await audit_actions(session, event.id) == [audit_action]
        assert len(await queued_mail(session)) == mails

    @pytest.mark.parametrize(("action", "start", "end", "audit_action", "mails"), ACTIONS, ids=IDS)
    async def test_failure_after_the_change_undoes_change_entry_and_notices(
        self, session, manager, admin, action, start, end, audit_action, mails
    ):
        event = await self._event(session, manager, start)
        event_id = event.id
        registrations = await registration_statuses(session, event_id)

        async def change_then_fail() -> None:
            async with session.begin_nested():
                await action(session, admin, event)
                assert (await db_event(session, event_id)).status is end
                assert await audit_actions(session, event_id) == [audit_action]
                assert len(await queued_mail(session)) == mails
                raise Boom

        with pytest.raises(Boom):
            await change_then_fail()

        saved = await db_event(session, event_id)
        assert saved.status is start
        assert await audit_actions(session, event_id) == []
        assert await queued_mail(session) == []
        assert await registration_statuses(session, event_id) == registrations

    async def test_refused_audit_row_undoes_the_rejection(self, session, manager, admin):
        event = await self._event(session, manager, EventStatus.PENDING)
        event_id = event.id

        with pytest.raises(DBAPIError):
            async with session.begin_nested():
                # The audit reason holds 2000 characters: the database refuses the entry.
                await event_service.reject_event(
                    session, reviewer=admin, event=event, feedback="f" * 2001
                )

        saved = await db_event(session, event_id)
        assert (saved.status, saved.reviewed_by, saved.review_feedback) == (
            EventStatus.PENDING,
            None,
            None,
        )
        assert await audit_actions(session, event_id) == []
        assert await queued_mail(session) == []


class TestConstraints:
    """The database refuses the bad states, whatever code writes the rows."""

    async def test_registered_count_above_capacity_is_refused(self, session, manager):
        event = await create_event(session, owner=manager, capacity=2)

        with pytest.raises(IntegrityError) as raised:
            async with session.begin_nested():
                await session.execute(
                    update(Event).where(col(Event.id) == event.id).values(registered_count=3)
                )

        assert "ck_event_counts_within_capacity" in str(raised.value)
        assert (await db_event(session, event.id)).registered_count == 0

    async def test_negative_counts_are_refused(self, session, manager):
        event = await create_event(session, owner=manager)

        with pytest.raises(IntegrityError) as raised:
            async with session.begin_nested():
                await session.execute(
                    update(Event).where(col(Event.id) == event.id).values(waitlist_count=-1)
                )

        assert "ck_event_counts_within_capacity" in str(raised.value)

    async def test_second_live_registration_is_refused(self, session, manager, user):
        event = await create_event(session, owner=manager)
        await register(session, event, user)

        with pytest.raises(IntegrityError) as raised:
            async with session.begin_nested():
                session.add(
                    Registration(
                        event_id=event.id, user_id=user.id, status=RegistrationStatus.WAITLISTED
                    )
                )

        assert "uq_registration_event_user_active" in str(raised.value)
        assert await registration_statuses(session, event.id) == [RegistrationStatus.CONFIRMED]

    async def test_a_cancelled_registration_does_not_block_a_new_one(self, session, manager, user):
        event = await create_event(session, owner=manager)
        await register(session, event, user, RegistrationStatus.CANCELLED)

        async with session.begin_nested():
            session.add(
                Registration(
                    event_id=event.id, user_id=user.id, status=RegistrationStatus.CONFIRMED
                )
            )

        assert await registration_statuses(session, event.id) == [
            RegistrationStatus.CANCELLED,
            RegistrationStatus.CONFIRMED,
        ]


class TestPromotion:
    async def test_no_promotion_once_the_event_has_begun(
        self, session, manager, monkeypatch: pytest.MonkeyPatch
    ):
        event = await create_event(session, owner=manager, capacity=1)
        first, second = await create_user(session), await create_user(session)
        await register(session, event, first)
        await register(session, event, second)
        started = event.starts_at + timedelta(minutes=5)
        monkeypatch.setattr(api.clock, "now", lambda: started)

        await registration_service.unregister_from_event(session, user=first, event=event)

        saved = await db_event(session, event.id)
        assert (saved.registered_count, saved.waitlist_count) == (0, 1)
        assert await registration_statuses(session, event.id) == [
            RegistrationStatus.CANCELLED,
            RegistrationStatus.WAITLISTED,
        ]
        assert await queued_mail(session) == []

    async def test_a_freed_seat_goes_to_the_head_of_the_line(self, session, manager):
        event = await create_event(session, owner=manager, capacity=1)
        users = [await create_user(session) for _ in range(3)]
        for user in users:
            await register(session, event, user)

        await registration_service.unregister_from_event(session, user=users[0], event=event)

        saved = await db_event(session, event.id)
        assert (saved.registered_count, saved.waitlist_count) == (1, 1)
        assert await registration_statuses(session, event.id) == [
            RegistrationStatus.CANCELLED,
            RegistrationStatus.CONFIRMED,
            RegistrationStatus.WAITLISTED,
        ]
        assert [(m.to, m.subject) for m in await queued_mail(session)] == [
            (users[1].email, f"You have a seat: {event.title}")
        ]
