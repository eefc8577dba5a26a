"""Images/s against concurrency, drawn with matplotlib (``pip install 'imgfetch[plot]'``).

Only the object-oriented API is used (a Figure and its Agg canvas, no pyplot), so drawing a
chart never changes the backend of a notebook or script that imports imgfetch.
"""
from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

from .advice import Advice
from ..errors import ImgFetchError
from ..options import usable_cpus
from .plan import BenchReport, Row

COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def require_matplotlib() -> None:
    """A one-line error when the plot extra is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImgFetchError("--chart needs matplotlib: pip install 'imgfetch[plot]'") from None


def parse_chart_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--chart-size takes WIDTHxHEIGHT like 1200x800, got {text!r}") from None
    if not (300 <= width <= 8000 and 200 <= height <= 8000):
        raise ValueError(f"--chart-size must be between 300x200 and 8000x8000, got {text!r}")
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
    runs = f"{s.repeat} run{'s' if s.repeat > 1 else ''}" if s.repeat <= 2 else f"2-{s.repeat} runs"
    return (f"imgfetch bench: images/s against concurrency\n{where}\n{runs} per point, each counting {s.seconds:g} s "
            f"after a {s.ramp:g} s start; {usable_cpus()} CPUs, Python {platform.python_version()}, {platform.system()}")


def _errorbar(ax: Any, rows: list[Row], dodge: float = 1.0, **style: Any) -> None:
    xs = [row.concurrency * dodge for row in rows]  # series side by side where they share a concurrency
    ys = [row.median for row in rows]
    spread = [[row.median - row.low for row in rows], [row.high - row.median for row in rows]]
    ax.errorbar(xs, ys, yerr=spread, capsize=4, elinewidth=1.2, markersize=7, **style)


def draw_chart(report: BenchReport, advice: Advice, path: str | Path, size: tuple[int, int]) -> None:
    """One series per threads setting, the classic pool, the sequential loop, the ideal line, the pick."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    width, height = size
    fig = Figure(figsize=(width / 100, height / 100), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    engine = report.engine
    methods = sorted({row.start_method for row in engine if row.start_method})
    series = sorted({(row.start_method, row.threads) for row in engine})
    for index, (method, threads) in enumerate(series):
        rows = sorted((r for r in engine if (r.start_method, r.threads) == (method, threads)),
                      key=lambda r: r.concurrency)
        name = f"imgfetch, {threads} threads per process" if threads > 1 else "imgfetch, 1 thread per process"
        _errorbar(ax, rows, dodge=2 ** ((index - (len(series) - 1) / 2) * 0.05), marker="o", linewidth=2,
                  color=COLOURS[index % len(COLOURS)], label=name + (f" ({method})" if len(methods) > 1 else ""))
    classic = sorted(report.classic, key=lambda r: r.concurrency)
    if classic:
        name = "ProcessPoolExecutor(N).map" if len(classic) > 1 else classic[0].label
        _errorbar(ax, classic, marker="s", linewidth=1.5, linestyle="--", color="#d62728", label=name)
    seq = report.sequential
    _errorbar(ax, [seq], marker="D", linestyle="none", color="black", label="sequential requests.get loop")
    everything = [*engine, *classic, seq]
    lows = [row.low for row in everything if row.low > 0] or [1.0]
    highs = [row.high for row in everything] or [1.0]
    top_x = max(row.concurrency for row in everything)
    ax.set_xlim(0.75, top_x * 1.4)
    ax.set_ylim(min(lows) / 1.6, max(highs) * 2.2)  # headroom for the legend
    if seq.median > 0:  # ideal: the sequential rate times the concurrency, cut off where it leaves the plot
        xs = [2 ** (k / 8) for k in range(0, int(8 * math.log2(top_x * 1.4)) + 2)]
        ax.plot(xs, [seq.median * x for x in xs], color="#888888", linestyle=":", linewidth=1.5,
                label="ideal: sequential x concurrency", scalex=False, scaley=False, clip_on=True)
    rec = advice.recommended
    label = f"recommended: --workers {rec.workers} --threads {rec.threads}"
    ax.scatter([rec.concurrency], [rec.median], s=420, facecolors="none", edgecolors="#d62728", linewidths=2.5,
               zorder=5, label=label + (" (get's defaults)" if rec.is_default else ""))
    box = dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#d62728", alpha=0.95)
    # Labels go below the points: under the plateau of the large sizes the plot is empty.
    ax.annotate(f"recommended {rec.short}: {rec.median:.0f} images/s", (rec.concurrency, rec.median),
                xytext=(0, -80), textcoords="offset points", ha="center", va="top", fontsize=10, color="#d62728",
                bbox=box, arrowprops=dict(arrowstyle="->", color="#d62728"), zorder=6)
    if advice.defaults is not None and advice.defaults is not rec:
        d = advice.defaults
        ax.annotate(f"get's defaults {d.short}: {d.median:.0f} images/s", (d.concurrency, d.median),
                    xytext=(0, -130), textcoords="offset points", ha="center", va="top", fontsize=9, color="#444444",
                    bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#888888"),
                    arrowprops=dict(arrowstyle="->", color="#888888"), zorder=6)
    if seq.median > 0:
        gains = [f"{advice.best.median / seq.median:.0f}x the sequential loop"]
        gains += [f"{advice.best.median / row.median:.1f}x {row.label}" for row in classic if row.median > 0]
        ax.text(0.99, 0.02, f"imgfetch at its best ({advice.best.short}): " + ", ".join(gains),
                transform=ax.transAxes, ha="right", va="bottom", fontsize=10,
                bbox=dict(boxstyle="round,pad=0.4", facecolor="#f4f4f4", edgecolor="#cccccc"))
    ticks = [2 ** k for k in range(0, int(math.log2(top_x)) + 1)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(t) for t in ticks])
    low, high = ax.get_ylim()
    yticks = [m * 10 ** k for k in range(-1, 7) for m in (1, 2, 5) if low <= m * 10 ** k <= high]
    ax.yaxis.set_major_locator(FixedLocator(yticks))
    ax.set_yticklabels([f"{t:g}" for t in yticks])
    ax.set_xlabel("concurrency: downloads in flight (workers x threads), log scale")
    ax.set_ylabel("images/s, log scale (median; bars: min-max of the runs)")
    ax.set_title(chart_title(report), fontsize=11)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", axis="y", alpha=0.12)
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9)
    fig.savefig(path, format="png", dpi=100)
