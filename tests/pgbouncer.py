"""A real PgBouncer (Debian's package) in transaction pooling mode in front of the suite's
PostgreSQL: TEST_DATABASE_URL's server over TCP, or the embedded one over its unix socket."""

import os
import pwd
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from tests.support import TestDatabaseServer, debian_program, free_port

# Server connections per database and user: fewer than the clients the tests open, so that
# consecutive transactions of one client really do move between server connections.
POOL_SIZE = 10
START_SECONDS = 30


@dataclass(frozen=True)
class PgBouncer:
    port: int
    user: str
    password: str | None
    log_path: Path

    def url_for(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        url = URL.create(
            driver,
            username=self.user,
            password=self.password,
            host="127.0.0.1",
            port=self.port,
            database=database,
        )
        return url.render_as_string(hide_password=False)

    def console(self, command: str) -> str:
        """Run `command` on the admin console; what it printed, tab-separated. The console
        speaks only the simple query protocol, which asyncpg does not offer for reading rows:
        psql does."""
        psql = debian_program("psql", "postgresql-client")
        options = ["-X", "-q", "-A", "-F", "\t", "-P", "footer=off"]
        options += ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "pgbouncer"]
        result = subprocess.run(
            [psql, *options, "-c", command],
            env={**os.environ, "PGPASSWORD": self.password or ""},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout

    def show(self, what: str) -> list[dict[str, str]]:
        """`SHOW <what>` on the admin console, one dict per row."""
        header, *rows = self.console(f"SHOW {what}").splitlines()
        names = header.split("\t")
        return [dict(zip(names, row.split("\t"), strict=True)) for row in rows]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _unprivileged_user(server: TestDatabaseServer) -> str:
    """PgBouncer refuses to run as root: the user it switches to. In front of the embedded
    server that is the owner of its data directory, which holds the unix socket and lets no one
    else in (pgserver runs PostgreSQL as its own user when we are root)."""
    socket_directory = server.admin_url.query.get("host")
    if socket_directory:
        return pwd.getpwuid(os.stat(str(socket_directory)).st_uid).pw_name
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "nobody"
    return "postgres"


def _config(server: TestDatabaseServer, port: int, userlist: Path, user: str) -> str:
    url = server.admin_url
    # The embedded server's URL names its unix socket directory as ?host=/path.
    host = url.host or str(url.query["host"])
    return f"""\
[databases]
* = host={host} port={url.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {userlist}
admin_users = {user}
pool_mode = transaction
default_pool_size = {POOL_SIZE}
max_client_conn = 1000
"""


@contextmanager
def run_pgbouncer(server: TestDatabaseServer) -> Iterator[PgBouncer]:
    """PgBouncer on a free port of 127.0.0.1, in front of every database of `server`."""
    program = debian_program("pgbouncer")
    user = server.admin_url.username or "postgres"
    password = server.admin_url.password
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="event-manager-pgbouncer-") as tmp:
        directory = Path(tmp)
        # As root PgBouncer runs as another user, who must read its files.
        os.chmod(directory, 0o755)
        userlist = directory / "userlist.txt"
        userlist.write_text(f'"{user}" "{password or ""}"\n')
        config = directory / "pgbouncer.ini"
        config.write_text(_config(server, port, userlist, user))
        for path in (userlist, config):
            os.chmod(path, 0o644)
        log_path = directory / "pgbouncer.log"
        as_user = ["-u", _unprivileged_user(server)] if os.geteuid() == 0 else []
        with log_path.open("wb") as log:
            # In the foreground, PgBouncer logs to stderr: into the file this process opened.
            process = subprocess.Popen(
                [program, *as_user, str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        bouncer = PgBouncer(port, user, password, log_path)
        try:
            _wait_until_listening(bouncer, process)
            yield bouncer
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_until_listening(bouncer: PgBouncer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited at start:\n{bouncer.log()}")
        try:
            with socket.create_connection(("127.0.0.1", bouncer.port), timeout=1):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"pgbouncer did not listen:\n{bouncer.log()}")
        time.sleep(0.05)
