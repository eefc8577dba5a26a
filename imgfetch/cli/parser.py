"""The command line's parser: get's and serve's options come from their declarations."""
from __future__ import annotations

import argparse

from .. import __version__
from ..options import Options
from ..options.arguments import add_declared
from ..server.settings import ServerSettings
from .usage import (
    BENCH_DESCRIPTION,
    BENCH_EXAMPLES,
    EXAMPLES,
    GET_DESCRIPTION,
    GET_EXAMPLES,
    SERVE_EXAMPLES,
    GuidingParser,
    is_flag,
    loudness,
    unrecognized,
)


def build_parser() -> GuidingParser:
    parser = GuidingParser(prog="imgfetch", description="Parallel image downloader: a URL list in, "
                           "validated images on disk, a manifest record per URL.", epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"imgfetch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=GuidingParser, metavar="COMMAND")
    get = sub.add_parser("get", parents=[loudness("print errors only: no progress bar, no summary, no warnings")],
                         help="download image URLs, or every URL in a list", epilog=GET_EXAMPLES, description=GET_DESCRIPTION)
    get.add_argument("urls", metavar="URL", nargs="+",
                     help="one or more image URLs, or one URL list: a .txt, .csv, .tsv or .jsonl file (optionally "
                          ".gz), or - for standard input; not both")
    out = (("-o", "--out"), dict(required=True, metavar="DIR", help="output folder (created if missing)"))
    add_declared(get, Options, first_in_group={"output": [out]})  # -o is the run's folder, not an Options field
    bench = sub.add_parser("bench", parents=[loudness("no progress lines and no warnings; the results are still printed")],
                           help="the classic ProcessPoolExecutor example beside imgfetch's engine, and advice for get",
                           epilog=BENCH_EXAMPLES, description=BENCH_DESCRIPTION)
    _add_bench_options(bench)
    serve = sub.add_parser("serve", parents=[loudness(None)], help="run the built-in loopback image server",
                           epilog=SERVE_EXAMPLES,
                           description="Serve synthetic images on 127.0.0.1 (tests, benchmarks, demos).")
    add_declared(serve, ServerSettings)
    parser.commands = sub.choices  # the parser of each command, for errors that name its options
    return parser


def parse_command_line(parser: GuidingParser, argv: list[str]) -> argparse.Namespace:
    """The command and its arguments; a usage error prints one line that guides and raises SystemExit."""
    args, extras = parser.parse_known_args(argv)
    if args.command == "get" and not any(map(is_flag, extras)):
        args.urls, extras = args.urls + extras, []  # get URL -o out URL: argparse leaves the last URL over
    if extras:
        command = parser.commands[args.command]
        command.error(unrecognized(command, extras, args.command))
    return args


def _add_bench_options(bench: argparse.ArgumentParser) -> None:
    """bench's own declarations, with get's --per-host, --rate, --max-time, --timeout and --retries."""
    from ..bench.settings import MEASURE, SHARED_WITH_GET, BenchOutputs, BenchSettings

    bench.add_argument("urls", metavar="URLS", nargs="?",
                       help="URL list (default: the built-in server on 127.0.0.1, offline). Every row fetches the "
                            "same URLs again: keep it short with --limit and polite with --per-host and --rate")
    groups = add_declared(bench, BenchSettings)
    add_declared(bench, Options, names=SHARED_WITH_GET, group=MEASURE, groups=groups)
    add_declared(bench, BenchOutputs, groups=groups)
