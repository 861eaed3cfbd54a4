"""The bench's settings (from the environment), its console, and the records its modules share."""

import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from tests.support import ROOT

SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "2"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
WORKERS = [int(w) for w in os.environ.get("BENCH_WORKERS", "1,2").split(",")]
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
TOKEN_MINUTES = 24 * 60
PASSWORD = "demo-password-123"  # api.demo.DEMO_PASSWORD
BENCH_USERS = 1000
NOTICES = 40  # a bench user's inbox at 1x the data
BURST_USERS, BURST_SEATS = 200, 50
LOGIN_CLIENTS, CHEAP_CLIENTS = 8, 4
COUNT_CAP = 10_000  # API.md, Conventions: `total` is exact up to this many matches
RSS_GROWTH_LIMIT = 0.10
RESULTS = ROOT / "bench" / "results"
LUA = ROOT / "bench" / "plan.lua"
# Wide enough for the table when the output is a file or a narrow terminal.
console = Console(width=max(170, shutil.get_terminal_size().columns))

# The apps in the order of a run's first turn: the ceiling, the last release, the code at hand.
CEILING, BASELINE, CURRENT = "ceiling", "baseline", "current"


@dataclass
class Figure:
    """One app's figures for one scenario at one worker count: medians over the repeats.

    Each run holds wrk's (or the burst's) figures and `repeat` (0-based, for pairing with the
    other apps' runs), `load` (os.getloadavg() before and after) and `rss_kib` (each worker's
    resident memory right after the run).
    """

    scenario: str
    app: str
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
    api_tokens: list[str]  # an API token (users:read) of each of the users holding `tokens`
    emails: list[str]
    staff_token: str
    event_ids: list[str]
    toggle_events: list[str]
