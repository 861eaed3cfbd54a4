"""registration check-in codes

Every registration that is CONFIRMED gets a check-in code, the ones confirmed before this
revision too; a unique index keeps codes apart, and a CHECK keeps them off registrations that are
not CONFIRMED.

Revision ID: 8a01dfb3cfc9
Revises: e9edd64bf8df
Create Date: 2026-12-04 22:27:46.856177
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "8a01dfb3cfc9"
down_revision: str | None = "e9edd64bf8df"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As api.registrations.checkin (a revision keeps its own copy: the application may change later).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BATCH = 1000


def _code() -> str:
    bits = secrets.randbits(50)
    return "".join(ALPHABET[(bits >> (5 * i)) & 0b11111] for i in reversed(range(10)))


def _backfill() -> None:
    """A code for each CONFIRMED registration, distinct from every other (checked here, as the
    unique index would refuse a repeat)."""
    connection = op.get_bind()
    ids = connection.execute(
        sa.text("SELECT id FROM registration WHERE status = 'CONFIRMED' ORDER BY id")
    ).scalars()
    used: set[str] = set()
    rows = []
    for registration_id in ids:
        code = _code()
        while code in used:
            code = _code()
        used.add(code)
        rows.append({"id": registration_id, "code": code})
    update = sa.text("UPDATE registration SET checkin_code = :code WHERE id = :id")
    for start in range(0, len(rows), BATCH):
        connection.execute(update, rows[start : start + BATCH])


def upgrade() -> None:
    op.add_column(
        "registration",
        sa.Column("checkin_code", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    )
    _backfill()
    op.create_index("uq_registration_checkin_code", "registration", ["checkin_code"], unique=True)
    op.create_check_constraint(
        "checkin_code_only_confirmed",
        "registration",
        "checkin_code IS NULL OR status = 'CONFIRMED'",
    )


def downgrade() -> None:
    op.drop_constraint("checkin_code_only_confirmed", "registration", type_="check")
    op.drop_index("uq_registration_checkin_code", table_name="registration")
    op.drop_column("registration", "checkin_code")
