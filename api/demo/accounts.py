"""The demo's accounts: the rows of fake users and managers, and the demo admin (made once).

Every account is verified and shares DEMO_PASSWORD; emails and nicknames carry the run's tag.
"""

import random
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from api.demo.texts import Pools, slug
from api.users.models import User, UserRole

DEMO_PASSWORD = "demo-password-123"
ADMIN_EMAIL = "admin@demo.example"
EMAIL_DOMAIN = "demo.example"
BATCH_SIZE = 5_000


async def insert_rows(
    session: AsyncSession, model: type[SQLModel], rows: Sequence[dict[str, Any]]
) -> None:
    # render_nulls: every row in one executemany, rather than one per pattern of NULL columns.
    statement = insert(model).execution_options(render_nulls=True)
    for start in range(0, len(rows), BATCH_SIZE):
        await session.execute(statement, rows[start : start + BATCH_SIZE])


def people_rows(
    rng: random.Random,
    pools: Pools,
    *,
    role: UserRole,
    count: int,
    first_number: int,
    run: str,
    hashed_password: str,
    now: datetime,
) -> list[dict[str, Any]]:
    rows = []
    for number in range(first_number, first_number + count):
        first, last = rng.choice(pools.first_names), rng.choice(pools.last_names)
        handle = f"{slug(first)}.{slug(last)}"
        suffix = f"{run}{number}"
        created_at = now - timedelta(days=rng.uniform(1, 365))
        professional = role is UserRole.MANAGER or rng.random() < 0.3
        bio = (
            f"{rng.choice(pools.jobs)} at {rng.choice(pools.companies)}."
            if professional
            else rng.choice(
                (
                    f"Student in {rng.choice(pools.cities)}.",
                    f"Aspiring {rng.choice(pools.jobs).lower()}.",
                    f"Career changer, formerly {rng.choice(pools.jobs).lower()}.",
                    None,
                )
            )
        )
        rows.append(
            {
                "id": uuid.uuid4(),
                "email": f"{handle}.{suffix}@{EMAIL_DOMAIN}",
                "hashed_password": hashed_password,
                "nickname": f"{slug(first)[:12]}_{suffix}",
                "first_name": first,
                "last_name": last,
                "bio": bio,
                "profile_picture_url": None,
                "linkedin_profile_url": (
                    f"https://www.linkedin.com/in/{slug(first)}-{slug(last)}-{suffix}"
                    if rng.random() < 0.5
                    else None
                ),
                "github_profile_url": (
                    f"https://github.com/{(slug(first) + slug(last))[:30]}{number}"
                    if rng.random() < 0.3
                    else None
                ),
                "role": role,
                "is_active": True,
                "is_superuser": False,
                "is_verified": True,
                "is_professional": professional,
                "professional_status_updated_at": created_at if professional else None,
                "last_login_at": (
                    created_at + (now - created_at) * rng.random() if rng.random() < 0.7 else None
                ),
                "failed_login_count": 0,
                "locked_until": None,
                "reset_mail_window_start": None,
                "reset_mail_count": 0,
                "created_at": created_at,
                "updated_at": created_at,
            }
        )
    return rows


async def demo_admin(
    session: AsyncSession, *, run: str, hashed_password: str, now: datetime
) -> tuple[uuid.UUID, bool]:
    """The demo admin's id, created unless an account with its email exists."""
    existing = await session.scalar(
        select(col(User.id)).where(func.lower(col(User.email)) == ADMIN_EMAIL)
    )
    if existing is not None:
        return existing, False
    admin_id = uuid.uuid4()
    row = {
        "id": admin_id,
        "email": ADMIN_EMAIL,
        "hashed_password": hashed_password,
        "nickname": f"demo_admin_{run}",
        "first_name": "Demo",
        "last_name": "Admin",
        "bio": "Runs this demo.",
        "role": UserRole.ADMIN,
        "is_active": True,
        "is_superuser": True,
        "is_verified": True,
        "is_professional": False,
        "failed_login_count": 0,
        "reset_mail_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    await insert_rows(session, User, [row])
    return admin_id, True
