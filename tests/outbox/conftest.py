"""The committed-data fixtures of the Idempotency-Key tests serve the outbox tests that need
real commits (rollbacks at commit, replays, parallel registrations, the admin bootstrap)."""

from tests.idempotency.conftest import _own_engine, http, real_app, world

__all__ = ["_own_engine", "http", "real_app", "world"]
