"""Help texts, examples and usage errors that guide: one line, with the nearest option suggested."""
from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import sys
from typing import Any

from ..sources import list_format
from ..urls import looks_like_url

SIMILAR = 0.6  # difflib ratio above which a typo is taken for an option (its default cutoff)
_CHOICE = re.compile(r"invalid choice: '?([^' ]*)'? \(choose from (.*)\)")


class GuidingParser(argparse.ArgumentParser):
    """One-line errors that suggest the nearest choice; no abbreviated options; examples kept as written."""

    commands: dict[str, "GuidingParser"]  # the top-level parser's commands (set by build_parser)
    _argv: list[str] = []  # the arguments being parsed (set by parse_known_args)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # --worker 3 is a typo, not --workers 3
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._argv = list(sys.argv[1:] if args is None else args)  # for an error that suggests a whole command
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> Any:  # one line, no usage dump
        choice = _CHOICE.search(message)
        if choice:
            close = difflib.get_close_matches(choice.group(1), re.findall(r"[\w-]+", choice.group(2)), n=1)
            if close:
                message += f"; did you mean {close[0]}?"
            elif _names_urls(choice.group(1)):  # imgfetch urls.txt -o out: the command was left out
                message += f"; did you mean: {self.prog} get {shlex.join(self._argv)}"
        elif "required" in message or "expected" in message:
            message += f" (see: {self.prog} --help)"
        self.exit(2, f"{self.prog}: error: {message}\n")

    def options(self) -> list[str]:
        # argparse lists a parser's arguments only in its private _actions; there is no public accessor
        return [flag for action in self._actions for flag in action.option_strings]


def _names_urls(token: str) -> bool:
    """Whether a token is a URL list or a URL rather than a misspelt command."""
    return token == "-" or looks_like_url(token) or list_format(token) is not None or os.path.exists(token)


def unrecognized(parser: GuidingParser, extras: list[str], command: str) -> str:
    """'unrecognized option --wrokers; did you mean --workers?' (or where an option belongs)."""
    flags = [token.split("=", 1)[0] for token in extras if is_flag(token)]
    if not flags:
        return f"unrecognized arguments: {' '.join(extras)}"
    flag = flags[0]
    if flag in parser.options():  # given before the command: imgfetch -v get ...
        return f"{flag} goes after the command: imgfetch {command} {flag} ..."
    close = difflib.get_close_matches(flag, parser.options(), n=1, cutoff=SIMILAR)
    return f"unrecognized option {flag}" + (f"; did you mean {close[0]}?" if close else f" (see: {parser.prog} --help)")


def is_flag(token: str) -> bool:
    """Whether a command-line token is an option (``-`` alone is standard input)."""
    return token.startswith("-") and token != "-"


def loudness(quiet: str | None) -> argparse.ArgumentParser:
    """-q, -v and --traceback for get and bench (-q and -v exclude each other); for serve (``quiet`` None: no -q,
    it prints one line) -v and --traceback say what they mean for the server."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_mutually_exclusive_group()
    if quiet is not None:
        group.add_argument("-q", "--quiet", action="store_true", help=quiet)
    group.add_argument("-v", "--verbose", action="count", default=0, help=(
        "-v: log when the server starts and stops; -vv: also every request and fault" if quiet is None else
        "-v: also log '[Process ID]:<pid> Downloading <url>' as each URL starts; "
        "-vv: also debug lines (retries, ...) and the tracebacks of errors inside workers"))
    parent.add_argument("--traceback", action="store_true", help="show the traceback of an error" if quiet is None else
                        "show the traceback of a run-level error, and of errors inside workers")
    return parent


BENCH_DESCRIPTION = """\
The classic example beside imgfetch's engine, then advice for `imgfetch get`. Rows: a sequential
requests.get loop, the textbook ProcessPoolExecutor(N).map(download_image, urls), and the engine
(processes x threads, streaming) over a sweep of sizes that includes get's defaults. Each run is
time-boxed and repeated; the table shows the median and the min-max, a legend explains it, and the
advice says which sizes tie within noise, whether to try larger, and what to pass to get.
With no URL list it runs offline against the built-in server, with internet-like latencies."""
GET_DESCRIPTION = """\
Download the image URLs given, or every URL in one list (a file, or - for
standard input), into DIR, with a manifest record per URL (DIR/manifest.jsonl).
Running the same command again skips what is done and retries what failed."""
EXAMPLES = """\
examples:
  imgfetch get urls.txt -o out        download a list; run it again to resume or retry failures
  imgfetch bench                      time pool sizes offline, against the built-in server
  imgfetch get --help                 every option of get, with its default
"""
GET_EXAMPLES = """\
what it prints:
  default  a progress bar (on a terminal), warnings, and a summary at the end: the counts,
           the commonest failure reasons, the manifest's path and how to retry the failures
  -q       errors only: no bar, no summary, no warnings
  -v       also '[Process ID]:<pid> Downloading <url>' as each URL starts; -vv adds debug lines

examples:
  imgfetch get urls.txt -o out                    one URL per line; '#' comments
  imgfetch get https://example.com/a.jpg https://example.com/b.png -o out
  imgfetch get photos.csv.gz -o out --url-column image_url --keep-columns id --naming column:id
"""
BENCH_EXAMPLES = """\
examples:
  imgfetch bench                                  offline, about a minute
  imgfetch bench --chart bench.png --json bench.json --classic-workers 3,8 --chunksize 4
  imgfetch bench urls.txt --limit 500 --per-host 8 --workers 1,2 --threads 16,64
"""
SERVE_EXAMPLES = """\
examples:
  imgfetch serve --count 500 --latency-ms 50
  imgfetch serve --count 300 --faults 404=0.05,500=0.02 --latency-ms 40 --latency-spread 1
  curl -s http://127.0.0.1:PORT/urls.txt > urls.txt && imgfetch get urls.txt -o out
"""
