"""Images/s against concurrency, drawn with matplotlib (``pip install 'imgfetch[plot]'``).

Only the object-oriented API is used (a Figure and its Agg canvas, no pyplot), so drawing a
chart never changes the backend of a notebook or script that imports imgfetch.
"""
from __future__ import annotations

import importlib
import math
import platform
from pathlib import Path
from typing import Any

from ..errors import ImgFetchError
from ..options import usable_cpus
from .advice import Advice, gains
from .plan import BenchReport, Row, runs_per_row

# --chart-size bounds, in pixels: smaller is unreadable, larger is a mistake.
MIN_WIDTH, MIN_HEIGHT, MAX_SIDE = 300, 200, 8000
DPI = 100                 # pixels per inch: --chart-size is in pixels, matplotlib sizes are in inches
# The engine's series, one colour each (matplotlib's tab10 without red, which marks the classic pool and the pick).
COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
CLASSIC_COLOUR = "#d62728"    # the classic pool, and the recommended point's ring and label
PICK_COLOUR = CLASSIC_COLOUR
SEQUENTIAL_COLOUR = "black"
IDEAL_COLOUR = "#888888"      # also the outline of the defaults' label
DEFAULTS_TEXT_COLOUR = "#444444"
GAINS_FACE, GAINS_EDGE = "#f4f4f4", "#cccccc"

CAP_SIZE, BAR_WIDTH, MARKER_SIZE = 4, 1.2, 7   # error bars: cap length, bar line width, point size (points)
ENGINE_LINE, CLASSIC_LINE, IDEAL_LINE = 2, 1.5, 1.5  # line widths (points)
DODGE = 0.05             # series sharing a concurrency sit this many powers of 2 apart
X_MARGIN_LOW = 0.75      # the x axis starts here: room left of concurrency 1
X_MARGIN_HIGH = 1.4      # ... and ends this factor past the largest concurrency
Y_MARGIN_LOW = 1.6       # the y axis starts this factor below the lowest run
Y_HEADROOM = 2.2         # ... and ends this factor above the highest: room for the legend
IDEAL_STEPS = 8          # points of the ideal line per doubling of concurrency
RING_AREA = 420          # the ring around the recommended point (points squared)
RING_WIDTH = 2.5
PICK_OFFSET = -80        # labels sit this far below their point (points): the plot is empty under the plateau
DEFAULTS_OFFSET = -130   # ... the defaults' further down, so the two never overlap
PICK_FONT, DEFAULTS_FONT, GAINS_FONT, TITLE_FONT, LEGEND_FONT = 10, 9, 10, 11, 9
LABEL_ZORDER = 6         # the labels above the ring, the ring above the series
RING_ZORDER = 5
PICK_BOX_ALPHA = 0.95
LEGEND_ALPHA = 0.9
GRID_ALPHA, MINOR_GRID_ALPHA = 0.35, 0.12
GAINS_CORNER = (0.99, 0.02)  # the gains line: bottom right, in axes fractions
Y_TICK_DECADES = range(-1, 7)  # y tick candidates from 0.1 to 5 million images/s: 1, 2, 5 per decade
Y_TICK_STEPS = (1, 2, 5)


def chart_size(text: str) -> tuple[int, int]:
    """'1200x800' -> (1200, 800); a ValueError naming --chart-size otherwise, and a one-line ImgFetchError when
    matplotlib (the plot extra) is not there to draw it."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--chart-size takes WIDTHxHEIGHT like 1200x800, got {text!r}") from None
    if not (MIN_WIDTH <= width <= MAX_SIDE and MIN_HEIGHT <= height <= MAX_SIDE):
        raise ValueError(f"--chart-size must be between {MIN_WIDTH}x{MIN_HEIGHT} and {MAX_SIDE}x{MAX_SIDE}, "
                         f"got {text!r}")
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        raise ImgFetchError("--chart needs matplotlib: pip install 'imgfetch[plot]'") from None
    return width, height


def chart_title(report: BenchReport) -> str:
    """Three lines: what, the latency model and image count, how it was measured and on what machine."""
    s = report.settings
    if s.urls is None:
        model = (f"log-normal latency (median {s.latency_ms:g} ms, sigma {s.latency_spread:g})" if s.latency_spread
                 else f"fixed latency ({s.latency_ms:g} ms)")
        where = f"built-in server: {model}, {report.url_count} images"
    else:
        where = f"{Path(s.urls).name}: {report.url_count} URLs"
    return (f"imgfetch bench: images/s against concurrency\n{where}\n{runs_per_row(s.repeat)} per point, each "
            f"counting {s.seconds:g} s after a {s.ramp:g} s start; {usable_cpus()} CPUs, "
            f"Python {platform.python_version()}, {platform.system()}")


def draw_chart(report: BenchReport, advice: Advice, path: str | Path, size: tuple[int, int]) -> None:
    """One series per threads setting, the classic pool, the sequential loop, the ideal line, the pick."""
    from matplotlib.figure import Figure

    width, height = size
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    classic = sorted(report.classic, key=lambda r: r.concurrency)
    _draw_engine(ax, report.engine)
    _draw_baselines(ax, classic, report.sequential)
    top_x = _set_limits(ax, [*report.engine, *classic, report.sequential])
    _draw_ideal(ax, report.sequential, top_x)
    _mark_picks(ax, advice)
    _write_gains(ax, advice, report)
    _set_ticks(ax, top_x)
    _label(ax, report)
    fig.savefig(path, format="png", dpi=DPI)


def _errorbar(ax: Any, rows: list[Row], dodge: float = 1.0, **style: Any) -> None:
    xs = [row.concurrency * dodge for row in rows]  # series side by side where they share a concurrency
    ys = [row.median for row in rows]
    spread = [[row.median - row.low for row in rows], [row.high - row.median for row in rows]]
    ax.errorbar(xs, ys, yerr=spread, capsize=CAP_SIZE, elinewidth=BAR_WIDTH, markersize=MARKER_SIZE, **style)


def _draw_engine(ax: Any, engine: list[Row]) -> None:
    """One line per (start method, threads), nudged sideways so equal concurrencies do not overlap."""
    methods = sorted({row.start_method for row in engine if row.start_method})
    series = sorted({(row.start_method, row.threads) for row in engine})
    for index, (method, threads) in enumerate(series):
        rows = sorted((r for r in engine if (r.start_method, r.threads) == (method, threads)),
                      key=lambda r: r.concurrency)
        name = f"imgfetch, {threads} threads per process" if threads > 1 else "imgfetch, 1 thread per process"
        _errorbar(ax, rows, dodge=2 ** ((index - (len(series) - 1) / 2) * DODGE), marker="o", linewidth=ENGINE_LINE,
                  color=COLOURS[index % len(COLOURS)], label=name + (f" ({method})" if len(methods) > 1 else ""))


def _draw_baselines(ax: Any, classic: list[Row], seq: Row) -> None:
    """The classic pool (dashed, one point per pool size) and the sequential loop (one point)."""
    if classic:
        name = "ProcessPoolExecutor(N).map" if len(classic) > 1 else classic[0].label
        _errorbar(ax, classic, marker="s", linewidth=CLASSIC_LINE, linestyle="--", color=CLASSIC_COLOUR, label=name)
    _errorbar(ax, [seq], marker="D", linestyle="none", color=SEQUENTIAL_COLOUR, label="sequential requests.get loop")


def _set_limits(ax: Any, rows: list[Row]) -> int:
    """Fit the axes to every row's runs; return the largest concurrency."""
    top_x = max(row.concurrency for row in rows)
    ax.set_xlim(X_MARGIN_LOW, top_x * X_MARGIN_HIGH)
    ax.set_ylim(min((row.low for row in rows if row.low > 0), default=1.0) / Y_MARGIN_LOW,
                max((row.high for row in rows), default=1.0) * Y_HEADROOM)
    return top_x


def _draw_ideal(ax: Any, seq: Row, top_x: int) -> None:
    """The sequential rate times the concurrency, cut off where it leaves the plot."""
    if seq.median <= 0:
        return
    xs = [2 ** (k / IDEAL_STEPS) for k in range(0, int(IDEAL_STEPS * math.log2(top_x * X_MARGIN_HIGH)) + 2)]
    ax.plot(xs, [seq.median * x for x in xs], color=IDEAL_COLOUR, linestyle=":", linewidth=IDEAL_LINE,
            label="ideal: sequential x concurrency", scalex=False, scaley=False, clip_on=True)


def _mark_picks(ax: Any, advice: Advice) -> None:
    """Ring and label the recommendation's point; label get's defaults when they differ."""
    verdict = advice.verdict
    rec = verdict.pick
    # As the table marks it: "recommended" only when one row is fastest beyond noise.
    name = "recommended" if verdict.crowned else f"pick of the {len(verdict.ties)} tied"
    label = f"{name}: --workers {rec.workers} --threads {rec.threads}"
    ax.scatter([rec.concurrency], [rec.median], s=RING_AREA, facecolors="none", edgecolors=PICK_COLOUR,
               linewidths=RING_WIDTH, zorder=RING_ZORDER, label=label + (" (get's defaults)" if rec.is_default else ""))
    _label_point(ax, rec, f"{name}: {rec.short}, {rec.median:.0f} images/s", PICK_OFFSET, PICK_FONT,
                 PICK_COLOUR, PICK_COLOUR, PICK_BOX_ALPHA)
    d = verdict.defaults
    if d is not None and d is not rec:
        _label_point(ax, d, f"get's defaults {d.short}: {d.median:.0f} images/s", DEFAULTS_OFFSET, DEFAULTS_FONT,
                     DEFAULTS_TEXT_COLOUR, IDEAL_COLOUR)


def _label_point(ax: Any, row: Row, text: str, offset: int, fontsize: int, colour: str, edge: str,
                 alpha: float | None = None) -> None:
    """A label ``offset`` points below the row's point, boxed and with an arrow up to it in the ``edge`` colour."""
    box = dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor=edge, alpha=alpha)
    ax.annotate(text, (row.concurrency, row.median), xytext=(0, offset), textcoords="offset points", ha="center",
                va="top", fontsize=fontsize, color=colour, bbox=box, arrowprops=dict(arrowstyle="->", color=edge),
                zorder=LABEL_ZORDER)


def _write_gains(ax: Any, advice: Advice, report: BenchReport) -> None:
    """Bottom right: how many times the baselines the best row is."""
    if report.sequential.median <= 0:
        return
    ax.text(*GAINS_CORNER, f"imgfetch at its best ({advice.best.short}): " + ", ".join(gains(report, advice.best)),
            transform=ax.transAxes, ha="right", va="bottom", fontsize=GAINS_FONT,
            bbox=dict(boxstyle="round,pad=0.4", facecolor=GAINS_FACE, edgecolor=GAINS_EDGE))


def _set_ticks(ax: Any, top_x: int) -> None:
    """Powers of 2 along x; 1, 2, 5 per decade along y, written out in full."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ticks = [2 ** k for k in range(0, int(math.log2(top_x)) + 1)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(t) for t in ticks])
    low, high = ax.get_ylim()
    yticks = [m * 10 ** k for k in Y_TICK_DECADES for m in Y_TICK_STEPS if low <= m * 10 ** k <= high]
    ax.yaxis.set_major_locator(FixedLocator(yticks))
    ax.set_yticklabels([f"{t:g}" for t in yticks])


def _label(ax: Any, report: BenchReport) -> None:
    """Axis names, the title, the grid and the legend."""
    capped = any(row.capped for row in report.rows)
    ax.set_xlabel("concurrency: downloads in flight (workers x threads" + (", capped by --per-host" if capped else "")
                  + "), log scale")
    ax.set_ylabel("images/s, log scale (median; bars: min-max of the runs)")
    ax.set_title(chart_title(report), fontsize=TITLE_FONT)
    ax.grid(True, which="major", alpha=GRID_ALPHA)
    ax.grid(True, which="minor", axis="y", alpha=MINOR_GRID_ALPHA)
    ax.legend(loc="upper left", fontsize=LEGEND_FONT, framealpha=LEGEND_ALPHA)
