"""The shared real-server fixture: its own database and processes, all gone afterwards."""

import os
import subprocess
import time

import httpx
from sqlalchemy.engine import make_url

from tests.support import TestDatabaseServer, run_server


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_run_server_with_its_own_database_cleans_up(db_server: TestDatabaseServer) -> None:
    env = {"AUTH_RATE_LIMIT": "off", "RUN_WORKER_IN_PROCESS": "false"}
    with run_server(env, workers=2, own_database=db_server) as server:
        database = make_url(server.database_url).database
        assert database is not None
        assert database != make_url(os.environ["DATABASE_URL"]).database
        assert db_server.database_exists(database)
        assert httpx.get(f"{server.base_url}/ready", timeout=5).json() == {"status": "ok"}
        group = server.process.pid
        workers = subprocess.run(
            ["pgrep", "-g", str(group)], capture_output=True, text=True, check=False
        ).stdout.split()
        # The supervisor and its two workers (uvicorn may add a helper process).
        assert len(workers) >= 3, workers
    assert server.process.poll() is not None
    # Every process of the group is gone (killed ones may wait a moment for init to reap them).
    deadline = time.monotonic() + 10
    while group_alive(group):
        assert time.monotonic() < deadline, "a server process outlived run_server"
        time.sleep(0.1)
    assert not db_server.database_exists(database)
