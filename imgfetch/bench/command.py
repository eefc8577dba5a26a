"""`imgfetch bench`: run the rows, then print the table, its legend, the per-PID spread and the advice."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

from .advice import Advice, advise, ties_with
from .measure import SEQUENTIAL_SPAN, machine_info, run_bench
from ..errors import OutputError
from ..options import START_METHODS, Options
from .plan import CLASSIC, ENGINE, SEQUENTIAL, BenchReport, BenchSettings, Row, parse_sizes

log = logging.getLogger(__name__)
SCHEMA = "imgfetch-bench/2"


def settings_from_args(args: argparse.Namespace) -> tuple[BenchSettings, Options]:
    methods: tuple[str, ...] = ()
    if args.start_methods:
        methods = tuple(m.strip() for m in args.start_methods.split(",") if m.strip())
        unknown = [m for m in methods if m not in START_METHODS]
        if unknown or not methods:
            raise ValueError(f"--start-methods: unknown start method {', '.join(unknown) or '(none)'}; "
                             f"choose from {', '.join(START_METHODS)}")
    settings = BenchSettings(
        urls=args.urls, count=args.count, latency_ms=args.latency_ms, latency_spread=args.latency_spread,
        limit=args.limit, workers=parse_sizes("--workers", args.workers) if args.workers else (),
        threads=parse_sizes("--threads", args.threads), start_methods=methods,
        classic_workers=parse_sizes("--classic-workers", args.classic_workers), chunksize=args.chunksize,
        repeat=args.repeat, seconds=args.seconds, ramp=args.ramp, keep=args.keep)
    given: dict[str, Any] = dict(timeout=args.timeout, retries=args.retries, progress=False,
                                 log_pids=args.log_pids or args.verbose > 0, per_host=args.per_host, rate=args.rate)
    if methods:
        given["start_method"] = methods[0]
    opts = Options(**given)
    for path in (args.json, args.chart):
        if path and not Path(path).resolve().parent.is_dir():
            raise OutputError(f"cannot write {path}: its folder does not exist")
    return settings, opts


def run_bench_command(args: argparse.Namespace) -> int:
    settings, opts = settings_from_args(args)
    if args.chart:
        from .chart import parse_chart_size, require_matplotlib

        chart_size = parse_chart_size(args.chart_size)
        require_matplotlib()  # before a minute of measuring, not after
    if settings.urls is not None:
        log.warning("every row and every run fetches the same URLs from the same servers again (up to %d "
                    "times each); keep the list short with --limit and be polite with --per-host and --rate",
                    (1 + len(settings.classic_workers) + len(settings.workers) * len(settings.threads)) * settings.repeat)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    root = logging.getLogger("imgfetch")
    level = root.level
    if opts.log_pids and root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)  # workers started by spawn or forkserver take this level: let PID lines through
    try:
        report = run_bench(settings, opts, announce=say, on_progress=log.info if args.verbose else None)
    finally:
        root.setLevel(level)
    advice = advise(report)
    print(format_report(report, advice, every_pid=args.verbose > 0))
    say(f"bench took {report.wall_s:.0f} s")
    if args.json:
        _write(args.json, lambda p: Path(p).write_text(json.dumps(to_json(report, advice), indent=2) + "\n"))
    if args.chart:
        from .chart import draw_chart

        _write(args.chart, lambda p: draw_chart(report, advice, p, chart_size))
    if report.failures:
        print(f"imgfetch: {report.failures} downloads failed across all runs", file=sys.stderr)
        return 1
    return 0


def _write(path: str, writer: Any) -> None:
    try:
        writer(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def format_report(report: BenchReport, advice: Advice, every_pid: bool = False, width: int = 115) -> str:
    advice_lines = [textwrap.fill(line, width, subsequent_indent="  ") for line in [*advice.lines, advice.recommendation]]
    return "\n".join([format_table(report, advice), "", format_legend(report, width), "",
                      format_pids(report, advice, every_pid), "", *advice_lines])


def _runs(repeat: int) -> str:
    return f"{repeat} run{'s' if repeat > 1 else ''}" if repeat <= 2 else f"2-{repeat} runs"


def _rate(value: float, like: float | None = None) -> str:
    """One decimal below 100 images/s; ``like`` formats a range's low end as its high end."""
    return f"{value:.1f}" if (value if like is None else like) < 100 else f"{value:.0f}"


def notes(row: Row, advice: Advice) -> str:
    if row.kind != ENGINE:
        return ""
    words = []
    if row is advice.best:
        words.append("fastest")
    elif ties_with(row, advice.best):
        words.append("tied")
    if row.is_default:
        words.append("defaults")
    if row is advice.recommended:
        words.append("recommended")
    return ", ".join(words)


def format_table(report: BenchReport, advice: Advice) -> str:
    s = report.settings
    width = max(len(row.label) for row in report.rows)
    head = (f"{'row':<{width}} {'workers':>7} {'threads':>7} {'conc':>5} {'images':>6} {'images/s':>8} "
            f"{'min-max':>9} {'speedup':>7} {'effic.':>6} {'first s':>7} {'failed':>6}  notes")
    lines = [report.source, f"each run: {s.ramp:g} s to start, then {s.seconds:g} s counted; {_runs(s.repeat)} per row",
             head,
             "-" * len(head)]
    for row in report.rows:
        speedup = report.speedup(row)
        first = f"{row.first_s:.2f}" if row.first_s is not None else "-"
        lines.append(f"{row.label:<{width}} {row.workers:>7} {row.threads:>7} {row.concurrency:>5} {row.images:>6} "
                     f"{_rate(row.median):>8} {_rate(row.low, row.high) + '-' + _rate(row.high):>9} {speedup:>6.1f}x "
                     f"{speedup / row.concurrency:>6.2f} {first:>7} {row.failures:>6}  {notes(row, advice)}".rstrip())
    return "\n".join(lines)


def format_legend(report: BenchReport, width: int = 115) -> str:
    """One line per column, wrapped to ``width`` under its explanation."""
    s = report.settings
    lines = [
        "workers   processes (the sequential loop: this process alone)",
        "threads   download threads per process; each classic pool process downloads one URL at a time",
        "conc      downloads in flight at once: workers x threads",
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
        "notes     fastest = best median; tied = this run cannot tell it from the fastest; defaults = what "
        "`imgfetch get` uses unless told; recommended = what to pass to `imgfetch get`",
    ]
    return "\n".join(textwrap.fill(line, width, subsequent_indent=" " * 10) for line in lines)


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


def row_json(report: BenchReport, row: Row) -> dict[str, Any]:
    speedup = report.speedup(row)
    return {
        "kind": row.kind, "label": row.label, "workers": row.workers, "threads": row.threads,
        "concurrency": row.concurrency, "start_method": row.start_method, "chunksize": row.chunksize,
        "is_default": row.is_default,
        "images_per_s": {"median": row.median, "min": row.low, "max": row.high},
        "images": row.images, "speedup": speedup, "efficiency": speedup / row.concurrency,
        "failures": row.failures, "first_s": row.first_s,
        "runs": [{"seconds": run.seconds, "images": run.images, "failures": run.failures, "bytes": run.bytes,
                  "first_s": run.first_s, "images_per_s": run.images_per_s,
                  "pid_counts": {str(pid): n for pid, n in run.pid_counts.items()}} for run in row.runs],
    }


def to_json(report: BenchReport, advice: Advice) -> dict[str, Any]:
    s = report.settings
    server = None if s.urls is not None else {"count": report.url_count, "latency_ms": s.latency_ms,
                                              "latency_spread": s.latency_spread}
    pick = {"workers": advice.recommended.workers, "threads": advice.recommended.threads,
            "start_method": advice.recommended.start_method, "images_per_s": advice.recommended.median}
    return {
        "schema": SCHEMA,
        "date": report.date,
        "wall_s": report.wall_s,
        "machine": machine_info(),
        "settings": {"source": report.source, "urls": s.urls, "url_count": report.url_count, "server": server,
                     "limit": s.limit, "workers": list(s.workers), "threads": list(s.threads),
                     "start_methods": sorted({r.start_method for r in report.engine if r.start_method}),
                     "classic_workers": list(s.classic_workers), "chunksize": s.chunksize, "repeat": s.repeat,
                     "seconds": s.seconds, "ramp": s.ramp, **report.options},
        "rows": [row_json(report, row) for row in report.rows],
        "advice": {"best": advice.best.label + " " + advice.best.short, "recommended": pick,
                   "tied": [row.short for row in advice.ties], "edges": advice.edges,
                   "defaults_below_best": (1 - advice.defaults.median / advice.best.median
                                           if advice.defaults is not None and advice.best.median else None),
                   "lines": advice.lines, "recommendation": advice.recommendation},
    }
