"""The embedded PostgreSQL (pgserver) used when DATABASE_URL is unset."""

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

_server: Any = None


def _prune_dead_pids(datadir: Path) -> None:
    """Forget clients that died without running pgserver's atexit hook (SIGTERM, SIGKILL)."""
    handle = datadir / ".handle_pids.json"
    if not handle.exists():
        return
    try:
        pids = json.loads(handle.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if _is_alive(int(pid))]
    if alive != pids:
        handle.write_text(json.dumps(alive))


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start(datadir: Path) -> str:
    """Start (or attach to) the embedded server and return an asyncpg SQLAlchemy URL."""
    global _server
    try:
        import pgserver  # imported lazily: it is only needed without DATABASE_URL
    except ImportError as e:  # the container image leaves it out (dependency group "embedded")
        raise RuntimeError(
            "DATABASE_URL is unset and the embedded PostgreSQL (pgserver) is not installed: "
            "set DATABASE_URL to a PostgreSQL database"
        ) from e

    datadir.mkdir(parents=True, exist_ok=True)
    _prune_dead_pids(datadir)
    _server = pgserver.get_server(str(datadir), cleanup_mode="stop")  # type: ignore[attr-defined]
    url = make_url(_server.get_uri()).set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def stop() -> None:
    """Detach from the embedded server; postgres stops when the last client leaves."""
    global _server
    if _server is not None:
        _server.cleanup()
        _server = None
