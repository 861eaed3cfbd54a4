"""`make bench`: throughput and latency of the service next to a raw Starlette+asyncpg ceiling,
and REL-2 (a cheap endpoint's latency while 30 logins hash passwords). The event listing runs
over BENCH_EVENTS (100,000) events.

Uses its own throwaway database (TEST_DATABASE_URL's server, or an embedded one) and prints
figures; it asserts nothing, so it never makes CI flaky. Load comes from wrk when it is
installed (`apt-get install wrk`), else from an httpx client, which then caps the figures.
"""

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass

import asyncpg
import httpx
from alembic import command
from alembic.config import Config
from rich.console import Console
from rich.table import Table

from api.users.models import hash_token
from api.users.passwords import ThreadedPasswordHelper
from tests.support import ROOT, TestDatabaseServer, run_server

USERS = 200
EVENTS = int(os.environ.get("BENCH_EVENTS", "100000"))
BENCH_SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
PASSWORD = "a perfectly fine passphrase"
console = Console()


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float

    @classmethod
    def from_latencies(cls, name: str, seconds: float, latencies_ms: list[float]) -> "Result":
        ordered = sorted(latencies_ms)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

        return cls(name, len(ordered), seconds, len(ordered) / seconds, pct(0.5), pct(0.99))


WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)s")
TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def load_wrk(base_url: str, path: str, token: str | None, *, seconds: int, name: str) -> Result:
    """wrk (C, one thread, 20 connections) when installed: the load generator is not the limit."""
    header = ["-H", f"Authorization: Bearer {token}"] if token else []
    command = ["wrk", "-t1", "-c20", f"-d{seconds}s", "--latency", *header, base_url + path]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latency = {p: float(v) * TO_MS[unit] for p, v, unit in WRK_LATENCY.findall(output)}
    total = WRK_TOTAL.search(output)
    assert total is not None, output
    assert "Non-2xx" not in output, output
    requests, elapsed = int(total.group(1)), float(total.group(2))
    return Result(name, requests, elapsed, requests / elapsed, latency["50"], latency["99"])


async def seed(dsn: str) -> tuple[list[str], list[str]]:
    """USERS verified users, each with one access token; returns (emails, tokens)."""
    hashed = ThreadedPasswordHelper().hash(PASSWORD)  # production argon2 settings
    emails = [f"bench-{i}@example.com" for i in range(USERS)]
    tokens = [secrets.token_urlsafe() for _ in range(USERS)]
    connection = await asyncpg.connect(dsn)
    try:
        ids = [uuid.uuid4() for _ in range(USERS)]
        await connection.executemany(
            'INSERT INTO "user" (id, email, hashed_password, nickname, is_active, is_superuser,'
            " is_verified, role, is_professional, failed_login_count, reset_mail_count,"
            " created_at, updated_at) VALUES ($1, $2, $3, $4, true, false, true,"
            " 'AUTHENTICATED', false, 0, 0, now(), now())",
            [
                (i, e, hashed, f"bench_{n}")
                for n, (i, e) in enumerate(zip(ids, emails, strict=True))
            ],
        )
        await connection.executemany(
            "INSERT INTO accesstoken (token, user_id, created_at) VALUES ($1, $2, now())",
            [(hash_token(t), i) for t, i in zip(tokens, ids, strict=True)],
        )
        # EVENTS events over the next year, a third of them PUBLISHED, as in a busy deployment.
        await connection.execute(
            "INSERT INTO event (id, title, description, event_type, starts_at, ends_at, timezone,"
            " location, capacity, tags, status, created_by, registered_count, waitlist_count,"
            " created_at, updated_at, published_at)"
            " SELECT gen_random_uuid(), 'Bench event ' || n, 'Talks and networking, part ' || n,"
            " (ARRAY['COMPANY_TOUR','MOCK_INTERVIEW','GUEST_LECTURE','WORKSHOP','NETWORKING',"
            "'OTHER'])[1 + n % 6]::event_type, now() + (n || ' minutes')::interval,"
            " now() + (n || ' minutes')::interval + interval '2 hours', 'UTC', 'Room ' || n % 50,"
            " 50, ARRAY['tag' || n % 40], (ARRAY['PUBLISHED','PENDING','CANCELLED'])[1 + n % 3]"
            "::event_status, $1, n % 50, 0, now(), now(), now()"
            " FROM generate_series(1, $2) AS n",
            ids[0],
            EVENTS,
        )
        await connection.execute("ANALYZE event")
    finally:
        await connection.close()
    return emails, tokens


async def load(
    base_url: str, path: str, tokens: list[str], *, total: int, concurrency: int, name: str
) -> Result:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker(client: httpx.AsyncClient) -> None:
        for n in counter:
            headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"} if tokens else {}
            start = time.perf_counter()
            response = await client.get(path, headers=headers)
            latencies.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.text

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        await client.get("/health")  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return Result.from_latencies(name, elapsed, latencies)


async def logins_vs_cheap_endpoint(base_url: str, emails: list[str]) -> Result:
    """REL-2: 30 parallel logins; GET /health every 20 ms meanwhile."""
    latencies: list[float] = []
    done = asyncio.Event()

    async def poll(client: httpx.AsyncClient) -> None:
        while not done.is_set():
            start = time.perf_counter()
            await client.get("/health")
            latencies.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.02)

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        poller = asyncio.create_task(poll(client))
        start = time.perf_counter()
        answers = await asyncio.gather(
            *(
                client.post("/api/v1/auth/login", data={"username": e, "password": PASSWORD})
                for e in emails[:30]
            )
        )
        elapsed = time.perf_counter() - start
        done.set()
        await poller
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers[:3]]
    return Result.from_latencies("GET /health during 30 logins", elapsed, latencies)


def main() -> None:
    server = TestDatabaseServer()
    name = server.create_database(prefix="event_manager_bench")
    url, dsn = server.url_for(name), server.url_for(name, driver="postgresql")
    try:
        config = Config(str(ROOT / "alembic.ini"))
        config.attributes.update(database_url=url, configure_logger=False)
        command.upgrade(config, "head")
        emails, tokens = asyncio.run(seed(dsn))
        service_env = {
            "DATABASE_URL": url,
            "ENVIRONMENT": "development",
            "RUN_WORKER_IN_PROCESS": "false",
            "AUTH_RATE_LIMIT": "off",
            "LOG_LEVEL": "WARNING",
            "PASSWORD_HASH_TIME_COST": "3",
            "PASSWORD_HASH_MEMORY_KIB": "65536",
        }
        results: list[Result] = []
        with run_server({"DATABASE_URL": dsn}, workers=1, target="bench.ceiling:app") as ceiling:
            results += measure("ceiling", ceiling.base_url, tokens)
        with run_server(service_env, workers=1) as service:
            results += measure("service", service.base_url, tokens)
            rel2 = asyncio.run(logins_vs_cheap_endpoint(service.base_url, emails))
        report(results, rel2)
    finally:
        server.drop_database(name)
        server.stop()


def scenarios(token: str) -> tuple[tuple[str, str | None], ...]:
    return (("/health", None), ("/api/v1/users/me", token), ("/api/v1/events", None))


def measure(label: str, base_url: str, tokens: list[str]) -> list[Result]:
    results = []
    for path, token in scenarios(tokens[0]):
        name = f"{label}  GET {path}"
        if shutil.which("wrk"):
            results.append(load_wrk(base_url, path, token, seconds=BENCH_SECONDS, name=name))
        else:
            auth = [token] if token else []
            total = int(os.environ.get("BENCH_REQUESTS", "2000"))
            results.append(
                asyncio.run(load(base_url, path, auth, total=total, concurrency=20, name=name))
            )
    return results


def report(results: list[Result], rel2: Result) -> None:
    table = Table(title="event-manager vs raw Starlette+asyncpg (1 worker, 20 concurrent clients)")
    for column in ("scenario", "requests", "req/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right" if column != "scenario" else "left")
    for r in results:
        table.add_row(
            r.name, str(r.requests), f"{r.rps:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}"
        )
    console.print(table)
    for path, _ in scenarios(""):
        ceiling = next(r for r in results if r.name == f"ceiling  GET {path}")
        service = next(r for r in results if r.name == f"service  GET {path}")
        console.print(f"GET {path}: service reaches {service.rps / ceiling.rps:.0%} of the ceiling")
    verdict = "[green]met[/green]" if rel2.p99_ms < 250 else "[red]missed[/red]"
    console.print(
        f"REL-2: {rel2.name}: {rel2.requests} samples over {rel2.seconds:.1f} s, "
        f"median {rel2.p50_ms:.1f} ms, p99 {rel2.p99_ms:.1f} ms (target < 250 ms: {verdict})"
    )
    tool = (
        "wrk" if shutil.which("wrk") else "httpx (install wrk for figures the client does not cap)"
    )
    console.print(f"load generator: {tool}")


if __name__ == "__main__":
    main()
