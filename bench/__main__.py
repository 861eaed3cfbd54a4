"""`make bench`: the code at hand next to a raw ceiling (and a baseline revision), in one run, on
the same throwaway database.

    python -m bench                      # every scenario, 1 and 2 workers (make bench)
    python -m bench --baseline 1e59520   # ... and that revision, paired (make bench BASELINE=...)
    python -m bench --growth             # listing, inbox and registration at 1x and 10x the data

Environment: BENCH_SECONDS (measured seconds per run, 8), BENCH_WARMUP (2), BENCH_REPEATS (3,
the median is reported), BENCH_SCALE (data size factor, 1 = 10,000 users, 10,000 events,
100,000 registrations), BENCH_WORKERS ("1,2"), BENCH_CONNECTIONS (32), BENCH_BASELINE (as
--baseline), BENCH_DATABASE_URL (a PostgreSQL server to create the throwaway database on; else
TEST_DATABASE_URL's, else 127.0.0.1:5432 when it answers, else an embedded one).
See bench/README.md for the method.
"""

import argparse
import os
import shutil
from contextlib import ExitStack
from typing import Any

from bench.burst import bursts
from bench.common import (
    BASELINE,
    CEILING,
    CONNECTIONS,
    CURRENT,
    NOTICES,
    REPEATS,
    SCALE,
    SECONDS,
    WORKERS,
    Figure,
    console,
)
from bench.database import database, database_server
from bench.report import growth_label, growth_table, main_label, save, stamp, table
from bench.scenarios import NEW_READS, READS, load, logins, plans
from bench.servers import Baseline, Server, checkout, pool_size, serve
from tests.support import TestDatabaseServer

INSTALL_WRK = """wrk, the HTTP load generator, is not installed. Install it, then run again:
  Debian/Ubuntu: sudo apt-get install wrk
  macOS:         brew install wrk
  Fedora:        sudo dnf install wrk
(wrk is what `make bench` drives: its Lua scripting replays the scenarios' requests.)"""
GROWTH = ("events list", "notification inbox", "register+cancel")


def main_run(server: TestDatabaseServer, baseline: Baseline | None) -> None:
    figures: list[Figure] = []
    apps = [CEILING, BASELINE, CURRENT] if baseline else [CEILING, CURRENT]
    pools: dict[int, int | None] = {}
    with database(server, SCALE) as (url, dsn, data):
        plan = plans(data)
        for workers in WORKERS:
            pools[workers] = pool = pool_size(dsn, workers, services=len(apps) - 1)
            with ExitStack() as stack:
                servers: dict[str, Server] = {
                    app: stack.enter_context(
                        serve(app, workers, url, dsn, baseline=baseline, pool=pool)
                    )
                    for app in apps
                }
                for scenario in (*READS, "mixed 90/10"):
                    console.print(f"[dim]{workers} worker(s): {scenario}[/dim]")
                    figures += load(scenario, servers, plan[scenario], workers, dsn, data)
                current_only = {a: s for a, s in servers.items() if a != BASELINE}
                for scenario in NEW_READS:
                    console.print(f"[dim]{workers} worker(s): {scenario}[/dim]")
                    figures += load(scenario, current_only, plan[scenario], workers, dsn, data)
                console.print(f"[dim]{workers} worker(s): login[/dim]")
                figures += logins(servers, plan["login"], plan["health"], workers)
                console.print(f"[dim]{workers} worker(s): registration burst[/dim]")
                figures += bursts(servers, dsn, data, workers)
    against = f"baseline {baseline.short} and " if baseline else ""
    title = (
        f"event-manager against {against}a raw ceiling: {CONNECTIONS} connections,"
        f" {SECONDS:g} s x {REPEATS} (median; speedup paired per repeat), data x{SCALE:g}"
    )
    console.print(table(figures, title))
    extra: dict[str, Any] = {
        "baseline": {"rev": baseline.rev, "short": baseline.short} if baseline else None,
        "db_pool_size": {str(w): p for w, p in pools.items()},  # null: the services' default
    }
    save(figures, stamp(), extra, title, main_label)


def growth_run(server: TestDatabaseServer) -> None:
    """The listing, the inbox and a registration at 1x and 10x the data, current code only."""
    figures: list[Figure] = []
    workers = max(WORKERS)
    for factor in (1, 10):
        scale = SCALE * factor
        # 10x the data: 10x the users, events and registrations, and 10x each inbox.
        with database(server, scale, notices=NOTICES * factor) as (url, dsn, data):
            plan = plans(data)
            with serve(CURRENT, workers, url, dsn) as current:
                for scenario in GROWTH:
                    console.print(f"[dim]data x{scale:g}: {scenario}[/dim]")
                    (figure,) = load(
                        scenario, {CURRENT: current}, plan[scenario], workers, dsn, data
                    )
                    figure.app, figure.note = f"{factor}x", f"data x{scale:g}"
                    figures.append(figure)
    console.print(table(figures, f"growth runs ({workers} workers)"))
    out, verdicts = growth_table(figures, "1x", "10x")
    out.title = f"{out.title} (x{SCALE * 10:g} against x{SCALE:g}, {workers} workers)"
    console.print(out)
    save(figures, f"{stamp()}-growth", {"growth": verdicts}, str(out.title), growth_label)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--growth", action="store_true", help="1x against 10x data")
    parser.add_argument(
        "--baseline",
        default=os.environ.get("BENCH_BASELINE") or None,
        metavar="REV",
        help="a git revision to measure next to the code at hand (default: BENCH_BASELINE)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        console.print(INSTALL_WRK)
        raise SystemExit(2)
    if args.growth and args.baseline:
        console.print("--growth measures the code at hand only: the baseline is left out")
    baseline = checkout(args.baseline) if args.baseline and not args.growth else None
    server = database_server()
    try:
        growth_run(server) if args.growth else main_run(server, baseline)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
