"""Idempotency-Key through the app as served (in process, committed data): replays, reuse,
invalid keys, keys in flight, freed keys, lapsed leases, per-user scope and excluded routes."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware

from api import clock
from api.db import create_engine, get_engine
from api.events.models import Event
from api.idempotency.middleware import REASONS, IdempotencyMiddleware
from api.idempotency.models import IdempotencyKey
from api.idempotency.service import fingerprint_of
from api.main import MAX_BODY_BYTES, create_app
from api.notifications.models import Notification
from api.registrations.models import Registration
from api.users.models import UserRole
from tests.factories import event_body
from tests.idempotency.conftest import World, client_of, event_row_locked, wait_until

# Headers that belong to one response: the rest of a replay matches the first answer.
PER_RESPONSE = {"x-request-id", "date", "server", "content-length", "idempotent-replayed"}


def registrations(event_id: uuid.UUID) -> str:
    return f"/api/v1/events/{event_id}/registrations"


def keyed(headers: dict[str, str], key: str | bytes) -> dict[str, Any]:
    return {**headers, "Idempotency-Key": key}


def kept_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name not in PER_RESPONSE}


def error(code: str) -> dict[str, Any]:
    return {"detail": {"code": code, "reason": REASONS[code]}}


def assert_replay(replay: httpx.Response, first: httpx.Response) -> None:
    assert "idempotent-replayed" not in first.headers
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert kept_headers(replay) == kept_headers(first)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["content-length"] == str(len(first.content))
    assert replay.headers["x-request-id"] != first.headers["x-request-id"]


class TestReplay:
    async def test_registration_replayed_and_made_once(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        event = await world.event()
        user, headers = await world.user()
        first = await http.post(registrations(event.id), headers=keyed(headers, "reg-1"))
        replay = await http.post(registrations(event.id), headers=keyed(headers, "reg-1"))
        assert first.status_code == 201
        assert first.json()["status"] == "CONFIRMED"
        assert_replay(replay, first)
        assert await world.count(Registration, event_id=event.id) == 1
        assert await world.count(Notification, user_id=user.id) == 1

    async def test_event_creation_replayed_and_made_once(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        manager, headers = await world.user(UserRole.MANAGER)
        body = event_body()
        first = await http.post("/api/v1/events", json=body, headers=keyed(headers, "ev-1"))
        replay = await http.post("/api/v1/events", json=body, headers=keyed(headers, "ev-1"))
        assert first.status_code == 201
        assert first.headers["content-type"] == "application/json"
        assert_replay(replay, first)
        assert await world.count(Event, created_by=manager.id) == 1

    async def test_conflict_is_replayed_not_run_again(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        event = await world.event()
        _, headers = await world.user()
        assert (await http.post(registrations(event.id), headers=headers)).status_code == 201
        first = await http.post(registrations(event.id), headers=keyed(headers, "dup"))
        assert first.status_code == 409
        assert first.json() == {"detail": "ALREADY_REGISTERED"}
        unregistered = await http.delete(f"{registrations(event.id)}/me", headers=headers)
        assert unregistered.status_code == 204
        # Run again, this would now be a 201: the stored 409 comes back instead.
        replay = await http.post(registrations(event.id), headers=keyed(headers, "dup"))
        assert_replay(replay, first)
        assert await world.count(Registration, event_id=event.id) == 1

    async def test_body_error_is_replayed(self, http: httpx.AsyncClient, world: World) -> None:
        manager, headers = await world.user(UserRole.MANAGER)
        body = event_body(capacity=-1)
        first = await http.post("/api/v1/events", json=body, headers=keyed(headers, "bad"))
        replay = await http.post("/api/v1/events", json=body, headers=keyed(headers, "bad"))
        assert first.status_code == 422
        assert first.json()["detail"][0]["loc"] == ["body", "capacity"]
        assert_replay(replay, first)
        assert await world.count(Event, created_by=manager.id) == 0


class TestReuse:
    async def test_other_body_422_first_still_replayed(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        manager, headers = await world.user(UserRole.MANAGER)
        body = event_body()
        first = await http.post("/api/v1/events", json=body, headers=keyed(headers, "k"))
        other = await http.post(
            "/api/v1/events", json=event_body(title="Another"), headers=keyed(headers, "k")
        )
        replay = await http.post("/api/v1/events", json=body, headers=keyed(headers, "k"))
        assert first.status_code == 201
        assert other.status_code == 422
        assert other.json() == error("IDEMPOTENCY_KEY_REUSED")
        assert "idempotent-replayed" not in other.headers
        assert_replay(replay, first)
        assert await world.count(Event, created_by=manager.id) == 1

    async def test_other_path_422(self, http: httpx.AsyncClient, world: World) -> None:
        event, other_event = await world.event(), await world.event()
        _, headers = await world.user()
        first = await http.post(registrations(event.id), headers=keyed(headers, "k"))
        other = await http.post(registrations(other_event.id), headers=keyed(headers, "k"))
        assert first.status_code == 201
        assert other.status_code == 422
        assert other.json() == error("IDEMPOTENCY_KEY_REUSED")
        assert await world.count(Registration, event_id=other_event.id) == 0
        replay = await http.post(registrations(event.id), headers=keyed(headers, "k"))
        assert_replay(replay, first)

    async def test_other_query_422(self, http: httpx.AsyncClient, world: World) -> None:
        event = await world.event()
        _, headers = await world.user()
        first = await http.post(registrations(event.id), headers=keyed(headers, "k"))
        other = await http.post(
            registrations(event.id), params={"x": "1"}, headers=keyed(headers, "k")
        )
        assert first.status_code == 201
        assert other.status_code == 422
        assert other.json() == error("IDEMPOTENCY_KEY_REUSED")


class TestKeyFormat:
    @pytest.mark.parametrize(
        "key",
        [b"", b"k" * 256, b"two words", "caf\u00e9".encode(), b"tab\x01key", b"del\x7f"],
        ids=["empty", "256-characters", "space", "non-ascii", "control", "delete"],
    )
    async def test_invalid_key_422_nothing_runs(
        self, http: httpx.AsyncClient, world: World, key: bytes
    ) -> None:
        event = await world.event()
        user, headers = await world.user()
        response = await http.post(registrations(event.id), headers=keyed(headers, key))
        assert response.status_code == 422
        assert response.json() == error("IDEMPOTENCY_KEY_INVALID")
        assert await world.count(Registration, event_id=event.id) == 0
        assert await world.keys(user) == []

    async def test_key_sent_twice_422(self, http: httpx.AsyncClient, world: World) -> None:
        event = await world.event()
        _, headers = await world.user()
        response = await http.post(
            registrations(event.id),
            headers=[*headers.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
        )
        assert response.status_code == 422
        assert response.json() == error("IDEMPOTENCY_KEY_INVALID")

    async def test_255_printable_characters_work(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        event = await world.event()
        _, headers = await world.user()
        key = ("!~" + "".join(chr(c) for c in range(0x21, 0x7F)) * 3)[:255]
        assert len(key) == 255
        first = await http.post(registrations(event.id), headers=keyed(headers, key))
        replay = await http.post(registrations(event.id), headers=keyed(headers, key))
        assert first.status_code == 201
        assert_replay(replay, first)


class TestInFlight:
    async def test_duplicate_while_first_runs_409(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        event = await world.event()
        user, headers = await world.user()

        async def claimed() -> bool:
            return len(await world.keys(user)) == 1

        async with event_row_locked(world.engine, event.id):
            first = asyncio.create_task(
                http.post(registrations(event.id), headers=keyed(headers, "slow"))
            )
            await wait_until(claimed)
            duplicate = await http.post(registrations(event.id), headers=keyed(headers, "slow"))
            assert not first.done()
        assert duplicate.status_code == 409
        assert duplicate.json() == error("IDEMPOTENCY_KEY_IN_USE")
        assert duplicate.headers["retry-after"] == "1"
        answered = await first
        assert answered.status_code == 201
        replay = await http.post(registrations(event.id), headers=keyed(headers, "slow"))
        assert_replay(replay, answered)
        assert await world.count(Registration, event_id=event.id) == 1

    async def test_lapsed_lease_taken_over(self, http: httpx.AsyncClient, world: World) -> None:
        event = await world.event()
        user, headers = await world.user()
        now = clock.now()
        await world.add_key(
            IdempotencyKey(
                user_id=user.id,
                key="orphan",
                fingerprint=fingerprint_of("POST", registrations(event.id), b"", b""),
                created_at=now - timedelta(minutes=5),
                expires_at=now + timedelta(hours=1),
                locked_until=now - timedelta(seconds=1),
            )
        )
        response = await http.post(registrations(event.id), headers=keyed(headers, "orphan"))
        assert response.status_code == 201
        [row] = await world.keys(user)
        assert row.response_status == 201
        assert row.response_body == response.content
        assert await world.count(Registration, event_id=event.id) == 1

    async def test_live_lease_of_another_process_409(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        event = await world.event()
        user, headers = await world.user()
        now = clock.now()
        await world.add_key(
            IdempotencyKey(
                user_id=user.id,
                key="elsewhere",
                fingerprint=fingerprint_of("POST", registrations(event.id), b"", b""),
                created_at=now,
                expires_at=now + timedelta(hours=1),
                locked_until=now + timedelta(seconds=30),
            )
        )
        response = await http.post(registrations(event.id), headers=keyed(headers, "elsewhere"))
        assert response.status_code == 409
        assert response.json() == error("IDEMPOTENCY_KEY_IN_USE")
        assert await world.count(Registration, event_id=event.id) == 0

    async def test_expired_key_runs_anew(self, http: httpx.AsyncClient, world: World) -> None:
        event = await world.event()
        user, headers = await world.user()
        now = clock.now()
        await world.add_key(
            IdempotencyKey(
                user_id=user.id,
                key="old",
                fingerprint="0" * 64,
                response_status=418,
                response_headers=[],
                response_body=b"",
                created_at=now - timedelta(days=2),
                expires_at=now - timedelta(days=1),
                locked_until=now - timedelta(days=2),
            )
        )
        response = await http.post(registrations(event.id), headers=keyed(headers, "old"))
        assert response.status_code == 201
        assert "idempotent-replayed" not in response.headers
        [row] = await world.keys(user)
        assert row.response_status == 201
        assert row.expires_at > now


@dataclass
class Probe:
    """Test-only routes: one held at a gate, ones that fail; `runs` counts their calls."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    runs: int = 0


@pytest.fixture
def probe(real_app: FastAPI) -> Probe:
    state = Probe()

    @real_app.post("/api/v1/testing/gated", status_code=201)
    async def gated() -> dict[str, int]:
        state.runs += 1
        await state.gate.wait()
        return {"run": state.runs}

    @real_app.post("/api/v1/testing/outage")
    async def outage() -> None:
        state.runs += 1
        raise ConnectionRefusedError("the database went away")

    @real_app.post("/api/v1/testing/status/{code}")
    async def answer_with(code: int) -> Response:
        state.runs += 1
        return Response(status_code=code, content=b'{"detail": "X"}')

    return state


class TestFreedKeys:
    async def test_database_failure_frees_the_key(
        self, http: httpx.AsyncClient, world: World, probe: Probe
    ) -> None:
        user, headers = await world.user()
        for run in (1, 2):
            response = await http.post("/api/v1/testing/outage", headers=keyed(headers, "k"))
            assert response.status_code == 503
            assert response.json() == {
                "detail": "SERVICE_UNAVAILABLE",
                "request_id": response.headers["x-request-id"],
            }
            assert probe.runs == run
            assert await world.keys(user) == []

    @pytest.mark.parametrize("code", [401, 429, 500, 502, 503])
    async def test_answer_not_kept_runs_again(
        self, http: httpx.AsyncClient, world: World, probe: Probe, code: int
    ) -> None:
        user, headers = await world.user()
        for run in (1, 2):
            response = await http.post(
                f"/api/v1/testing/status/{code}", headers=keyed(headers, "k")
            )
            assert response.status_code == code
            assert "idempotent-replayed" not in response.headers
            assert probe.runs == run
        assert await world.keys(user) == []

    async def test_kept_answer_of_a_test_route_is_replayed(
        self, http: httpx.AsyncClient, world: World, probe: Probe
    ) -> None:
        _, headers = await world.user()
        first = await http.post("/api/v1/testing/status/404", headers=keyed(headers, "k"))
        replay = await http.post("/api/v1/testing/status/404", headers=keyed(headers, "k"))
        assert first.status_code == 404
        assert_replay(replay, first)
        assert probe.runs == 1

    async def test_cancelled_request_frees_the_key(
        self, http: httpx.AsyncClient, world: World, probe: Probe
    ) -> None:
        user, headers = await world.user()
        dying = asyncio.create_task(http.post("/api/v1/testing/gated", headers=keyed(headers, "k")))

        async def running() -> bool:
            return probe.runs == 1

        await wait_until(running)
        assert len(await world.keys(user)) == 1
        dying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dying
        assert await world.keys(user) == []
        probe.gate.set()
        again = await http.post("/api/v1/testing/gated", headers=keyed(headers, "k"))
        assert again.status_code == 201
        assert again.json() == {"run": 2}
        assert "idempotent-replayed" not in again.headers


class TestScope:
    async def test_users_have_their_own_keys(self, http: httpx.AsyncClient, world: World) -> None:
        event = await world.event()
        first_user, first_headers = await world.user()
        second_user, second_headers = await world.user()
        first = await http.post(registrations(event.id), headers=keyed(first_headers, "same"))
        second = await http.post(registrations(event.id), headers=keyed(second_headers, "same"))
        assert (first.status_code, second.status_code) == (201, 201)
        assert "idempotent-replayed" not in second.headers
        assert first.json()["user_id"] == str(first_user.id)
        assert second.json()["user_id"] == str(second_user.id)
        assert await world.count(Registration, event_id=event.id) == 2

    # Another login token of the user, or an API token of theirs: keys belong to the user.
    @pytest.mark.parametrize("second_kind", ["login", "api"])
    async def test_tokens_of_one_user_share_keys(
        self, http: httpx.AsyncClient, world: World, second_kind: str
    ) -> None:
        event = await world.event()
        user, first_headers = await world.user()
        second_headers = await (world.token if second_kind == "login" else world.api_token)(user)
        first = await http.post(registrations(event.id), headers=keyed(first_headers, "same"))
        replay = await http.post(registrations(event.id), headers=keyed(second_headers, "same"))
        assert first.status_code == 201
        assert_replay(replay, first)
        assert await world.count(Registration, event_id=event.id) == 1

    async def test_excluded_route_ignores_the_key(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        user, headers = await world.user()
        body = {"email": f"{world.prefix}new@example.com", "password": "a long passphrase"}
        first = await http.post("/api/v1/auth/register", json=body, headers=keyed(headers, "r"))
        second = await http.post("/api/v1/auth/register", json=body, headers=keyed(headers, "r"))
        assert first.status_code == 201
        assert second.status_code == 400
        assert second.json() == {"detail": "REGISTER_USER_ALREADY_EXISTS"}
        assert "idempotent-replayed" not in second.headers
        # Not even checked there: an invalid key changes nothing.
        third = await http.post("/api/v1/auth/register", json=body, headers=keyed(headers, " "))
        assert third.json() == {"detail": "REGISTER_USER_ALREADY_EXISTS"}
        assert await world.keys(user) == []

    @pytest.mark.parametrize("token", [None, "not-a-live-token"])
    async def test_without_live_token_401_nothing_kept(
        self, http: httpx.AsyncClient, world: World, token: str | None
    ) -> None:
        event = await world.event()
        key = f"anon-{uuid.uuid4().hex}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for _ in range(2):
            response = await http.post(registrations(event.id), headers=keyed(headers, key))
            assert response.status_code == 401
            assert response.json() == {"detail": "UNAUTHORIZED"}
            assert response.headers["www-authenticate"] == "Bearer"
        assert await world.count(IdempotencyKey, key=key) == 0

    async def test_without_key_runs_as_before(self, http: httpx.AsyncClient, world: World) -> None:
        event = await world.event()
        user, headers = await world.user()
        first = await http.post(registrations(event.id), headers=headers)
        second = await http.post(registrations(event.id), headers=headers)
        assert first.status_code == 201
        assert second.status_code == 409
        assert second.json() == {"detail": "ALREADY_REGISTERED"}
        # Not a POST: the key is not looked at.
        deleted = await http.delete(f"{registrations(event.id)}/me", headers=keyed(headers, " "))
        assert deleted.status_code == 204
        assert await world.keys(user) == []


class TestFailures:
    async def test_oversized_chunked_body_413(self, http: httpx.AsyncClient, world: World) -> None:
        _, headers = await world.user(UserRole.MANAGER)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(2):
                yield b" " * MAX_BODY_BYTES

        response = await http.post(
            "/api/v1/events",
            content=chunks(),
            headers={**keyed(headers, "big"), "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json() == {"detail": "REQUEST_TOO_LARGE"}

    async def test_database_down_for_the_claim_503(self, world: World) -> None:
        event = await world.event()
        _, headers = await world.user()
        dead = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
        async with client_of(app_with_key_store(lambda: dead)) as client:
            response = await client.post(registrations(event.id), headers=keyed(headers, "k"))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json() == {
            "detail": "SERVICE_UNAVAILABLE",
            "request_id": response.headers["x-request-id"],
        }
        assert await world.count(Registration, event_id=event.id) == 0


async def test_database_down_when_storing_the_answer_still_answers(world: World) -> None:
    """The work is committed: the client gets its answer; the key stays claimed until its lease
    lapses (a retry meanwhile is 409), as after a crash."""
    event = await world.event()
    user, headers = await world.user()
    dead = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    engines = iter([get_engine()])  # the claim succeeds; storing and freeing fail
    async with client_of(app_with_key_store(lambda: next(engines, dead))) as client:
        response = await client.post(registrations(event.id), headers=keyed(headers, "k"))
    assert response.status_code == 201
    assert response.json()["status"] == "CONFIRMED"
    [row] = await world.keys(user)
    assert row.response_status is None
    assert await world.count(Registration, event_id=event.id) == 1


def app_with_key_store(engine: Callable[[], AsyncEngine]) -> FastAPI:
    """The app with its Idempotency-Key statements sent to the engine `engine()` gives."""
    app = create_app(run_worker=False)
    app.user_middleware = [
        Middleware(IdempotencyMiddleware, engine=engine)
        if entry.cls is IdempotencyMiddleware  # type: ignore[comparison-overlap]
        else entry
        for entry in app.user_middleware
    ]
    return app
