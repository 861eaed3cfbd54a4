"""The request plans, wrk, and the turns the apps take under the same load.

Each repeat runs every app once, back to back, and the app that goes first moves on by one each
repeat (ceiling, baseline, current; then baseline, current, ceiling; ...), so that noise from
other processes and any drift of the machine hit all of them. Every run records its repeat, so
that figures can be paired within a repeat, the load average before and after it, and each
worker's resident memory after it.
"""

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    CHEAP_CLIENTS,
    CONNECTIONS,
    LOGIN_CLIENTS,
    LUA,
    PASSWORD,
    REPEATS,
    SECONDS,
    WARMUP,
    Data,
    Figure,
)
from bench.database import reset_toggles
from bench.servers import Server

Request = tuple[str, str, str | None, str | None]  # method, path, token, form body
Run = Callable[[Server, float], list[dict[str, Any]]]  # one app's results of one turn

READS = ("events list", "event by id", "users/me", "staff user list", "notification inbox")
# Reads a baseline may not answer (a revision from before API tokens would refuse them all).
NEW_READS = ("users/me (API token)",)
WRITES = {"mixed 90/10", "register+cancel"}


def write_plan(lines: Sequence[Request]) -> Path:
    plan = tempfile.NamedTemporaryFile("w", prefix="bench-plan-", suffix=".tsv", delete=False)
    with plan:
        for method, path, token, body in lines:
            plan.write(f"{method}\t{path}\t{token or '-'}\t{body or '-'}\n")
    return Path(plan.name)


def plans(data: Data) -> dict[str, Path]:
    """The request mix of each wrk scenario."""
    filters = ["", "&event_type=WORKSHOP", "&has_spots=true", "&event_type=NETWORKING&page=2"]
    listing = [("GET", f"/api/v1/events?size=20{f}", None, None) for f in filters]
    by_id = [("GET", f"/api/v1/events/{e}", None, None) for e in data.event_ids]
    me = [("GET", "/api/v1/users/me", t, None) for t in data.tokens]
    me_api = [("GET", "/api/v1/users/me", t, None) for t in data.api_tokens]
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
    events = data.toggle_events
    pairs = [(t, events[i % len(events)]) for i, t in enumerate(data.tokens[:400])]
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
        "users/me (API token)": write_plan(me_api),
        "staff user list": write_plan(users),
        "notification inbox": write_plan(inbox),
        "mixed 90/10": write_plan(mixed),
        "register+cancel": write_plan(toggles),
        "login": write_plan(login),
        "health": write_plan([("GET", "/health", None, None)]),
    }


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


def take_turns(
    servers: dict[str, Server], run: Run, *, warm_up: bool = True
) -> dict[str, list[list[dict[str, Any]]]]:
    """A warm-up turn (WARMUP seconds, not recorded), then REPEATS turns of SECONDS each.

    Returns each app's results, turn by turn.
    """
    apps = list(servers)
    results: dict[str, list[list[dict[str, Any]]]] = {app: [] for app in apps}
    for repeat in range(-1 if warm_up else 0, REPEATS):
        first = max(repeat, 0) % len(apps)
        for app in apps[first:] + apps[:first]:
            before = os.getloadavg()
            outcome = run(servers[app], WARMUP if repeat < 0 else SECONDS)
            after = os.getloadavg()
            if repeat < 0:
                continue
            rss = servers[app].worker_rss_kib()
            for result in outcome:
                result.update(
                    repeat=repeat,
                    load=[round(x, 2) for x in (*before, *after)],
                    rss_kib=rss,
                )
            results[app].append(outcome)
    return results


def load(
    scenario: str, servers: dict[str, Server], plan: Path, workers: int, dsn: str, data: Data
) -> list[Figure]:
    """CONNECTIONS wrk clients replaying the plan, the apps taking turns."""

    def run(server: Server, seconds: float) -> list[dict[str, Any]]:
        if scenario in WRITES:
            asyncio.run(reset_toggles(dsn, data.toggle_events))
        result = finish(wrk(server.base, plan, seconds=seconds, connections=CONNECTIONS))
        time.sleep(0.5)  # the requests wrk left in flight are answered before the next run
        return [result]

    turns = take_turns(servers, run)
    return [median_figure(scenario, app, workers, [t[0] for t in r]) for app, r in turns.items()]


def logins(servers: dict[str, Server], login: Path, health: Path, workers: int) -> list[Figure]:
    """LOGIN_CLIENTS clients log in without pause; meanwhile CHEAP_CLIENTS GET /health."""

    def run(server: Server, seconds: float) -> list[dict[str, Any]]:
        hashing = wrk(server.base, login, seconds=seconds, connections=LOGIN_CLIENTS)
        cheap = wrk(server.base, health, seconds=seconds, connections=CHEAP_CLIENTS)
        return [finish(hashing), finish(cheap)]

    turns = take_turns(servers, run)
    figures = [
        median_figure(scenario, app, workers, [t[index] for t in r])
        for index, scenario in enumerate(("login", "GET /health during logins"))
        for app, r in turns.items()
    ]
    for f in figures:
        f.note = f"{LOGIN_CLIENTS} clients log in, {CHEAP_CLIENTS} GET /health"
    return figures
