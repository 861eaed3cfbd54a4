"""One event's registrations, simulated in arrival order under the service's rules."""

import random
import uuid
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from api.registrations.models import RegistrationStatus


def registration_line(
    rng: random.Random,
    *,
    event_id: uuid.UUID,
    capacity: int | None,
    applicants: list[uuid.UUID],
    opened: datetime,
    closed: datetime,
    leavers: float,
) -> list[dict[str, Any]]:
    """Registrations for one event, simulated in arrival order under the service's rules.

    Everyone arrives between `opened` and `closed`; afterwards some leave, and each seat they
    free goes to the head of the waitlist, as DELETE /registrations/me does.
    """
    span = (closed - opened).total_seconds()
    arrivals = sorted(opened + timedelta(seconds=rng.uniform(0, span)) for _ in applicants)
    rows: list[dict[str, Any]] = []
    waitlist: deque[dict[str, Any]] = deque()
    confirmed = 0
    for user_id, at in zip(applicants, arrivals, strict=True):
        seat = capacity is None or confirmed < capacity
        row = {
            "id": uuid.uuid4(),
            "event_id": event_id,
            "user_id": user_id,
            "status": RegistrationStatus.CONFIRMED if seat else RegistrationStatus.WAITLISTED,
            "created_at": at,
            "updated_at": at,
            "promoted_at": None,
            "checked_in_at": None,
            "cancelled_at": None,
            "confirmed_at": at if seat else None,
        }
        rows.append(row)
        if seat:
            confirmed += 1
        else:
            waitlist.append(row)
    at = arrivals[-1] if arrivals else opened
    for row in [r for r in rows if rng.random() < leavers]:
        at += (closed - at) * rng.uniform(0.05, 0.3)
        was = row["status"]
        row.update(status=RegistrationStatus.CANCELLED, cancelled_at=at, updated_at=at)
        if was is RegistrationStatus.WAITLISTED:
            waitlist.remove(row)
        elif waitlist:
            head = waitlist.popleft()
            head.update(
                status=RegistrationStatus.CONFIRMED, promoted_at=at, confirmed_at=at, updated_at=at
            )
    return rows
