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
        lines += retry_lines(*run.failure_split(), run.opts.retry_failed)
        if args.errors:
            also = "" if run.opts.retry_failed == "transient" else " --retry-failed all"
            lines.append(f"  or retry just those, listed in {args.errors}: "
                         f"imgfetch get {shlex.quote(args.errors)} -o {shlex.quote(args.out)}{also}")
        else:
            lines.append("  (add --errors FILE to also get them as a list: imgfetch get FILE -o OUT retries them)")
    return "\n".join(lines)


def retry_lines(transient: int, permanent: int, retry_failed: str) -> list[str]:
    """What running the same command again does with this run's failures, under its --retry-failed."""
    failed = transient + permanent
    if retry_failed == "all":
        return [f"run the same command again to retry the {_count(failed, 'failed URL')}: done URLs are skipped"]
    if retry_failed == "none":
        return [f"--retry-failed none: no failure is retried; transient retries {transient} of the {failed}, "
                f"all retries every one"]
    if not permanent:
        return [f"run the same command again to retry the {_count(transient, 'transient failure')}: "
                f"done URLs are skipped"]
    if not transient:
        return [f"{'the failure is' if failed == 1 else f'all {failed} failures are'} permanent (such as HTTP 404 "
                f"or not an image): running again does not retry them; --retry-failed all does"]
    return [f"run the same command again to retry the {_count(transient, 'transient failure')}; "
            f"{permanent} {'is' if permanent == 1 else 'are'} permanent: --retry-failed all retries them too"]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def interrupted_report(run: Any) -> str:
    summary = run.summary
    of = f" of {run.lines:,}" if run.lines else ""
    counts = ", ".join(summary.count_text(name) for name, n in summary.counts.items() if n or name == "ok")
    return (f"interrupted: {summary.total:,}{of} URLs done ({counts}) in {summary.seconds:.1f} s\n"
            f"manifest: {run.manifest_path}\n"
            f"run the same command again to resume: finished URLs are skipped")
