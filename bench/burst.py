"""The registration burst: BURST_USERS users register at once for BURST_SEATS seats.

A raw asyncio client on connections opened beforehand: an HTTP library in Python would take
seconds itself to send 200 requests at once, and measure itself rather than the server.
"""

import asyncio
import statistics
import time
import uuid
from typing import Any

import asyncpg

from bench.common import BURST_SEATS, BURST_USERS, Data, Figure, console
from bench.database import new_event
from bench.scenarios import median_figure, take_turns
from bench.servers import Server

SCENARIO = f"registration burst {BURST_USERS}/{BURST_SEATS}"
Link = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(base: str) -> Link:
    host, port = base.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _request(link: Link, request: bytes) -> int:
    """One HTTP/1.1 request on an open keep-alive connection; the status code (0: failed)."""
    reader, writer = link
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
    """The burst on a fresh event; its figures, and whether the counts came out exact."""
    connection = await asyncpg.connect(dsn)
    try:
        admin = await connection.fetchval("SELECT id FROM \"user\" WHERE role = 'ADMIN' LIMIT 1")
        event_id = await new_event(connection, admin, capacity=BURST_SEATS)
        host = base.removeprefix("http://")
        requests = [
            (
                f"POST /api/v1/events/{event_id}/registrations HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            for token in tokens[:BURST_USERS]
        ]
        links = await asyncio.gather(*(_connect(base) for _ in requests))
        latencies: list[float] = []

        async def one(link: Link, raw: bytes) -> int:
            started = time.perf_counter()
            code = await _request(link, raw)
            latencies.append((time.perf_counter() - started) * 1000)
            return code

        start = time.perf_counter()
        codes = await asyncio.gather(*(one(c, r) for c, r in zip(links, requests, strict=True)))
        elapsed = time.perf_counter() - start
        for _, writer in links:
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


def bursts(servers: dict[str, Server], dsn: str, data: Data, workers: int) -> list[Figure]:
    """REPEATS bursts for each app, taking turns as the wrk scenarios do (no warm-up)."""
    if len(data.tokens) < BURST_USERS:
        raise SystemExit(f"the burst needs {BURST_USERS} users: raise BENCH_SCALE")

    def run(server: Server, _seconds: float) -> list[dict[str, Any]]:
        return [asyncio.run(burst(server.base, dsn, data.tokens))]

    figures = []
    for app, turns in take_turns(servers, run, warm_up=False).items():
        runs = [t[0] for t in turns]
        figure = median_figure(SCENARIO, app, workers, runs)
        fill = statistics.median(r["seconds"] for r in runs)
        wrong = [r["counts"] for r in runs if not r["exact"]]
        seen = ", ".join(f"{n} {s.lower()}" for s, n in wrong[0].items()) if wrong else ""
        figure.note = f"fill {fill:.2f} s, counts " + (f"WRONG ({seen})" if wrong else "exact")
        figures.append(figure)
    return figures
