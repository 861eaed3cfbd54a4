"""Test infrastructure that is not a fixture: the throwaway database, SMTP capture, servers."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiosmtpd.controller import Controller
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent


def samples(text: str) -> dict[str, float]:
    """Prometheus text format: `name{labels}` -> value."""
    return {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def debian_program(program: str, package: str | None = None) -> str:
    """The path of `program`, installing its Debian package first when it is missing (as
    .ci/run installs make): a test that needs a real proxy or pooler runs, it never skips."""
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
    if found:
        return found
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
    install = [*apt, "install", "-y", "-qq", package or program]

    def run(command: list[str]) -> None:
        subprocess.run(
            command,
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    try:
        run(install)
    except subprocess.CalledProcessError:
        # A fresh machine may not have read the package lists yet.
        run([*apt, "update", "-qq"])
        run(install)
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
    assert found, f"{package or program} installed, but {program} is not on PATH"
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestDatabaseServer:
    """Where the suite creates its databases: TEST_DATABASE_URL's server, or an embedded one."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self) -> None:
        self._pg: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        configured = os.environ.get("TEST_DATABASE_URL")
        if configured:
            self.admin_url = make_url(configured.replace("+asyncpg", "")).set(
                drivername="postgresql"
            )
        else:
            import pgserver

            self._tmp = tempfile.TemporaryDirectory(prefix="event-manager-test-pg-")
            os.chmod(self._tmp.name, 0o755)  # postgres runs as its own user when we are root
            self._pg = pgserver.get_server(self._tmp.name, cleanup_mode="stop")  # type: ignore[attr-defined]
            self.admin_url = make_url(self._pg.get_uri())

    def url_for(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        url = self.admin_url.set(database=database, drivername=driver)
        return url.render_as_string(hide_password=False)

    def _admin_dsn(self) -> str:
        return self.admin_url.render_as_string(hide_password=False)

    def create_database(self, prefix: str = "event_manager_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        asyncio.run(self._execute(f'CREATE DATABASE "{name}"'))
        return name

    def create_migrated_database(self, prefix: str = "event_manager_server") -> str:
        """A new database with the real Alembic migrations applied (about a second)."""
        from alembic import command
        from alembic.config import Config

        name = self.create_database(prefix)
        config = Config(str(ROOT / "alembic.ini"))
        config.attributes["database_url"] = self.url_for(name)
        config.attributes["configure_logger"] = False
        try:
            command.upgrade(config, "head")
        except BaseException:
            self.drop_database(name)
            raise
        return name

    def drop_database(self, name: str) -> None:
        asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def database_exists(self, name: str) -> bool:
        async def exists() -> bool:
            connection = await asyncpg.connect(self._admin_dsn())
            try:
                found = await connection.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", name
                )
            finally:
                await connection.close()
            return found is not None

        return asyncio.run(exists())

    async def _execute(self, sql: str) -> None:
        connection = await asyncpg.connect(self._admin_dsn())
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    def stop(self) -> None:
        if self._pg is not None:
            self._pg.cleanup()
        if self._tmp is not None:
            self._tmp.cleanup()


@dataclass
class Mailbox:
    """Messages received by the in-process SMTP server."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse:
            return "451 Requested action aborted: local error in processing"
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        self.messages.clear()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"].lower() == address.lower()]

    @staticmethod
    def text(message: EmailMessage) -> str:
        part = message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())


@contextmanager
def smtp_server(mailbox: Mailbox, port: int) -> Iterator[Controller]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@dataclass
class ServerProcess:
    """A real `uvicorn` serving the app, for concurrency, timing and faults."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # The database it serves: the suite's test database unless run_server made its own.
    database_url: str = field(default_factory=lambda: os.environ.get("DATABASE_URL", ""))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_server(
    env: dict[str, str],
    *,
    workers: int = 2,
    target: str = "api.main:create_app",
    own_database: TestDatabaseServer | None = None,
    port: int | None = None,
) -> Iterator[ServerProcess]:
    """Serve `target` (an app factory when it names create_app) with uvicorn in a subprocess.

    With `own_database`, the server gets a freshly migrated throwaway database on that
    PostgreSQL server (dropped afterwards) instead of the suite's test database. `port`: the
    port to listen on, for a test that must name the server's address before it starts (its
    PUBLIC_BASE_URL); a free one otherwise.
    """
    database = own_database.create_migrated_database() if own_database else None
    if own_database and database:
        env = {**env, "DATABASE_URL": own_database.url_for(database)}
    factory = ["--factory"] if target.endswith("create_app") else []
    uvicorn = [sys.executable, "-m", "uvicorn", target, *factory, "--host", "127.0.0.1"]
    options = ["--workers", str(workers), "--log-level", "warning"]
    try:
        with _serve(env, lambda port: [*uvicorn, "--port", str(port), *options], port) as server:
            yield server
    finally:
        if own_database and database:
            own_database.drop_database(database)


@contextmanager
def run_cli_server(env: dict[str, str], *options: str) -> Iterator[ServerProcess]:
    """`event-manager serve` with `options` on a free port of 127.0.0.1: the command as shipped
    (its uvicorn settings, its metrics directory, its warnings), its output in `log()`."""
    serve = [sys.executable, "-m", "api.cli", "serve"]
    with _serve(env, lambda port: [*serve, "--port", str(port), *options]) as server:
        yield server


# A machine busy with other suites can take a minute to import a server's worker processes.
SERVER_START_SECONDS = 120


@contextmanager
def _serve(
    env: dict[str, str], command: Callable[[int], list[str]], port: int | None = None
) -> Iterator[ServerProcess]:
    port = port or free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False)
    process = subprocess.Popen(
        command(port),
        cwd=ROOT,
        # A small pool unless a test asks otherwise: several servers share one PostgreSQL.
        env={**os.environ, "DB_POOL_SIZE": "10", **env},
        stdout=log_file,
        stderr=subprocess.STDOUT,
        # Its own process group, so that cleanup can reach every worker it forked.
        start_new_session=True,
    )
    server = ServerProcess(
        f"http://127.0.0.1:{port}",
        process,
        Path(log_file.name),
        database_url=env.get("DATABASE_URL", os.environ.get("DATABASE_URL", "")),
    )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log()}")
            try:
                if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{server.log()}")
            time.sleep(0.2)
        yield server
    finally:
        stop_processes([process])
        Path(log_file.name).unlink(missing_ok=True)


def stop_processes(processes: list[subprocess.Popen[bytes]], timeout: float = 20) -> None:
    """SIGTERM every process at once, wait for each (SIGKILL after `timeout`), then SIGKILL
    what is left of its process group: any worker a supervisor left behind (it normally stops
    them itself). Each was started with start_new_session=True, so its group is its own."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


# Figures measured by tests (timings, percentiles), printed at the end of the run.
FIGURES: list[str] = []


def report_figure(line: str) -> None:
    FIGURES.append(line)


async def vacuum(engine: AsyncEngine, *tables: str) -> None:
    """VACUUM ANALYZE `tables` (outside any transaction, as VACUUM requires).

    A test that bulk-loads rows and rolls them back leaves them dead in the heap and the
    indexes until autovacuum comes by; meanwhile they sway the plans of later tests."""
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql(f"VACUUM ANALYZE {', '.join(tables)}")
