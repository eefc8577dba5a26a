"""`imgfetch bench`: run the sweep, print the table, the per-PID spread and a recommendation."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .errors import OutputError
from .options import START_METHODS, Options, usable_cpus
from .sweep import BenchReport, BenchSettings, iter_rows, machine_info, parse_sizes, run_bench

log = logging.getLogger(__name__)


def settings_from_args(args: argparse.Namespace) -> tuple[BenchSettings, Options]:
    methods: tuple[str, ...] = ()
    if args.start_methods:
        methods = tuple(m.strip() for m in args.start_methods.split(",") if m.strip())
        unknown = [m for m in methods if m not in START_METHODS]
        if unknown or not methods:
            raise ValueError(f"--start-methods: unknown start method {', '.join(unknown) or '(none)'}; "
                             f"choose from {', '.join(START_METHODS)}")
    settings = BenchSettings(
        urls=args.urls, count=args.count, latency_ms=args.latency_ms, limit=args.limit,
        workers=parse_sizes("--workers", args.workers) if args.workers else (),
        threads=parse_sizes("--threads", args.threads), start_methods=methods, repeat=args.repeat,
        keep=args.keep)
    opts = Options(timeout=args.timeout, retries=args.retries, progress=not args.quiet,
                   log_pids=args.log_pids, workers=max(settings.workers), threads=max(settings.threads))
    for path in (args.json, args.chart):
        if path and not Path(path).resolve().parent.is_dir():
            raise OutputError(f"cannot write {path}: its folder does not exist")
    return settings, opts


def run_bench_command(args: argparse.Namespace) -> int:
    from .chart import parse_chart_size

    settings, opts = settings_from_args(args)
    chart_size = parse_chart_size(args.chart_size)
    report = run_bench(settings, opts, announce=lambda text: print(text, file=sys.stderr, flush=True),
                       on_progress=log.info if args.verbose else None)
    print(format_table(report))
    print(format_pids(report))
    print(format_recommendation(report))
    if args.json:
        _write(args.json, lambda p: Path(p).write_text(json.dumps(to_json(report, opts), indent=2) + "\n"))
    if args.chart:
        from .chart import draw_chart

        where = "built-in server, %g ms latency" % report.latency_ms if report.latency_ms is not None else "URL list"
        title = f"imgfetch bench: {report.url_count} images, {where}, {usable_cpus()} CPUs"
        _write(args.chart, lambda p: draw_chart(report, p, chart_size, title))
    if report.failures:
        print(f"imgfetch: {report.failures} downloads failed across all runs", file=sys.stderr)
        return 1
    return 0


def _write(path: str, writer: Any) -> None:
    try:
        writer(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def format_table(report: BenchReport) -> str:
    header = (f"{'mode':<26} {'workers':>7} {'threads':>7} {'conc':>5}  {'wall s (median, min-max)':<26}"
              f"{'images/s':>9} {'MB/s':>7} {'speedup':>8} {'effic.':>7} {'failures':>8} {'startup s':>9}")
    lines = [header, "-" * len(header)]
    for row in iter_rows(report):
        mode = "sequential" if row["mode"] == "sequential" else f"pooled ({row['start_method']})"
        wall = f"{row['median_s']:.2f} ({row['min_s']:.2f}-{row['max_s']:.2f})"
        startup = f"{row['startup_s']:.2f}" if row["startup_s"] is not None else "-"
        lines.append(f"{mode:<26} {row['workers']:>7} {row['threads']:>7} {row['concurrency']:>5}  {wall:<26}"
                     f"{row['images_per_s']:>9.1f} {row['mb_per_s']:>7.2f} {row['speedup']:>7.2f}x "
                     f"{row['efficiency']:>7.2f} {row['failures']:>8} {startup:>9}")
    return "\n".join(lines)


def format_pids(report: BenchReport) -> str:
    lines = ["URLs handled per worker PID (last run of each configuration):"]
    for config in report.pooled:
        spread = ", ".join(f"{pid}: {n}" for pid, n in sorted(config.pid_counts.items()))
        lines.append(f"  {config.label:<30} {spread}")
    return "\n".join(lines)


def format_recommendation(report: BenchReport) -> str:
    best = max(report.pooled, key=lambda c: c.images_per_s)
    pick = report.recommendation()
    return (f"recommendation: --workers {pick.workers} --threads {pick.threads} --start-method {pick.start_method} "
            f"({pick.images_per_s:.1f} images/s; the best, {best.label}, reached {best.images_per_s:.1f}; "
            f"smallest within 10 %)")


def to_json(report: BenchReport, opts: Options) -> dict[str, Any]:
    s = report.settings
    return {
        "settings": {"urls": s.urls, "url_count": report.url_count, "latency_ms": report.latency_ms,
                     "workers": list(s.workers), "threads": list(s.threads),
                     "start_methods": list(s.start_methods or (opts.start_method,)), "repeat": s.repeat,
                     "timeout": opts.timeout, "retries": opts.retries},
        "machine": machine_info(),
        "configurations": list(iter_rows(report)),
        "recommendation": {"workers": report.recommendation().workers,
                           "threads": report.recommendation().threads,
                           "start_method": report.recommendation().start_method},
    }
