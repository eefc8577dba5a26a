"""``imgfetch get``: options from the command line, the run, and what is said at its end."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from ..errors import InputError, Interrupted
from ..options import Options
from ..options.arguments import given
from ..urls import looks_like_url

TOP_REASONS = 5  # failure reasons listed in the summary


def options_from_args(args: argparse.Namespace) -> Options:
    """The declared options given, plus what -q, -v and the terminal decide."""
    return Options(**given(Options, args),
                   progress=not args.quiet and sys.stderr.isatty(),  # no bar redrawn into a log file
                   log_pids=args.verbose > 0)


def get_command(args: argparse.Namespace) -> int:
    """Run the download; 0 if every URL ended ok, 1 if some failed."""
    from ..engine.run import Run

    if looks_like_url(args.urls) and not os.path.exists(args.urls):
        raise InputError(f"{args.urls} is a URL, not a list file; to use the list it points to, pipe it in: "
                         f"curl -s {shlex.quote(args.urls)} | imgfetch get - -o {shlex.quote(args.out)}")
    run = Run(args.urls, args.out, options_from_args(args), hard_exit_on_second_signal=True)
    try:
        for _result in run.results():
            pass
    except Interrupted:
        if not args.quiet:
            print(interrupted_report(run), file=sys.stderr)
        raise
    if not args.quiet:
        print(report(run, args), file=sys.stderr)
    return 0 if run.summary.all_ok else 1


def report(run: Any, args: argparse.Namespace) -> str:
    """The end of a run: counts, the commonest failures, the manifest, how to retry."""
    summary = run.summary
    lines = [f"done: {summary.line()}"]
    if summary.reasons:
        lines += ["failures:", *summary.reason_lines(TOP_REASONS)]
    lines.append(f"manifest: {run.manifest_path}")
    failed = summary.counts["failed"]
    if failed:
        urls = f"{failed} failed URL{'s' if failed > 1 else ''}"
        lines.append(f"to retry the {urls}, run the same command again: done URLs are skipped")
        if args.errors:
            lines.append(f"  or retry just those, listed in {args.errors}: "
                         f"imgfetch get {shlex.quote(args.errors)} -o {shlex.quote(args.out)}")
        else:
            lines.append("  (add --errors FILE to also get them as a list: imgfetch get FILE -o OUT retries them)")
    return "\n".join(lines)


def interrupted_report(run: Any) -> str:
    summary = run.summary
    of = f" of {run.lines:,}" if run.lines else ""
    counts = ", ".join(f"{name} {n:,}" for name, n in summary.counts.items() if n or name == "ok")
    return (f"interrupted: {summary.total:,}{of} URLs done ({counts}) in {summary.seconds:.1f} s\n"
            f"manifest: {run.manifest_path}\n"
            f"run the same command again to resume: finished URLs are skipped")
