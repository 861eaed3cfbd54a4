"""The `event-manager` command line, run for real against throwaway databases."""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from api import embedded
from api.cli import app
from api.config import settings
from api.db import get_database_url
from api.main import create_app
from api.worker import WORKER_APPLICATION_NAME
from tests.support import ROOT, TestDatabaseServer, free_port

runner = CliRunner()


def _fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
            return rows
        finally:
            await connection.close()

    return asyncio.run(run())


def test_create_admin_creates_then_promotes() -> None:
    email = "cli-admin@example.com"
    try:
        result = runner.invoke(
            app, ["create-admin", "--email", email, "--password", "a perfectly fine passphrase"]
        )
        assert result.exit_code == 0, result.output
        assert f"Created admin {email}" in result.output
        rows = _fetch(
            get_database_url(),
            'SELECT role::text, is_verified, is_superuser FROM "user" WHERE email = $1',
            email,
        )
        assert [tuple(r) for r in rows] == [("ADMIN", True, True)]

        again = runner.invoke(
            app, ["create-admin", "--email", email.upper(), "--password", "another fine phrase"]
        )
        assert again.exit_code == 0, again.output
        assert f"Promoted admin {email}" in again.output
    finally:
        _fetch(get_database_url(), 'DELETE FROM "user" WHERE email = $1', email)


def test_create_admin_asks_for_the_password_twice_and_hides_it() -> None:
    email = "cli-prompted-admin@example.com"
    password = "a prompted fine passphrase"
    try:
        mismatch = runner.invoke(
            app, ["create-admin", "--email", email], input=f"{password}\nsomething else\n"
        )
        assert mismatch.exit_code != 0
        assert "Error: The two entered values do not match." in mismatch.output
        assert _fetch(get_database_url(), 'SELECT 1 FROM "user" WHERE email = $1', email) == []

        result = runner.invoke(
            app, ["create-admin", "--email", email], input=f"{password}\n{password}\n"
        )
        assert result.exit_code == 0, result.output
        assert "Password: \nRepeat for confirmation: \n" in result.output
        assert password not in result.output
        assert f"Created admin {email}" in result.output
    finally:
        _fetch(get_database_url(), 'DELETE FROM "user" WHERE email = $1', email)


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0, result.output
    assert result.output == f"event-manager {version('event-manager')}\n"


@pytest.mark.parametrize(
    "command",
    [[], ["migrate"], ["serve"], ["create-admin"], ["seed-demo"], ["worker"], ["openapi"]],
)
def test_every_help_shows_an_example(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)

    assert result.exit_code == 0, result.output
    assert "Example: event-manager " in result.output


def test_every_command_is_in_the_help_test() -> None:
    import typer.core
    import typer.main

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert sorted(group.commands) == [
        "create-admin",
        "migrate",
        "openapi",
        "seed-demo",
        "serve",
        "worker",
    ]


def test_create_admin_refuses_weak_password() -> None:
    result = runner.invoke(
        app, ["create-admin", "--email", "weak@example.com", "--password", "123"]
    )
    assert result.exit_code == 1
    assert "Password refused: Password should be at least 8 characters" in result.output
    assert (
        _fetch(get_database_url(), "SELECT 1 FROM \"user\" WHERE email = 'weak@example.com'") == []
    )


def test_openapi_writes_the_document_the_service_serves(tmp_path: Path) -> None:
    served = json.loads(json.dumps(create_app().openapi()))
    target = tmp_path / "clients" / "openapi.json"

    written = runner.invoke(app, ["openapi", "--output", str(target)])
    assert written.exit_code == 0, written.output
    assert "Wrote the OpenAPI document to" in written.output
    assert json.loads(target.read_text(encoding="utf-8")) == served

    printed = runner.invoke(app, ["openapi"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == served


def test_migrate_builds_a_fresh_database(
    db_server: TestDatabaseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = db_server.create_database(prefix="event_manager_cli")
    url = db_server.url_for(name)
    monkeypatch.setattr(settings, "DATABASE_URL", url)
    get_database_url.cache_clear()
    try:
        result = runner.invoke(app, ["migrate"])
        assert result.exit_code == 0, result.output
        assert "Database migrated to head." in result.output
        tables = {
            r[0] for r in _fetch(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {"user", "accesstoken", "audit_log", "pgqueuer", "alembic_version"} <= tables
    finally:
        get_database_url.cache_clear()
        db_server.drop_database(name)


@contextmanager
def serving(*options: str, env: dict[str, str]) -> Iterator[str]:
    """`event-manager serve` on a free port with `options`; its base URL once /health answers
    (the lifespan, which starts the in-process worker, has run by then)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), *options],
        cwd=ROOT,
        # Stopped by SIGTERM afterwards: no drain to wait for (tests/test_shutdown.py has it).
        env={**os.environ, "SHUTDOWN_DRAIN_SECONDS": "0", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                asyncio.run(asyncio.sleep(0.1))
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_answers_health_and_docs_with_metrics_of_all_workers() -> None:
    env = {"RUN_WORKER_IN_PROCESS": "false", "WEB_CONCURRENCY": "2"}
    with serving("--no-worker", env=env) as base:
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        assert httpx.get(f"{base}/ready").json() == {"status": "ok"}
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200
        assert "swagger-ui" in docs.text
        spec = httpx.get(f"{base}/openapi.json").json()
        assert "/api/v1/auth/register" in spec["paths"]
        for _ in range(20):  # a new connection each: both worker processes answer some
            response = httpx.get(f"{base}/api/v1/events/{uuid.uuid4()}")
            assert response.status_code == 404
        # Whichever worker answers the scrape, the counts are those of all workers together.
        for _ in range(4):
            metrics = httpx.get(f"{base}/metrics").text
            handler = 'handler="/api/v1/events/{event_id}",method="GET",status="404"'
            assert f"http_requests_total{{{handler}}} 20.0" in metrics


def test_embedded_server_starts_and_keeps_data() -> None:
    with tempfile.TemporaryDirectory(prefix="event-manager-embedded-") as tmp:
        datadir = Path(tmp) / "pg"
        os.chmod(tmp, 0o755)
        url = embedded.start(datadir)
        try:
            assert url.startswith("postgresql+asyncpg://")
            assert "host=" in url
            _fetch(url, "CREATE TABLE IF NOT EXISTS kept (v int)")
            _fetch(url, "INSERT INTO kept VALUES (42)")
        finally:
            embedded.stop()
        # A client killed without cleanup (SIGKILL) stays in pgserver's pid file: it is pruned.
        (datadir / ".handle_pids.json").write_text("[999999]")
        url = embedded.start(datadir)
        try:
            assert [r[0] for r in _fetch(url, "SELECT v FROM kept")] == [42]
        finally:
            embedded.stop()


@pytest.mark.parametrize(("flag", "expected"), [("--no-worker", 0), ("--worker", 1)])
def test_serve_one_process_obeys_the_worker_flag(flag: str, expected: int) -> None:
    """With one process, uvicorn runs the app in the CLI's own process, whose settings were
    read before the flag: the flag still decides whether the job worker runs in it."""
    env = {"RUN_WORKER_IN_PROCESS": "false" if expected else "true"}
    with serving("--workers", "1", flag, env=env):
        database = get_database_url().rsplit("/", 1)[1].split("?")[0]
        rows = _fetch(
            get_database_url(),
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            database,
            WORKER_APPLICATION_NAME,
        )
        assert rows[0][0] == expected
