"""`imgfetch bench`: settings from the command line, run the rows, then print the report and
write the JSON and the chart asked for."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Callable

from ..bench.advice import Advice, advise
from ..bench.bursts import format_bursts
from ..bench.chart import chart_size
from ..bench.jsondoc import to_json
from ..bench.measure import run_bench
from ..bench.plan import BenchReport
from ..bench.settings import SHARED_WITH_GET, BenchOutputs, BenchSettings
from ..bench.table import format_report
from ..errors import OutputError
from ..options import Options
from ..options.arguments import given
from . import ExitStatus
from .environment import Environment

log = logging.getLogger(__name__)


def settings_from_args(args: argparse.Namespace) -> tuple[BenchSettings, BenchOutputs, Options]:
    """The benchmark's settings, its outputs and the engine's options; OptionError or OutputError naming the option."""
    settings = BenchSettings(**given(BenchSettings, args), urls=args.urls)
    outputs = BenchOutputs(**given(BenchOutputs, args))
    engine: dict[str, Any] = dict(given(Options, args, SHARED_WITH_GET), progress=False,
                                  log_pids=outputs.log_pids or args.verbose > 0)
    if settings.start_methods:
        engine["start_method"] = settings.start_methods[0]
    for path in (outputs.json, outputs.chart):
        if path and not Path(path).resolve().parent.is_dir():
            raise OutputError(f"cannot write {path}: its folder does not exist")
    return settings, outputs, Options(**engine)


def run_bench_command(args: argparse.Namespace, env: Environment) -> ExitStatus:
    """Run the benchmark the command line describes; 1 if any download failed, else 0."""
    settings, outputs, opts = settings_from_args(args)
    size = chart_size(outputs.chart_size) if outputs.chart else None  # before a minute of measuring, not after
    if settings.urls is not None:
        log.warning("every row and every run fetches the same URLs from the same servers again (up to %d "
                    "times each); keep the list short with --limit and be polite with --per-host and --rate",
                    (1 + len(settings.classic_workers) + len(settings.workers) * len(settings.threads)) * settings.repeat)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=env.stderr, flush=True))
    report = _run_rows(settings, opts, say, verbose=args.verbose > 0)
    advice = advise(report)
    print(format_report(report, advice, every_pid=args.verbose > 0), file=env.stdout)
    if report.bursts is not None:
        print(format_bursts(report.bursts), file=env.stdout)
    say(f"bench took {report.wall_s:.0f} s")
    _save(outputs, report, advice, size)
    if report.failures:
        print(f"imgfetch: {report.failures} downloads failed across all runs", file=env.stderr)
        return ExitStatus.SOME_FAILED
    return ExitStatus.OK


def _run_rows(settings: BenchSettings, opts: Options, say: Callable[[str], Any], verbose: bool) -> BenchReport:
    """run_bench, with the PID lines let through the imgfetch logger while it runs."""
    root = logging.getLogger("imgfetch")
    level = root.level
    if opts.log_pids and root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)  # workers started by spawn or forkserver take this level: let PID lines through
    try:
        return run_bench(settings, opts, announce=say, on_progress=log.info if verbose else None)
    finally:
        root.setLevel(level)


def _save(outputs: BenchOutputs, report: BenchReport, advice: Advice, chart_size: tuple[int, int] | None) -> None:
    """Write --json and --chart, if asked for."""
    if outputs.json:
        _write(outputs.json, lambda p: Path(p).write_text(json.dumps(to_json(report, advice), indent=2) + "\n"))
    if outputs.chart and chart_size is not None:
        from ..bench.chart import draw_chart

        _write(outputs.chart, lambda p: draw_chart(report, advice, p, chart_size))


def _write(path: str, writer: Callable[[str], Any]) -> None:
    try:
        writer(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
