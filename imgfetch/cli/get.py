"""``imgfetch get``: options from the command line, the run, and what is said at its end."""
from __future__ import annotations

import argparse
import os
import shlex
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError, Interrupted
from ..options import Options
from ..options.arguments import given
from ..report.summary import counted
from ..sources import list_format
from ..urls import looks_like_url
from . import ExitStatus
from .environment import Environment


def options_from_args(args: argparse.Namespace, env: Environment | None = None) -> Options:
    """The declared options given, plus what -q, -v and the terminal (``env``: this process's) decide."""
    on_terminal = (env or Environment()).stderr_isatty
    return Options(**given(Options, args),
                   progress=not args.quiet and bool(on_terminal),  # no bar redrawn into a log file
                   log_pids=args.verbose > 0)


def get_command(args: argparse.Namespace, env: Environment) -> ExitStatus:
    """Run the download as the library's download() does, keeping counts only; OK if every URL ended ok."""
    from ..api import download

    source, opts = source_of(args.urls, args.out), options_from_args(args, env)
    try:
        results = download(env.stdin if source == "-" else source, args.out, options=opts,
                           keep_records=False, exit_on_second_signal=True, progress_file=env.stderr)
    except Interrupted as exc:
        if not args.quiet:
            print(interrupted_report(exc.results), file=env.stderr)  # type: ignore[attr-defined]
        raise
    if not args.quiet:
        print(report(results, args, opts.retry_failed), file=env.stderr)
        if not results.totals.total:  # exit 0 still: an incremental feed is often empty, and that is no failure
            print(no_urls(source, args.input_format), file=env.stderr)
    return ExitStatus.OK if results.totals.all_ok else ExitStatus.SOME_FAILED


def source_of(arguments: list[str], out: str) -> str | list[str]:
    """What get's arguments name: one list file (or - for standard input), or the image URLs themselves.

    An argument that looks like a URL is one, unless a file of that name exists.
    """
    urls = [arg for arg in arguments if _is_url(arg)]
    lists = [arg for arg in arguments if not _is_url(arg)]
    for url in urls:
        fmt = list_format(urlsplit(url).path)
        if fmt:  # a list on the web: its bytes are not an image, so it cannot be fetched as one
            raise InputError(f"{url} names a URL list, not an image; to download the images it lists, pipe it in: "
                             f"{pipe_command(url, fmt, out)}")
    if lists and urls:
        raise InputError(f"give one URL list or image URLs, not both: {lists[0]} is a list and {urls[0]} a URL; "
                         "put the URLs in the list")
    if len(lists) > 1:
        raise InputError(f"get takes one URL list, and {lists[1]} would be a second; for several, pipe them in: "
                         f"cat LIST1 LIST2 | imgfetch get - -o {shlex.quote(out)}")
    return lists[0] if lists else urls


def _is_url(argument: str) -> bool:
    return looks_like_url(argument) and not os.path.exists(argument)


def pipe_command(url: str, fmt: str, out: str) -> str:
    """A shell line that downloads the list at url and feeds it to get.

    -f: an HTTP error prints nothing rather than an HTML page of "URLs"; -L: follow redirects;
    -S: say why on stderr. Standard input is read as text unless told otherwise (gzip is detected).
    """
    if fmt == "parquet":  # read by row group from a file: save it first
        return f"curl -fsSL -o list.parquet {shlex.quote(url)} && imgfetch get list.parquet -o {shlex.quote(out)}"
    input_format = "" if fmt == "txt" else f" --input-format {fmt}"
    return f"curl -fsSL {shlex.quote(url)} | imgfetch get -{input_format} -o {shlex.quote(out)}"


_NOTHING_BUT = {"txt": "blank lines and '#' comments", "csv": "a header", "tsv": "a header", "jsonl": "blank lines",
                "parquet": "a schema"}


def no_urls(source: str | list[str], input_format: str | None) -> str:
    """Why a run did nothing: the list had no URLs (only a list can be empty; URL arguments never are)."""
    name = "standard input" if source == "-" else str(source)
    fmt = input_format or ("txt" if source == "-" else list_format(name) or "txt")
    return f"the list had no URLs: {name} is empty or has only {_NOTHING_BUT[fmt]}"


def report(results: Any, args: argparse.Namespace, retry_failed: str) -> str:
    """The end of a run: counts, the commonest failures, the manifest, how to retry."""
    summary = results.totals
    lines = [f"done: {results.summary()}", f"manifest: {results.manifest}"]
    failed = summary.counts["failed"]
    if failed:
        lines += retry_lines(*summary.failure_split(), retry_failed)
        if args.errors:
            also = "" if retry_failed == "transient" else " --retry-failed all"
            lines.append(f"  or retry just those, listed in {args.errors}: "
                         f"imgfetch get {shlex.quote(args.errors)} -o {shlex.quote(args.out)}{also}")
        else:
            lines.append("  (add --errors FILE to also get them as a list: imgfetch get FILE -o OUT retries them)")
    return "\n".join(lines)


def retry_lines(transient: int, permanent: int, retry_failed: str) -> list[str]:
    """What running the same command again does with this run's failures, under its --retry-failed."""
    failed = transient + permanent
    if retry_failed == "all":
        return [f"run the same command again to retry the {counted(failed, 'failed URL')}: done URLs are skipped"]
    if retry_failed == "none":
        return [f"--retry-failed none: no failure is retried; transient retries {transient} of the {failed}, "
                f"all retries every one"]
    if not permanent:
        return [f"run the same command again to retry the {counted(transient, 'transient failure')}: "
                f"done URLs are skipped"]
    if not transient:
        return [f"{'the failure is' if failed == 1 else f'all {failed} failures are'} permanent (such as HTTP 404 "
                f"or not an image): running again does not retry them; --retry-failed all does"]
    return [f"run the same command again to retry the {counted(transient, 'transient failure')}; "
            f"{permanent} {'is' if permanent == 1 else 'are'} permanent: --retry-failed all retries them too"]


def interrupted_report(results: Any) -> str:
    summary = results.totals
    of = f" of {results.listed:,}" if results.listed else ""
    return (f"interrupted: {summary.total:,}{of} URLs done ({', '.join(summary.shown_counts())}) in {summary.seconds:.1f} s\n"
            f"manifest: {results.manifest}\n"
            f"run the same command again to resume: finished URLs are skipped")
