"""What a run reports: paired ratios, memory and load, as the terminal table, JSON and a chart."""

import json
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.common import (
    BASELINE,
    CEILING,
    CONNECTIONS,
    CURRENT,
    REPEATS,
    RESULTS,
    RSS_GROWTH_LIMIT,
    SCALE,
    SECONDS,
    WARMUP,
    WORKERS,
    Figure,
    console,
)
from tests.support import ROOT

COLOURS = {CEILING: "#bbbbbb", BASELINE: "#e3a04f", CURRENT: "#3572a5"}


def _find(figures: list[Figure], like: Figure, app: str) -> Figure | None:
    return next(
        (
            f
            for f in figures
            if f.app == app and f.scenario == like.scenario and f.workers == like.workers
        ),
        None,
    )


def paired(figure: Figure, other: Figure | None) -> float | None:
    """The median over repeats of figure's req/s over other's in the same repeat."""
    if other is None:
        return None
    theirs = {r["repeat"]: r["rps"] for r in other.runs}
    ratios = [r["rps"] / theirs[r["repeat"]] for r in figure.runs if theirs.get(r["repeat"])]
    return statistics.median(ratios) if ratios else None


def speedup(figure: Figure, figures: list[Figure]) -> float | None:
    """The current code's req/s over the baseline's, paired per repeat."""
    return paired(figure, _find(figures, figure, BASELINE)) if figure.app == CURRENT else None


def ceiling_ratio(figure: Figure, figures: list[Figure]) -> float | None:
    return None if figure.app == CEILING else paired(figure, _find(figures, figure, CEILING))


def rss(figure: Figure) -> tuple[float | None, float | None]:
    """The mean resident MiB of a worker after the last repeat, and its growth since the first."""
    means = [statistics.mean(r["rss_kib"]) / 1024 for r in figure.runs if r.get("rss_kib")]
    if not means:
        return None, None
    return means[-1], means[-1] / means[0] - 1


def rss_over_run(figures: list[Figure]) -> dict[str, dict[str, float]]:
    """Each app's (and worker count's) mean worker MiB after its first run and after its last,
    over every scenario: memory a leak would add up across the whole run."""
    out: dict[str, dict[str, float]] = {}
    for app, workers in dict.fromkeys((f.app, f.workers) for f in figures):
        means = [
            statistics.mean(r["rss_kib"]) / 1024
            for f in figures
            if (f.app, f.workers) == (app, workers)
            for r in f.runs
            if r.get("rss_kib")
        ]
        if means:
            out[f"{app} {workers}w"] = {"first_mib": means[0], "last_mib": means[-1]}
    return out


def load_range(figure: Figure) -> tuple[float, float] | None:
    """The lowest and highest 1-minute load average seen before and after each run."""
    ones = [x for r in figure.runs if "load" in r for x in (r["load"][0], r["load"][3])]
    return (min(ones), max(ones)) if ones else None


def _ratio(value: float | None, style: str) -> str:
    if value is None:
        return ""
    return f"{value:.2f}x" if style == "x" else f"{value:.0%}"


def table(figures: list[Figure], title: str) -> Table:
    seen = [x for f in figures if (span := load_range(f)) for x in span]
    out = Table(title=title)
    if seen:
        out.caption = (
            f"load average (1 min) over the runs: {min(seen):.1f}-{max(seen):.1f}"
            f" on {os.cpu_count()} CPUs; RSS growth in red: over {RSS_GROWTH_LIMIT:.0%}"
            " from the first repeat to the last\nworker RSS from the first run to the last: "
            + ", ".join(
                f"{key} {m['first_mib']:.0f}->{m['last_mib']:.0f} MiB"
                for key, m in rss_over_run(figures).items()
            )
        )
    columns = ("scenario", "app", "w", "req/s", "p50 ms", "p99 ms", "errors", "speedup",
               "/ceiling", "RSS MiB", "RSS growth", "load 1m")  # fmt: skip
    for column in columns:
        out.add_column(column, justify="left" if column in ("scenario", "app") else "right")
    out.add_column("note")
    for f in figures:
        memory, growth = rss(f)
        loads = load_range(f)
        grew = growth is not None and growth > RSS_GROWTH_LIMIT
        out.add_row(
            f.scenario,
            f.app,
            str(f.workers),
            f"{f.rps:,.0f}",
            f"{f.p50_ms:.1f}",
            f"{f.p99_ms:.1f}",
            str(f.errors),
            _ratio(speedup(f, figures), "x"),
            _ratio(ceiling_ratio(f, figures), "%"),
            f"{memory:.0f}" if memory is not None else "",
            f"[red]{growth:+.0%}[/red]" if grew else f"{growth:+.0%}" if growth is not None else "",
            f"{loads[0]:.1f}-{loads[1]:.1f}" if loads else "",
            f.note,
        )
    return out


def _derived(f: Figure, figures: list[Figure]) -> dict[str, Any]:
    memory, growth = rss(f)
    return {
        "speedup": speedup(f, figures),
        "ceiling_ratio": ceiling_ratio(f, figures),
        "rss_mib": memory,
        "rss_growth": growth,
        "rss_grew": growth is not None and growth > RSS_GROWTH_LIMIT,
        "load_1m": load_range(f),
    }


def save(
    figures: list[Figure],
    stem: str,
    extra: dict[str, Any],
    title: str,
    label: Callable[[Figure, list[Figure]], str | None],
) -> None:
    """bench/results/<stem>.json (every run, the settings, the machine) and <stem>.png."""
    RESULTS.mkdir(exist_ok=True)
    json_path, png_path = RESULTS / f"{stem}.json", RESULTS / f"{stem}.png"
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "system": platform.platform(), "load_at_end": os.getloadavg()},
        "settings": {"seconds": SECONDS, "warmup": WARMUP, "repeats": REPEATS, "scale": SCALE,
                     "connections": CONNECTIONS, "workers": WORKERS},
        **extra,
        "rss_over_run": rss_over_run(figures),
        "figures": [{**asdict(f), **_derived(f, figures)} for f in figures],
    }  # fmt: skip
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    chart(figures, png_path, title, label)
    console.print(f"wrote {json_path.relative_to(ROOT)} and {png_path.relative_to(ROOT)}")


def main_label(figure: Figure, figures: list[Figure]) -> str | None:
    """Over the current code's bar: its speedup over the baseline, else its share of the ceiling."""
    if figure.app != CURRENT:
        return None
    gain = speedup(figure, figures)
    share = ceiling_ratio(figure, figures)
    return f"{gain:.2f}x" if gain is not None else f"{share:.0%}" if share is not None else None


def chart(
    figures: list[Figure],
    path: Path,
    title: str,
    label: Callable[[Figure, list[Figure]], str | None],
) -> None:
    """req/s of every app side by side for each scenario (and worker count), p99 below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((f.scenario, f.workers) for f in figures))
    apps = list(dict.fromkeys(f.app for f in figures))
    width = 0.8 / len(apps)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(10, len(groups) * 1.1), 9))
    for n, app in enumerate(apps):
        shift = (n - (len(apps) - 1) / 2) * width
        mine = {(f.scenario, f.workers): f for f in figures if f.app == app}
        xs = [i + shift for i, g in enumerate(groups) if g in mine]
        bars = [mine[g] for g in groups if g in mine]
        colour = COLOURS.get(app)
        top.bar(xs, [f.rps for f in bars], width, label=app, color=colour)
        bottom.bar(xs, [f.p99_ms for f in bars], width, label=f"{app} p99", color=colour)
        for x, f in zip(xs, bars, strict=True):
            text = label(f, figures)
            if text:
                top.annotate(text, (x, f.rps), ha="center", va="bottom", fontsize=7)
    labels = [f"{scenario} ({workers}w)" for scenario, workers in groups]
    rates = [f.rps for f in figures if f.rps > 0]
    spread = max(rates) / min(rates) > 20 if rates else False
    if spread:  # logins (a few a second) next to reads (thousands)
        top.set_yscale("log")
    top.set_ylabel("requests/s (median of repeats" + (", log)" if spread else ")"))
    top.set_title(title, fontsize=9)
    top.legend()
    bottom.axhline(50, color="red", linewidth=0.8, linestyle="--", label="50 ms")
    bottom.set_yscale("log")
    bottom.set_ylabel("p99 ms (log)")
    bottom.legend(fontsize=7)
    for axes in (top, bottom):
        axes.set_xticks(range(len(groups)), labels, rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def growth_table(figures: list[Figure], small: str, big: str) -> tuple[Table, dict[str, Any]]:
    """Each scenario at the small and the big data size: p99 and throughput within 1.5x?"""
    out = Table(title=f"cost of growth: data {big} against {small}")
    for column in ("scenario", f"req/s {small}", f"req/s {big}", f"p99 ms {small}",
                   f"p99 ms {big}", "p99 ratio", "req/s ratio", "within 1.5x"):  # fmt: skip
        out.add_column(column)
    verdicts: dict[str, Any] = {}
    for scenario in dict.fromkeys(f.scenario for f in figures):
        one = next(f for f in figures if f.scenario == scenario and f.app == small)
        ten = next(f for f in figures if f.scenario == scenario and f.app == big)
        p99, slower = ten.p99_ms / one.p99_ms, one.rps / ten.rps
        ok = max(p99, slower) <= 1.5
        verdicts[scenario] = {"p99_ratio": p99, "throughput_ratio": slower, "within_1_5x": ok}
        out.add_row(
            scenario, f"{one.rps:,.0f}", f"{ten.rps:,.0f}", f"{one.p99_ms:.1f}",
            f"{ten.p99_ms:.1f}", f"{p99:.2f}", f"{slower:.2f}", "yes" if ok else "[red]NO[/red]",
        )  # fmt: skip
    return out, verdicts


def growth_label(figure: Figure, figures: list[Figure]) -> str | None:
    """Over the bigger data's bar: its p99 against the smaller one's."""
    runs = [f for f in figures if f.scenario == figure.scenario and f.workers == figure.workers]
    if figure is not runs[-1] or len(runs) < 2:
        return None
    return f"p99 {figure.p99_ms / runs[0].p99_ms:.2f}x"


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")
