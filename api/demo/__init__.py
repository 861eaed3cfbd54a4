"""`event-manager seed-demo`: realistic fake users, events and registrations for a demo
(api/demo/seed.py; the accounts in accounts.py, the words in texts.py, one event's
registrations in lines.py, the printed summary in summary.py)."""

from api.demo.accounts import ADMIN_EMAIL, DEMO_PASSWORD, EMAIL_DOMAIN
from api.demo.seed import (
    HORIZON_DAYS,
    SeedSummary,
    seed,
    seed_database,
)
from api.demo.summary import summary_table

__all__ = [
    "ADMIN_EMAIL",
    "DEMO_PASSWORD",
    "EMAIL_DOMAIN",
    "HORIZON_DAYS",
    "SeedSummary",
    "seed",
    "seed_database",
    "summary_table",
]
