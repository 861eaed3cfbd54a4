"""The apps under load: the ceiling, the code at hand, and a baseline revision built in a git
worktree with its own venv; how many database connections they may hold; their workers' memory."""

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from api.config import Settings
from bench.common import BASELINE, CEILING, TOKEN_MINUTES, console
from bench.database import free_connections
from tests.support import ROOT, free_port

CEILING_POOL = 10  # asyncpg connections a ceiling worker keeps at most
# Connections left for the harness itself and for whatever else uses the server meanwhile.
HEADROOM = 10


@dataclass(frozen=True)
class Baseline:
    """A revision checked out under .bench/ with a venv of its own runtime dependencies."""

    rev: str
    short: str
    path: Path

    @property
    def python(self) -> Path:
        return self.path / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class Server:
    app: str
    base: str
    pid: int

    def worker_rss_kib(self) -> list[int]:
        """The resident memory of each uvicorn worker (VmRSS); empty where there is no /proc."""
        sizes = (_rss_kib(pid) for pid in _worker_pids(self.pid))
        return [size for size in sizes if size is not None]


def uv() -> str:
    """The uv that runs the bench (`uv run` says which), else the Makefile's choice."""
    return os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True)
    return result.stdout.strip()


def _head(path: Path) -> str | None:
    """The commit checked out at `path`, if it is a working git worktree."""
    if not (path / ".git").exists():  # else git would answer for the project around it
        return None
    result = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else None


def _clean_env() -> dict[str, str]:
    """The environment without the venv of the code at hand, which `uv run` put there."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME"}
    }


def checkout(rev: str) -> Baseline:
    """`rev` in .bench/baseline-<short>/ (reused when it is already there), synced from its lock.

    Only the runtime dependencies: `serve` needs no dev tools, nor the embedded PostgreSQL.
    """
    try:
        full = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"BASELINE={rev}: no such revision in this repository") from None
    short = _git("rev-parse", "--short", full)
    baseline = Baseline(full, short, ROOT / ".bench" / f"baseline-{short}")
    if _head(baseline.path) != full:
        if baseline.path.exists():
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(baseline.path)],
                cwd=ROOT,
                capture_output=True,
            )
            shutil.rmtree(baseline.path, ignore_errors=True)
        _git("worktree", "prune")  # forget a worktree whose directory was deleted by hand
        _git("worktree", "add", "--detach", str(baseline.path), full)
    start = time.perf_counter()
    result = subprocess.run(
        [uv(), "sync", "--frozen", "--no-default-groups"],
        cwd=baseline.path,
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"uv sync of the baseline {baseline.short} failed:\n{result.stderr}")
    console.print(
        f"baseline {baseline.short}: {baseline.path.relative_to(ROOT)}, synced in"
        f" {time.perf_counter() - start:.0f} s"
    )
    return baseline


def pool_size(dsn: str, workers: int, services: int) -> int | None:
    """None when every service worker can keep its default pool; else the smaller pool that
    fits, the same for each service, so that no run fails on PostgreSQL's max_connections
    (with a baseline, 2 workers hold up to 2 x 2 x 20 connections besides the ceiling's)."""
    default = int(Settings.model_fields["DB_POOL_SIZE"].default)
    most, free = asyncio.run(free_connections(dsn))
    spare = free - CEILING_POOL * workers - HEADROOM
    if services * workers * default <= spare:
        return None
    size = max(2, spare // (services * workers))
    console.print(
        f"[yellow]DB_POOL_SIZE={size} (default {default}) for every service worker:"
        f" PostgreSQL allows {most} connections, {free} are free[/yellow]"
    )
    return size


@contextmanager
def serve(
    app: str,
    workers: int,
    url: str,
    dsn: str,
    *,
    baseline: Baseline | None = None,
    pool: int | None = None,
) -> Iterator[Server]:
    """The app on a free port until the block ends. The ceiling gets the asyncpg DSN; the
    current code and the baseline the same production settings, each from its own checkout."""
    port = free_port()
    if app == CEILING:
        env = {
            "DATABASE_URL": dsn,
            "TOKEN_MINUTES": str(TOKEN_MINUTES),
            "POOL_SIZE": str(CEILING_POOL),
        }
        command = [sys.executable, "-m", "uvicorn", "bench.ceiling:app", "--no-access-log"]
        cwd = ROOT
    else:
        # Production settings; the per-IP login throttle is off (every request comes from
        # 127.0.0.1) and tokens outlive the run. No in-process job worker: mail waits queued.
        env = {
            "ENVIRONMENT": "production",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "DATABASE_URL": url,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "AUTH_RATE_LIMIT": "off",
            "ACCESS_TOKEN_EXPIRE_MINUTES": str(TOKEN_MINUTES),
            # Besides --no-worker: before dc5a53c one process ignored the flag and ran the job
            # worker, retrying mail without an SMTP server, so a baseline needs the setting.
            "RUN_WORKER_IN_PROCESS": "false",
        }
        if pool is not None:
            env["DB_POOL_SIZE"] = str(pool)
        if app == BASELINE and baseline is None:
            raise ValueError("serving the baseline needs its checkout")
        tree = baseline if app == BASELINE else None
        python = str(tree.python) if tree else sys.executable
        command = [python, "-m", "api.cli", "serve", "--no-worker", "--no-migrate"]
        cwd = tree.path if tree else ROOT
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{app}-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        cwd=cwd,
        env={**_clean_env(), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(app, base, process, Path(log.name))
        yield Server(app, base, process.pid)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if os.environ.get("BENCH_KEEP_LOGS"):
            console.print(f"{app} log: {log.name}")
        else:
            Path(log.name).unlink(missing_ok=True)


def _wait_healthy(app: str, base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{app} exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{app} did not start:\n{log.read_text()}")
        time.sleep(0.2)


def _worker_pids(pid: int) -> list[int]:
    """uvicorn's worker processes: the children it spawned (not multiprocessing's resource
    tracker), or with one worker the serving process itself."""
    children = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        # Fields after the command name, which is in parentheses and may hold spaces: state, ppid.
        if int(stat.rpartition(")")[2].split()[1]) == pid and b"spawn_main" in cmdline:
            children.append(int(entry.name))
    return sorted(children) or ([pid] if Path(f"/proc/{pid}").exists() else [])


def _rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rows = (line.split() for line in status.splitlines())
    return next((int(row[1]) for row in rows if row and row[0] == "VmRSS:"), None)
