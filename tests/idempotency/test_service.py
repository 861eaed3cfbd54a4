"""The key statements and rules: the fingerprint, which routes honour the key, the cleanup job,
and the OpenAPI document of the header and its answers."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api import clock
from api import worker as worker_module
from api.idempotency.middleware import honours_idempotency_key
from api.idempotency.models import IdempotencyKey
from api.idempotency.service import fingerprint_of
from api.main import create_app
from tests.idempotency.conftest import World

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class TestFingerprint:
    def test_each_part_counts(self) -> None:
        base = fingerprint_of("POST", "/api/v1/events", b"a=1", b"{}")
        others = {
            fingerprint_of("PUT", "/api/v1/events", b"a=1", b"{}"),
            fingerprint_of("POST", "/api/v1/events/", b"a=1", b"{}"),
            fingerprint_of("POST", "/api/v1/events", b"a=2", b"{}"),
            fingerprint_of("POST", "/api/v1/events", b"a=1", b"{ }"),
            # The same bytes split differently between the parts.
            fingerprint_of("POST", "/api/v1/events", b"", b"a=1{}"),
        }
        assert base == fingerprint_of("POST", "/api/v1/events", b"a=1", b"{}")
        assert len(base) == 64
        assert base not in others
        assert len(others) == 5


class TestHonouredRoutes:
    @pytest.mark.parametrize(
        "path",
        [
            "/api/v1/events",
            "/api/v1/events/{event_id}/registrations",
            "/api/v1/notifications/read-all",
            "/api/v1/users",
            "/api/v1/webhooks/{webhook_id}/test",
            "/api/v1/users/me/api-tokens/{token_id}/other",
        ],
    )
    def test_honoured(self, path: str) -> None:
        assert honours_idempotency_key("POST", path)

    @pytest.mark.parametrize(
        "path",
        [
            "/api/v1/auth/register",
            "/api/v1/auth/login",
            "/api/v1/users/me/api-tokens",
            "/api/v1/users/me/api-tokens/",
            "/api/v1/webhooks",
            "/api/v1/webhooks/",
            "/api/v1/webhooks/{webhook_id}/rotate-secret",
            "/api/v1/webhooks/0b9e0c3a-5a1e-4d5e-9b7e-3f1c2d4e5f60/rotate-secret",
            "/api/v1/users/me/calendar-feed/rotate",
            "/verify-email",
            "/cant-come",
            "/health",
        ],
    )
    def test_ignored(self, path: str) -> None:
        assert not honours_idempotency_key("POST", path)

    @pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
    def test_only_post(self, method: str) -> None:
        assert not honours_idempotency_key(method, "/api/v1/events")


class TestCleanupJob:
    async def test_deletes_expired_keeps_live(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        user, _ = await world.user()
        other, _ = await world.user()

        def key(name: str, expires_at: datetime, owner: Any = user) -> IdempotencyKey:
            return IdempotencyKey(
                user_id=owner.id,
                key=name,
                fingerprint="0" * 64,
                response_status=201,
                response_headers=[],
                response_body=b"{}",
                created_at=expires_at - timedelta(hours=24),
                expires_at=expires_at,
                locked_until=expires_at - timedelta(hours=24),
            )

        for row in (
            key("expired", NOW - timedelta(seconds=1)),
            key("expires-now", NOW),
            key("live", NOW + timedelta(seconds=1)),
            key("in-flight-expired", NOW - timedelta(hours=1), owner=other),
            key("other-live", NOW + timedelta(hours=23), owner=other),
        ):
            await world.add_key(row)
        monkeypatch.setattr(clock, "now", lambda: NOW)
        await worker_module.cleanup_idempotency_keys(None)  # type: ignore[arg-type]
        assert [row.key for row in await world.keys(user)] == ["live"]
        assert [row.key for row in await world.keys(other)] == ["other-live"]

    def test_scheduled_hourly(self) -> None:
        assert (
            "enqueue_idempotency_key_cleanup",
            "23 * * * *",
            worker_module.CLEANUP_IDEMPOTENCY_KEYS,
        ) in worker_module.SCHEDULES


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(run_worker=False).openapi()


class TestOpenAPI:
    def test_header_and_answers_where_honoured(self, document: dict[str, Any]) -> None:
        operation = document["paths"]["/api/v1/events/{event_id}/registrations"]["post"]
        [header] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert header == {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": header["description"],
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
        }
        conflict = operation["responses"]["409"]
        assert (
            conflict["description"] == "ALREADY_REGISTERED, EVENT_NOT_OPEN, IDEMPOTENCY_KEY_IN_USE"
        )
        assert conflict["headers"]["Retry-After"]["schema"] == {"type": "integer"}
        assert set(conflict["content"]["application/json"]["examples"]) == {
            "ALREADY_REGISTERED",
            "EVENT_NOT_OPEN",
            "IDEMPOTENCY_KEY_IN_USE",
        }
        invalid = operation["responses"]["422"]
        assert set(invalid["content"]["application/json"]["examples"]) == {
            "validation_error",
            "IDEMPOTENCY_KEY_REUSED",
            "IDEMPOTENCY_KEY_INVALID",
        }
        assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]

    def test_body_errors_and_key_errors_share_422(self, document: dict[str, Any]) -> None:
        operation = document["paths"]["/api/v1/events"]["post"]
        schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
        assert schema == {
            "anyOf": [
                {"$ref": "#/components/schemas/HTTPValidationError"},
                {"$ref": "#/components/schemas/ErrorBody"},
            ]
        }

    def test_every_honoured_post_documents_it(self, document: dict[str, Any]) -> None:
        honoured = [
            path
            for path, item in document["paths"].items()
            if "post" in item and honours_idempotency_key("POST", path)
        ]
        assert len(honoured) > 10
        for path in honoured:
            operation = document["paths"][path]["post"]
            names = [p["name"] for p in operation.get("parameters", [])]
            assert names.count("Idempotency-Key") == 1, path
            assert {"409", "422"} <= operation["responses"].keys(), path

    def test_not_where_ignored(self, document: dict[str, Any]) -> None:
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if method == "post" and honours_idempotency_key("POST", path):
                    continue
                names = [p["name"] for p in operation.get("parameters", [])]
                assert "Idempotency-Key" not in names, (method, path)
