"""The chart of GET /events/{id}/stats.png: an event's registrations per day, added up.

Drawn on a matplotlib Figure of its own with the Agg renderer, never through pyplot: pyplot keeps
global state (the current figure), a Figure does not, so threads may each draw one at a time.
"""

import io
import math
import textwrap
from collections.abc import Sequence
from datetime import date
from itertools import accumulate

from api.insights.models import EventStats

WIDTH_INCHES = 8.0
HEIGHT_INCHES = 4.5
DPI = 100  # 800 x 450 pixels
TITLE_WIDTH = 70  # characters per title line; two lines at most
MARKERS_UP_TO = 45  # days: beyond, the points are too close to mark each one
DATE_TICKS = 8  # at most

REGISTERED_COLOR = "#1f77b4"
NET_COLOR = "#2ca02c"
CAPACITY_COLOR = "#d62728"


def _title(event_title: str) -> str:
    lines = textwrap.wrap(f"Registrations: {event_title}", TITLE_WIDTH)
    if len(lines) > 2:
        lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), TITLE_WIDTH, placeholder=" …")]
    return "\n".join(lines)


def _date_label(days: Sequence[date], position: float) -> str:
    """The tick label at `position` on the x axis, where day i of the timeline is at i."""
    index = round(position)
    return days[index].isoformat() if 0 <= index < len(days) else ""


def stats_png(stats: EventStats, *, title: str, timezone: str) -> bytes:
    """The chart as PNG: cumulative registrations made, cumulative registrations net of
    cancellations (those still registered, seated or waiting), and the capacity if any, by day
    in the event's time zone. With no registration, empty axes that say so."""
    # matplotlib takes about half a second to import: loaded by the first chart, on the worker
    # thread that draws it, rather than at startup by every process.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    # Titles are user text: a "$" must not start TeX math (which can fail to parse).
    axes.set_title(_title(title), parse_math=False)
    axes.set_xlabel(f"Date ({timezone})", parse_math=False)
    axes.set_ylabel("Registrations (cumulative)")
    axes.grid(visible=True, alpha=0.3)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))

    days = [day.date for day in stats.timeline]
    registered = list(accumulate(day.registered for day in stats.timeline))
    net = list(accumulate(day.registered - day.cancelled for day in stats.timeline))
    highest = max([*registered, stats.capacity or 0, 1])
    if days:
        # Day i of the timeline at x = i, labelled with its date: the timeline has every day.
        positions = list(range(len(days)))
        marker = "o" if len(days) <= MARKERS_UP_TO else None
        # Not clipped: a point at 0 shows whole on the x axis.
        axes.plot(
            positions,
            registered,
            color=REGISTERED_COLOR,
            marker=marker,
            clip_on=False,
            label="Registered",
        )
        axes.plot(
            positions,
            net,
            color=NET_COLOR,
            marker=marker,
            clip_on=False,
            label="Still registered (net of cancellations)",
        )
        axes.set_xlim(-0.5, len(days) - 0.5)
        step = math.ceil(len(days) / DATE_TICKS)
        axes.xaxis.set_major_locator(FixedLocator(positions[::step]))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _date_label(days, x)))
    else:
        axes.set_xticks([])
        axes.text(
            0.5,
            0.5,
            "No registrations yet",
            transform=axes.transAxes,
            ha="center",
            va="center",
            fontsize="large",
            color="0.4",
        )
    if stats.capacity is not None:
        axes.axhline(
            stats.capacity,
            color=CAPACITY_COLOR,
            linestyle="--",
            label=f"Capacity ({stats.capacity})",
        )
    axes.set_ylim(0, highest * 1.1)
    if axes.get_legend_handles_labels()[0]:
        # Below the axes, where it can hide no line.
        figure.legend(loc="outside lower center", ncols=3, frameon=False)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
