"""`make bench`: the service next to a raw ceiling, in one run, on the same throwaway database.

    python -m bench             # every scenario, 1 and 2 workers (make bench)
    python -m bench --growth    # events listing and registration at 1x and 10x the data

Environment: BENCH_SECONDS (measured seconds per run, 8), BENCH_WARMUP (2), BENCH_REPEATS (3,
the median is reported), BENCH_SCALE (data size factor, 1 = 10,000 users, 10,000 events,
100,000 registrations), BENCH_WORKERS ("1,2"), BENCH_CONNECTIONS (32),
BENCH_DATABASE_URL (a PostgreSQL server to create the throwaway database on; else
TEST_DATABASE_URL's, else 127.0.0.1:5432 when it answers, else an embedded one).
See bench/README.md for the method.
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table

from api.users.models import hash_token
from tests.support import ROOT, TestDatabaseServer, free_port

SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "2"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
WORKERS = [int(w) for w in os.environ.get("BENCH_WORKERS", "1,2").split(",")]
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
TOKEN_MINUTES = 24 * 60
PASSWORD = "demo-password-123"  # api.demo.DEMO_PASSWORD
BENCH_USERS = 1000
BURST_USERS, BURST_SEATS = 200, 50
LOGIN_CLIENTS, CHEAP_CLIENTS = 8, 4
RESULTS = ROOT / "bench" / "results"
LUA = ROOT / "bench" / "plan.lua"
# Wide enough for the table when the output is a file or a narrow terminal.
console = Console(width=max(150, shutil.get_terminal_size().columns))

INSTALL_WRK = """wrk, the HTTP load generator, is not installed. Install it, then run again:
  Debian/Ubuntu: sudo apt-get install wrk
  macOS:         brew install wrk
  Fedora:        sudo dnf install wrk
(wrk is what `make bench` drives: its Lua scripting replays the scenarios' requests.)"""


@dataclass
class Figure:
    scenario: str
    app: str  # "service" or "ceiling"
    workers: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


@dataclass
class Data:
    """What the scenarios need from the seeded database."""

    tokens: list[str]
    emails: list[str]
    staff_token: str
    event_ids: list[str]
    toggle_events: list[str]


# --- database ---------------------------------------------------------------------------------


def database_server() -> TestDatabaseServer:
    configured = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not configured:
        local = "postgresql://postgres@127.0.0.1:5432/postgres"
        try:
            asyncio.run(_ping(local))
            configured = local
        except (OSError, asyncpg.PostgresError, TimeoutError):
            console.print("no PostgreSQL at 127.0.0.1:5432: using an embedded server")
    if configured:
        os.environ["TEST_DATABASE_URL"] = configured
    return TestDatabaseServer()


async def _ping(dsn: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=2)
    await connection.close()


def seed(url: str, scale: float) -> None:
    """Migrations, then `event-manager seed-demo` at the chosen size."""
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    cli = [sys.executable, "-m", "api.cli"]
    subprocess.run([*cli, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    size = [
        "--users", str(int(10_000 * scale)),
        "--managers", str(max(5, int(50 * scale))),
        "--events", str(int(10_000 * scale)),
        "--registrations", str(int(100_000 * scale)),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(
        [*cli, "seed-demo", *size], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )
    console.print(f"seed-demo {' '.join(size)}: {time.perf_counter() - start:.0f} s")


async def prepare(dsn: str) -> Data:
    """Tokens for BENCH_USERS users and the admin, notices for their inboxes, and events of the
    bench's own for the write scenarios (so that seeded registrations never collide)."""
    connection = await asyncpg.connect(dsn)
    try:
        users = await connection.fetch(
            "SELECT id, email FROM \"user\" WHERE role = 'AUTHENTICATED' AND is_verified"
            " ORDER BY email LIMIT $1",
            BENCH_USERS,
        )
        admin = await connection.fetchval("SELECT id FROM \"user\" WHERE role = 'ADMIN' LIMIT 1")
        tokens = [secrets.token_urlsafe() for _ in range(len(users) + 1)]
        await connection.executemany(
            "INSERT INTO accesstoken (token, user_id, created_at) VALUES ($1, $2, now())",
            [
                (hash_token(t), i)
                for t, i in zip(tokens, [u["id"] for u in users] + [admin], strict=True)
            ],
        )
        # 40 notices each, a third of them read.
        await connection.execute(
            "INSERT INTO notification (id, user_id, kind, title, body, data, read_at, created_at)"
            " SELECT gen_random_uuid(), u, 'EVENT_REMINDER', 'Reminder: event ' || n,"
            " 'Your event starts tomorrow.', jsonb_build_object('n', n),"
            " CASE WHEN n % 3 = 0 THEN now() END, now() - n * interval '1 hour'"
            " FROM unnest($1::uuid[]) AS u, generate_series(1, 40) AS n",
            [u["id"] for u in users],
        )
        toggle_events = [
            await _new_event(connection, admin, capacity=BURST_SEATS) for _ in range(20)
        ]
        event_ids = await connection.fetch(
            "SELECT id FROM event WHERE status = 'PUBLISHED' AND starts_at > now()"
            " ORDER BY id LIMIT 500"
        )
        # As autovacuum leaves a table after a bulk load: statistics, and a visibility map for
        # index-only scans (the listing's count over ix_event_status_starts_at needs one).
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return Data(
        tokens=tokens[:-1],
        emails=[u["email"] for u in users],
        staff_token=tokens[-1],
        event_ids=[str(r["id"]) for r in event_ids],
        toggle_events=toggle_events,
    )


async def _new_event(connection: Any, creator: uuid.UUID, *, capacity: int) -> str:
    event_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO event (id, title, description, event_type, starts_at, ends_at, timezone,"
        " location, capacity, tags, status, created_by, reviewed_by, registered_count,"
        " waitlist_count,"
        " created_at, updated_at, published_at) VALUES ($1, 'Bench launch', 'Opens now',"
        " 'WORKSHOP', now() + interval '30 days', now() + interval '30 days 2 hours', 'UTC',"
        " 'Room 1', $2, ARRAY['bench'], 'PUBLISHED', $3, $3, 0, 0, now(), now(), now())",
        event_id,
        capacity,
        creator,
    )
    return str(event_id)


async def reset_toggles(dsn: str, events: list[str]) -> None:
    """Release every registration on the write scenarios' events, between runs."""
    connection = await asyncpg.connect(dsn)
    try:
        ids = [uuid.UUID(e) for e in events]
        await connection.execute(
            "UPDATE registration SET status = 'CANCELLED', cancelled_at = now()"
            " WHERE event_id = ANY($1) AND status <> 'CANCELLED'",
            ids,
        )
        await connection.execute(
            "UPDATE event SET registered_count = 0, waitlist_count = 0 WHERE id = ANY($1)", ids
        )
    finally:
        await connection.close()


# --- servers ----------------------------------------------------------------------------------


@contextmanager
def serve(app: str, workers: int, url: str, dsn: str) -> Iterator[str]:
    port = free_port()
    if app == "service":
        # Production settings; the per-IP login throttle is off (every request comes from
        # 127.0.0.1) and tokens outlive the run. No in-process job worker: mail waits queued.
        env = {
            "ENVIRONMENT": "production",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "DATABASE_URL": url,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "AUTH_RATE_LIMIT": "off",
            "ACCESS_TOKEN_EXPIRE_MINUTES": str(TOKEN_MINUTES),
        }
        command = [sys.executable, "-m", "api.cli", "serve", "--no-worker", "--no-migrate"]
    else:
        env = {"DATABASE_URL": dsn, "TOKEN_MINUTES": str(TOKEN_MINUTES)}
        command = [sys.executable, "-m", "uvicorn", "bench.ceiling:app", "--no-access-log"]
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{app}-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{app} exited:\n{Path(log.name).read_text()}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not start:\n{Path(log.name).read_text()}")
            time.sleep(0.2)
        yield base
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


# --- load -------------------------------------------------------------------------------------


Request = tuple[str, str, str | None, str | None]  # method, path, token, form body


def write_plan(lines: Sequence[Request]) -> Path:
    plan = tempfile.NamedTemporaryFile("w", prefix="bench-plan-", suffix=".tsv", delete=False)
    with plan:
        for method, path, token, body in lines:
            plan.write(f"{method}\t{path}\t{token or '-'}\t{body or '-'}\n")
    return Path(plan.name)


def wrk(base: str, plan: Path, *, seconds: float, connections: int) -> subprocess.Popen[str]:
    out = tempfile.NamedTemporaryFile(prefix="bench-wrk-", suffix=".json", delete=False)
    out.close()
    process = subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            base,
        ],
        env={**os.environ, "BENCH_PLAN": str(plan), "BENCH_OUT": out.name},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.out = out.name  # type: ignore[attr-defined]
    return process


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    output, _ = process.communicate()
    path = Path(process.out)  # type: ignore[attr-defined]
    try:
        result: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RuntimeError(f"wrk failed:\n{output}") from error
    finally:
        path.unlink(missing_ok=True)
    result["rps"] = result["requests"] / result["seconds"]
    return result


def median_figure(scenario: str, app: str, workers: int, runs: list[dict[str, Any]]) -> Figure:
    return Figure(
        scenario,
        app,
        workers,
        rps=statistics.median(r["rps"] for r in runs),
        p50_ms=statistics.median(r["p50_ms"] for r in runs),
        p99_ms=statistics.median(r["p99_ms"] for r in runs),
        errors=sum(r["errors"] for r in runs),
        runs=runs,
    )


def plans(data: Data) -> dict[str, Path]:
    """The request mix of each wrk scenario."""
    filters = ["", "&event_type=WORKSHOP", "&has_spots=true", "&event_type=NETWORKING&page=2"]
    listing = [("GET", f"/api/v1/events?size=20{f}", None, None) for f in filters]
    by_id = [("GET", f"/api/v1/events/{e}", None, None) for e in data.event_ids]
    me = [("GET", "/api/v1/users/me", t, None) for t in data.tokens]
    users = [("GET", f"/api/v1/users?size=20&page={p}", data.staff_token, None) for p in (1, 2, 3)]
    inbox = [("GET", "/api/v1/notifications?size=20", t, None) for t in data.tokens]
    login = [
        (
            "POST",
            "/api/v1/auth/login",
            None,
            f"username={e.replace('@', '%40')}&password={PASSWORD}",
        )
        for e in data.emails
    ]
    # Register, then (half a cycle later, far more requests than connections) unregister.
    pairs = [(data.tokens[i], data.toggle_events[i % len(data.toggle_events)]) for i in range(400)]
    posts = [("POST", f"/api/v1/events/{e}/registrations", t, None) for t, e in pairs]
    deletes = [("DELETE", f"/api/v1/events/{e}/registrations/me", t, None) for t, e in pairs]
    toggles = posts + deletes
    mixed: list[Request] = []
    for n, write in enumerate(toggles):  # 1 write in 10 requests
        reads: list[Request] = [
            listing[n % 4],
            listing[(n + 1) % 4],
            listing[(n + 2) % 4],
            listing[(n + 3) % 4],
        ]
        reads += [by_id[n % len(by_id)], by_id[(n + 7) % len(by_id)], me[n % len(me)]]
        reads += [me[(n + 11) % len(me)], inbox[n % len(inbox)]]
        mixed += [*reads, write]
    return {
        "events list": write_plan(listing),
        "event by id": write_plan(by_id),
        "users/me": write_plan(me),
        "staff user list": write_plan(users),
        "notification inbox": write_plan(inbox),
        "mixed 90/10": write_plan(mixed),
        "register+cancel": write_plan(toggles),
        "login": write_plan(login),
        "health": write_plan([("GET", "/health", None, None)]),
    }


WRITES = {"mixed 90/10", "register+cancel"}


def load(
    scenario: str, servers: dict[str, str], plan: Path, workers: int, dsn: str, data: Data
) -> list[Figure]:
    """Warm-up, then REPEATS runs of each app, alternating, so noise hits both alike."""
    runs: dict[str, list[dict[str, Any]]] = {app: [] for app in servers}
    for repeat in range(REPEATS + 1):
        for app, base in servers.items():
            if scenario in WRITES:
                asyncio.run(reset_toggles(dsn, data.toggle_events))
            seconds = WARMUP if repeat == 0 else SECONDS
            result = finish(wrk(base, plan, seconds=seconds, connections=CONNECTIONS))
            time.sleep(0.5)  # the requests wrk left in flight are answered before the next run
            if repeat:
                runs[app].append(result)
    return [median_figure(scenario, app, workers, r) for app, r in runs.items()]


def logins(servers: dict[str, str], login: Path, health: Path, workers: int) -> list[Figure]:
    """LOGIN_CLIENTS clients log in without pause; meanwhile CHEAP_CLIENTS GET /health."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for repeat in range(REPEATS + 1):
        for app, base in servers.items():
            seconds = WARMUP if repeat == 0 else SECONDS
            hashing = wrk(base, login, seconds=seconds, connections=LOGIN_CLIENTS)
            cheap = wrk(base, health, seconds=seconds, connections=CHEAP_CLIENTS)
            login_run, cheap_run = finish(hashing), finish(cheap)
            if repeat:
                runs.setdefault(("login", app), []).append(login_run)
                runs.setdefault(("GET /health during logins", app), []).append(cheap_run)
    figures = [median_figure(s, app, workers, r) for (s, app), r in runs.items()]
    for f in figures:
        f.note = f"{LOGIN_CLIENTS} login clients, {CHEAP_CLIENTS} /health clients"
    return figures


async def _raw_connection(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _raw_request(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
) -> int:
    """One HTTP/1.1 request on an open keep-alive connection; the status code (0: failed)."""
    reader, writer = connection
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            (
                int(v)
                for k, _, v in (h.partition(":") for h in lines)
                if k.lower() == "content-length"
            ),
            0,
        )
        await reader.readexactly(length)
        return int(lines[0].split()[1])
    except (OSError, asyncio.IncompleteReadError, ValueError) as error:
        console.print(f"[red]burst: {error!r}[/red]")
        return 0


async def burst(base: str, dsn: str, tokens: list[str]) -> dict[str, Any]:
    """BURST_USERS users register at once for a fresh event of BURST_SEATS seats.

    A raw asyncio client on connections opened beforehand: an HTTP library in Python would take
    seconds itself to send 200 requests at once, and measure itself rather than the server.
    """
    connection = await asyncpg.connect(dsn)
    try:
        admin = await connection.fetchval("SELECT id FROM \"user\" WHERE role = 'ADMIN' LIMIT 1")
        event_id = await _new_event(connection, admin, capacity=BURST_SEATS)
        host = base.removeprefix("http://")
        requests = [
            (
                f"POST /api/v1/events/{event_id}/registrations HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            for token in tokens[:BURST_USERS]
        ]
        connections = await asyncio.gather(*(_raw_connection(base) for _ in requests))
        latencies: list[float] = []

        async def one(link: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes) -> int:
            started = time.perf_counter()
            code = await _raw_request(link, raw)
            latencies.append((time.perf_counter() - started) * 1000)
            return code

        start = time.perf_counter()
        codes = await asyncio.gather(
            *(one(c, r) for c, r in zip(connections, requests, strict=True))
        )
        elapsed = time.perf_counter() - start
        for _, writer in connections:
            writer.close()
        rows = await connection.fetch(
            "SELECT status::text, count(*) FROM registration WHERE event_id = $1 GROUP BY status",
            uuid.UUID(event_id),
        )
        counters = await connection.fetchrow(
            "SELECT registered_count, waitlist_count FROM event WHERE id = $1", uuid.UUID(event_id)
        )
    finally:
        await connection.close()
    counts = {r["status"]: r["count"] for r in rows}
    exact = (
        counts == {"CONFIRMED": BURST_SEATS, "WAITLISTED": BURST_USERS - BURST_SEATS}
        and counters["registered_count"] == BURST_SEATS
        and counters["waitlist_count"] == BURST_USERS - BURST_SEATS
    )
    ordered = sorted(latencies)
    return {
        "seconds": elapsed,
        "rps": BURST_USERS / elapsed,
        "p50_ms": ordered[len(ordered) // 2],
        "p99_ms": ordered[int(0.99 * len(ordered))],
        "errors": sum(1 for c in codes if c != 201),
        "counts": counts,
        "exact": exact,
    }


def bursts(servers: dict[str, str], dsn: str, data: Data, workers: int) -> list[Figure]:
    figures = []
    for app, base in servers.items():
        runs = [asyncio.run(burst(base, dsn, data.tokens)) for _ in range(REPEATS)]
        figure = median_figure("registration burst 200/50", app, workers, runs)
        fill = statistics.median(r["seconds"] for r in runs)
        exact = all(r["exact"] for r in runs)
        figure.note = f"fill {fill:.2f} s, counts {'exact' if exact else 'WRONG'}"
        figure.runs = runs
        figures.append(figure)
    return figures


# --- report -----------------------------------------------------------------------------------


def ratio(figure: Figure, figures: list[Figure]) -> float | None:
    ceiling = next(
        (
            f
            for f in figures
            if f.app == "ceiling" and f.scenario == figure.scenario and f.workers == figure.workers
        ),
        None,
    )
    return figure.rps / ceiling.rps if ceiling and ceiling.rps else None


def table(figures: list[Figure], title: str) -> Table:
    out = Table(title=title)
    for column in ("scenario", "app", "workers", "req/s", "p50 ms", "p99 ms", "errors", "ratio"):
        out.add_column(column, justify="left" if column in ("scenario", "app") else "right")
    out.add_column("note")
    for f in figures:
        r = ratio(f, figures) if f.app == "service" else None
        out.add_row(
            f.scenario,
            f.app,
            str(f.workers),
            f"{f.rps:,.0f}",
            f"{f.p50_ms:.1f}",
            f"{f.p99_ms:.1f}",
            str(f.errors),
            f"{r:.0%}" if r is not None else "",
            f.note,
        )
    return out


def chart(figures: list[Figure], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    service = [f for f in figures if f.app == "service"]
    labels = [f"{f.scenario}\n{f.workers}w" for f in service]
    ceilings = [
        next(
            (
                c.rps
                for c in figures
                if c.app == "ceiling" and c.scenario == f.scenario and c.workers == f.workers
            ),
            0.0,
        )
        for f in service
    ]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(10, len(service) * 0.9), 9))
    x = range(len(service))
    top.bar([i - 0.2 for i in x], ceilings, 0.4, label="ceiling", color="#bbbbbb")
    top.bar([i + 0.2 for i in x], [f.rps for f in service], 0.4, label="service", color="#3572a5")
    for i, f in enumerate(service):
        if ceilings[i]:
            top.annotate(f"{f.rps / ceilings[i]:.0%}", (i + 0.2, f.rps), ha="center", va="bottom")
    top.set_ylabel("requests/s (median of runs)")
    top.set_title(title)
    top.legend()
    top.set_xticks(list(x), labels, rotation=60, ha="right", fontsize=7)
    bottom.bar([i - 0.2 for i in x], [f.p50_ms for f in service], 0.4, label="service p50")
    bottom.bar([i + 0.2 for i in x], [f.p99_ms for f in service], 0.4, label="service p99")
    bottom.axhline(50, color="red", linewidth=0.8, linestyle="--", label="50 ms")
    bottom.set_yscale("log")
    bottom.set_ylabel("latency ms (log)")
    bottom.legend()
    bottom.set_xticks(list(x), labels, rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save(figures: list[Figure], stem: str, extra: dict[str, Any], title: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    json_path, png_path = RESULTS / f"{stem}.json", RESULTS / f"{stem}.png"
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "system": platform.platform()},
        "settings": {"seconds": SECONDS, "warmup": WARMUP, "repeats": REPEATS, "scale": SCALE,
                     "connections": CONNECTIONS, "workers": WORKERS},
        **extra,
        "figures": [
            {**asdict(f), "ratio": ratio(f, figures) if f.app == "service" else None}
            for f in figures
        ],
    }  # fmt: skip
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    chart(figures, png_path, title)
    console.print(f"wrote {json_path.relative_to(ROOT)} and {png_path.relative_to(ROOT)}")


# --- runs -------------------------------------------------------------------------------------


@contextmanager
def database(server: TestDatabaseServer, scale: float) -> Iterator[tuple[str, str, Data]]:
    name = server.create_database(prefix="event_manager_bench")
    url, dsn = server.url_for(name), server.url_for(name, driver="postgresql")
    try:
        seed(url, scale)
        yield url, dsn, asyncio.run(prepare(dsn))
    finally:
        server.drop_database(name)


def main_run(server: TestDatabaseServer) -> None:
    figures: list[Figure] = []
    with database(server, SCALE) as (url, dsn, data):
        plan = plans(data)
        for workers in WORKERS:
            with (
                serve("ceiling", workers, url, dsn) as ceiling,
                serve("service", workers, url, dsn) as service,
            ):
                servers = {"ceiling": ceiling, "service": service}
                for scenario in (
                    "events list",
                    "event by id",
                    "users/me",
                    "staff user list",
                    "notification inbox",
                    "mixed 90/10",
                ):
                    console.print(f"[dim]{workers} worker(s): {scenario}[/dim]")
                    figures += load(scenario, servers, plan[scenario], workers, dsn, data)
                console.print(f"[dim]{workers} worker(s): login[/dim]")
                figures += logins(servers, plan["login"], plan["health"], workers)
                console.print(f"[dim]{workers} worker(s): registration burst[/dim]")
                figures += bursts(servers, dsn, data, workers)
    title = (
        f"event-manager vs raw ceiling: {CONNECTIONS} connections, {SECONDS:g} s x {REPEATS} "
        f"(median), data x{SCALE:g}"
    )
    console.print(table(figures, title))
    save(figures, datetime.now(UTC).strftime("%Y-%m-%d"), {}, title)


def growth_run(server: TestDatabaseServer) -> None:
    """The events listing and a registration at 1x and 10x the data, 2 workers, service only."""
    figures: list[Figure] = []
    workers = max(WORKERS)
    for scale in (SCALE, SCALE * 10):
        with database(server, scale) as (url, dsn, data):
            plan = plans(data)
            with serve("service", workers, url, dsn) as service:
                for scenario in ("events list", "register+cancel"):
                    console.print(f"[dim]data x{scale:g}: {scenario}[/dim]")
                    (figure,) = load(
                        scenario, {"service": service}, plan[scenario], workers, dsn, data
                    )
                    figure.app, figure.note = f"service x{scale:g}", f"data x{scale:g}"
                    figures.append(figure)
    out = Table(
        title=f"cost of growth: data x{SCALE * 10:g} against x{SCALE:g} ({workers} workers)"
    )
    for column in (
        "scenario",
        "req/s x1",
        "req/s x10",
        "p99 x1",
        "p99 x10",
        "p99 ratio",
        "within 1.5x",
    ):
        out.add_column(column)
    growth = {}
    for scenario in ("events list", "register+cancel"):
        small, big = (f for f in figures if f.scenario == scenario)
        p99 = big.p99_ms / small.p99_ms
        slower = small.rps / big.rps
        ok = max(p99, slower) <= 1.5
        growth[scenario] = {"p99_ratio": p99, "throughput_ratio": slower, "within_1_5x": ok}
        out.add_row(
            scenario, f"{small.rps:,.0f}", f"{big.rps:,.0f}", f"{small.p99_ms:.1f}",
            f"{big.p99_ms:.1f}", f"{p99:.2f}", "yes" if ok else "NO",
        )  # fmt: skip
    console.print(out)
    save(
        figures,
        datetime.now(UTC).strftime("%Y-%m-%d") + "-growth",
        {"growth": growth},
        str(out.title),
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--growth", action="store_true", help="1x against 10x data")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        console.print(INSTALL_WRK)
        raise SystemExit(2)
    server = database_server()
    try:
        growth_run(server) if args.growth else main_run(server)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
