"""What ``imgfetch bench`` prints: the table of rows, its legend, the per-PID spread and the advice."""
from __future__ import annotations

import textwrap

from ..report.summary import counted
from .advice import Advice
from .measure import SEQUENTIAL_SPAN
from .plan import CLASSIC, ENGINE, SEQUENTIAL, BenchReport, Row, runs_per_row

WIDTH = 115               # the report's lines wrap here: a wide terminal, as the table is wide
LEGEND_INDENT = 10        # a legend line's continuation starts under its explanation
ONE_DECIMAL_BELOW = 100  # images/s under this get one decimal: 9.5, 95.3, then 953


def format_report(report: BenchReport, advice: Advice, every_pid: bool = False, width: int = WIDTH) -> str:
    """The whole printout: table, legend, per-PID spread, then the advice wrapped to ``width``."""
    advice_lines = [textwrap.fill(line, width, subsequent_indent="  ") for line in [*advice.lines, advice.recommendation]]
    return "\n".join([format_table(report, advice), "", format_legend(report, width), "",
                      format_pids(report, advice, every_pid), "", *advice_lines])


def _rate(value: float, like: float | None = None) -> str:
    """One decimal below 100 images/s; ``like`` formats a range's low end as its high end."""
    return f"{value:.1f}" if (value if like is None else like) < ONE_DECIMAL_BELOW else f"{value:.0f}"


def notes(row: Row, advice: Advice) -> str:
    """The notes column, as the verdict marks the row: fastest / tied, defaults, recommended."""
    return ", ".join(advice.verdict.marks(row)) if row.kind == ENGINE else ""


def format_table(report: BenchReport, advice: Advice) -> str:
    """Where the URLs came from, how each run was timed, then one line per row."""
    s = report.settings
    width = max(len(row.label) for row in report.rows)
    head = (f"{'row':<{width}} {'workers':>7} {'threads':>7} {'conc':>5} {'images':>6} {'images/s':>8} "
            f"{'min-max':>9} {'speedup':>7} {'effic.':>6} {'first s':>7} {'failed':>6}  notes")
    lines = [report.source,
             f"each run: {s.ramp:g} s to start, then {s.seconds:g} s counted; {runs_per_row(s.repeat)} per row",
             head,
             "-" * len(head)]
    for row in report.rows:
        speedup = report.speedup(row)
        first = f"{row.first_s:.2f}" if row.first_s is not None else "-"
        lines.append(f"{row.label:<{width}} {row.workers:>7} {row.threads:>7} {row.concurrency:>5} {row.images:>6} "
                     f"{_rate(row.median):>8} {_rate(row.low, row.high) + '-' + _rate(row.high):>9} {speedup:>6.1f}x "
                     f"{speedup / row.concurrency:>6.2f} {first:>7} {row.failures:>6}  {notes(row, advice)}".rstrip())
    return "\n".join(lines)


def format_legend(report: BenchReport, width: int = WIDTH) -> str:
    """One line per column, wrapped to ``width`` under its explanation."""
    s = report.settings
    lines = [
        "workers   processes (the sequential loop: this process alone)",
        "threads   download threads per process; each classic pool process downloads one URL at a time",
        "conc      downloads in flight at once: workers x threads" + _cap_text(report),
        f"images    images saved per run (median) in the {s.seconds:g} s counted, after {s.ramp:g} s for processes "
        f"and connections to start (the sequential loop: {SEQUENTIAL_SPAN * s.seconds:g} s from its start, to see "
        "enough latencies)",
        "images/s  images saved per second counted, median of the row's runs",
        "min-max   images/s of the slowest and the fastest run: the noise",
        "speedup   images/s divided by the sequential loop's",
        "effic.    speedup / conc: 1.00 = every download slot as fast as the sequential loop; lower = slots "
        "waiting on the CPUs",
        "first s   from the start of a run to its first saved image: starting the processes, then one download",
        "failed    downloads that failed, over all runs (not counted in images)",
        "notes     fastest = the best median, beyond noise of every other row; tied = this run cannot tell it "
        "from the best median (then no row is fastest); defaults = what `imgfetch get` uses unless told; "
        "recommended = what to pass to `imgfetch get`, when one row is fastest",
    ]
    return "\n".join(textwrap.fill(line, width, subsequent_indent=" " * LEGEND_INDENT) for line in lines)


def _cap_text(report: BenchReport) -> str:
    """', at most --per-host 8 x 1 host = 8' when --per-host caps the rows."""
    cap = next((row.cap for row in report.rows if row.cap), None)
    if cap is None:
        return ""
    return f", at most --per-host {report.options.get('per_host')} x {counted(report.hosts, 'host')} = {cap}"


def format_pids(report: BenchReport, advice: Advice, every_pid: bool = False) -> str:
    """URLs handled per process: the classic pool's, and the engine's best and recommended (-v: every row)."""
    shown = [row for row in report.rows if row.kind != SEQUENTIAL and
             (every_pid or row.kind == CLASSIC or row is advice.best or row is advice.recommended)]
    names = [row.label if row.kind == CLASSIC else f"imgfetch {row.short}" for row in shown]
    width = max(map(len, names), default=0)
    lines = ["URLs handled per worker process (PID: URLs), last run" + ("" if every_pid else "; -v: every row") + ":"]
    for name, row in zip(names, shown):
        spread = ", ".join(f"{pid}: {n}" for pid, n in sorted(row.pid_counts.items()))
        lines.append(f"  {name:<{width}}  {spread}")
    return "\n".join(lines)
