"""What the networking directory joins into registrations (API-attendees.md, Networking
directory and connections).

The directory's members are CONFIRMED registrants who opted in: a registration leaving CONFIRMED
takes its holder out of the event's directory at once, in the transaction that changes its
status, and GET /events/{id}/registrations/me says whether the caller is in it. Networking builds
on registrations, so registrations do not import it: api.networking.service joins these rules
when it is loaded (as api.registrations.service joins the event workflow's rules).
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

# (session, event ids, user id or None for every registrant of those events): called after the
# registrations' status change is flushed.
LeftConfirmed = Callable[[AsyncSession, Sequence[uuid.UUID], uuid.UUID | None], Awaitable[None]]
# (event id, user id: values or SQL expressions) -> a SQL condition: the user is in the event's
# directory.
InDirectory = Callable[[Any, Any], ColumnElement[bool]]


async def _left_not_joined(*_: Any) -> None:
    raise RuntimeError("api.networking.service is not loaded")


def _in_not_joined(*_: Any) -> ColumnElement[bool]:
    raise RuntimeError("api.networking.service is not loaded")


_left_confirmed: LeftConfirmed = _left_not_joined
_in_directory: InDirectory = _in_not_joined


def join_directory_rules(*, left_confirmed: LeftConfirmed, in_directory: InDirectory) -> None:
    """`left_confirmed` takes those who no longer hold a CONFIRMED registration out of the
    event's directory (and withdraws their pending requests there); `in_directory` is the SQL
    test of membership."""
    global _left_confirmed, _in_directory
    _left_confirmed, _in_directory = left_confirmed, in_directory


async def left_confirmed(
    session: AsyncSession, event_ids: Sequence[uuid.UUID], user_id: uuid.UUID | None
) -> None:
    """CONFIRMED registrations of `user_id` (None: every one) at these events have just ended."""
    await _left_confirmed(session, event_ids, user_id)


def in_directory(event_id: Any, user_id: Any) -> ColumnElement[bool]:
    return _in_directory(event_id, user_id)
