"""argparse -> options -> run. The only place that maps exceptions to exit codes."""
from __future__ import annotations

import argparse
import enum
import logging
import os
import re
import shlex
import sys
from typing import Any, Sequence

from .. import __version__
from .usage import (BENCH_DESCRIPTION, BENCH_EXAMPLES, EXAMPLES, GET_DESCRIPTION, GET_EXAMPLES, SERVE_EXAMPLES, GuidingParser as _Parser,
                    loudness, server_diagnostics, unrecognized)

log = logging.getLogger("imgfetch")


class ExitStatus(enum.IntEnum):
    OK = 0
    SOME_FAILED = 1
    ERROR = 2
    INTERRUPTED = 130   # 128 + SIGINT
    TERMINATED = 143    # 128 + SIGTERM


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def _add_fetch_options(p: argparse.ArgumentParser) -> None:
    from ..options import KNOWN_FORMATS, Options, default_start_method, default_workers

    d = Options.__dataclass_fields__
    g = p.add_argument_group("pool")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help=f"worker processes (default: 2 x usable CPUs, at most 32; here {default_workers()})")
    g.add_argument("--threads", type=int, default=d["threads"].default, metavar="N",
                   help="download threads per worker process; concurrency = workers x threads (default: %(default)s)")
    g.add_argument("--start-method", choices=("fork", "spawn", "forkserver"), default=None,
                   help=f"how worker processes start (default: {default_start_method()})")
    g.add_argument("--per-host", type=int, metavar="N",
                   help="at most N downloads in flight per host (hostname and port), across all workers "
                        "(default: no limit)")
    g.add_argument("--rate", type=float, metavar="R", help="at most R downloads started per second per host "
                   "(default: no limit)")
    g.add_argument("--executor", choices=("process", "dask"), default="process",
                   help="process: a local process pool; dask: the same worker function on a Dask cluster "
                        "(pip install 'imgfetch[dask]'). Under Dask, OUT must be on a filesystem every Dask "
                        "worker shares, each URL is one Dask task (in flight: twice the cluster's threads), "
                        "and --per-host/--rate hold across the whole cluster (default: %(default)s)")
    g.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="with --executor dask, join this scheduler (default: start a LocalCluster of --workers "
                        "processes x --threads threads on this machine)")
    g = p.add_argument_group("network")
    g.add_argument("--max-time", type=float, default=d["max_time"].default, metavar="S",
                   help="seconds one URL may take in all: connecting, waiting for the answer, every attempt, "
                        "redirect hops, backoff and Retry-After waits. A retry that cannot fit in what is left "
                        "is not started (default: %(default)s)")
    g.add_argument("--timeout", type=float, default=d["timeout"].default, metavar="S",
                   help="seconds to connect, and to wait for each piece of data; a timed-out attempt is retried "
                        "within --max-time (default: %(default)s)")
    g.add_argument("--deadline", type=float, default=d["deadline"].default, metavar="S",
                   help="seconds one attempt may take, however slowly bytes drip; one that takes longer is "
                        "retried within --max-time (default: no limit but --max-time)")
    g.add_argument("--max-bytes", default="50M", metavar="SIZE",
                   help="largest image accepted, counted after decoding; 500K, 10M, 1G (default: %(default)s)")
    g.add_argument("--retries", type=int, default=d["retries"].default, metavar="N",
                   help="retries for connection errors, timeouts, 408, 429 and 5xx (default: %(default)s)")
    g.add_argument("--backoff", type=float, default=d["backoff"].default, metavar="S",
                   help="first retry waits about S seconds, doubling each time, with jitter (default: %(default)s)")
    g.add_argument("--max-retry-after", type=float, default=d["max_retry_after"].default, metavar="S",
                   help="longest Retry-After wait honoured for 429/503 (default: %(default)s)")
    g.add_argument("--max-redirects", type=int, default=d["max_redirects"].default, metavar="N",
                   help="redirect hops followed; only http and https targets (default: %(default)s)")
    g.add_argument("--user-agent", default=d["user_agent"].default, help="User-Agent header (default: %(default)s)")
    g.add_argument("--header", action="append", default=[], metavar="'K: V'", dest="headers",
                   help="extra request header, repeatable; dropped on redirects to another host")
    g.add_argument("--proxy", metavar="URL", help="proxy for all requests (default: HTTP(S)_PROXY/NO_PROXY)")
    g.add_argument("--ca-bundle", metavar="FILE", help="CA certificates to trust (default: $REQUESTS_CA_BUNDLE or $CURL_CA_BUNDLE if set, else certifi's bundle)")
    g.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    g = p.add_argument_group("images")
    g.add_argument("--verify", choices=("fast", "full", "none"), default="fast",
                   help="fast: decode cheaply (JPEG at 1/8 scale, PNG CRCs); full: every pixel; "
                        "none: header only (default: %(default)s)")
    g.add_argument("--formats", default=",".join(KNOWN_FORMATS),
                   help="accepted formats, comma-separated (default: %(default)s; AVIF where Pillow supports it)")
    g.add_argument("--max-pixels", type=int, default=d["max_pixels"].default, metavar="N",
                   help="images with more pixels are refused as decompression bombs. Above 178,956,970 "
                        "(twice Pillow's own limit), WebP, TIFF and animated frames still meet Pillow's limit in "
                        "an in-process fetch() (default: %(default)s)")
    g = p.add_argument_group("output")
    g.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (created if missing)")
    g.add_argument("--naming", default="url", metavar="SCHEME",
                   help="file names: url (URL basename + URL hash), hash (content sha256), index (line number), "
                        "column:NAME (a kept column) (default: %(default)s)")
    g.add_argument("--subdirs", type=int, metavar="N", help="spread files over subfolders of at most N files")
    g.add_argument("--overwrite", action="store_true",
                   help="replace existing files this folder's manifest does not own (default: never)")
    g.add_argument("--manifest", metavar="FILE", help="manifest path (default: OUT/manifest.jsonl)")
    g.add_argument("--errors", metavar="FILE", help="write the failed URLs, in full, to FILE (mode 0600)")
    g = p.add_argument_group("input")
    g.add_argument("--input-format", choices=("txt", "csv", "tsv", "jsonl"),
                   help="list format (default: from the extension; .gz accepted)")
    g.add_argument("--url-column", default="url", metavar="NAME", help="CSV/TSV URL column (default: %(default)s)")
    g.add_argument("--url-key", default="url", metavar="KEY", help="JSON Lines URL key (default: %(default)s)")
    g.add_argument("--keep-columns", default="", metavar="A,B", help="columns copied into each manifest record")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="imgfetch", description="Parallel image downloader: a URL list in, "
                     "validated images on disk, a manifest record per URL.", epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"imgfetch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    get = sub.add_parser("get", parents=[loudness("print errors only: no progress bar, no summary, no warnings")],
                         help="download a URL list", epilog=GET_EXAMPLES, description=GET_DESCRIPTION)
    get.add_argument("urls", metavar="URLS", help="URL list: .txt, .csv, .tsv, .jsonl (optionally .gz), or - for stdin")
    _add_fetch_options(get)
    bench = sub.add_parser("bench", parents=[loudness("no progress lines and no warnings; the results are still printed")],
                           help="the classic ProcessPoolExecutor example beside imgfetch's engine, and advice for get",
                           epilog=BENCH_EXAMPLES,
                           description=BENCH_DESCRIPTION)
    _add_bench_options(bench)
    # serve: no -q (it prints one line) and no download options; -v logs start/stop, -vv every request.
    serve = sub.add_parser("serve", parents=[server_diagnostics()], help="run the built-in loopback image server",
                           epilog=SERVE_EXAMPLES,
                           description="Serve synthetic images on 127.0.0.1 (tests, benchmarks, demos).")
    serve.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default: %(default)s)")
    serve.add_argument("--count", type=int, default=100, help="number of images (default: %(default)s)")
    serve.add_argument("--latency-ms", type=float, default=0.0, metavar="MS",
                       help="added latency per response; the median per-image latency when --latency-spread "
                            "is given (default: %(default)s)")
    serve.add_argument("--latency-spread", type=float, default=0.0, metavar="SIGMA",
                       help="sigma of a log-normal per-image latency around the median --latency-ms, fixed per "
                            "image; 1.0 with 80 ms gives p99 ~ 0.8 s (default: %(default)s, fixed latency)")
    serve.add_argument("--faults", default=None, metavar="SPEC",
                       help="persistent per-image faults on /img/: 'realistic' (~10%% failures) or KIND=SHARE,... "
                            "with kinds 403 404 410 500 503 hang drip reset html truncated, e.g. "
                            "'404=0.03,500=0.02,hang=0.015' (default: none)")
    serve.add_argument("--hang-s", type=float, default=60.0, metavar="S",
                       help="seconds a 'hang' fault holds the connection before closing it, at most 120 "
                            "(default: %(default)s)")
    serve.add_argument("--seed", type=int, default=0,
                       help="seed of the images, latencies and faults (default: %(default)s)")
    return parser


def _add_bench_options(p: argparse.ArgumentParser) -> None:
    from ..options import Options, default_start_method, default_workers
    from ..bench.plan import DEFAULT_THREADS, BenchSettings, default_worker_sweep

    d = BenchSettings.__dataclass_fields__
    p.add_argument("urls", metavar="URLS", nargs="?",
                   help="URL list (default: the built-in server on 127.0.0.1, offline). Every row fetches the "
                        "same URLs again: keep it short with --limit and polite with --per-host and --rate")
    p.add_argument("--limit", type=int, metavar="N", help="use only the first N URLs (or images of the server)")
    g = p.add_argument_group("the built-in server")
    g.add_argument("--count", type=int, default=d["count"].default,
                   help="images it serves; a run takes as many as it can in --seconds (default: %(default)s)")
    g.add_argument("--latency-ms", type=float, default=d["latency_ms"].default, metavar="MS",
                   help="median latency per image (default: %(default)s)")
    g.add_argument("--latency-spread", type=float, default=d["latency_spread"].default, metavar="SIGMA",
                   help="sigma of the log-normal per-image latency: 1.0 puts p90 at 3.6 x and p99 at 10 x the median, "
                        "as on the internet; 0 for a fixed latency (default: %(default)s)")
    g = p.add_argument_group("what to compare")
    g.add_argument("--workers", metavar="N,N,...",
                   help="engine: worker processes to sweep (default: 1, 2, 4, ... up to 2 x usable CPUs, get's "
                        f"default; here {','.join(map(str, default_worker_sweep()))})")
    g.add_argument("--threads", default=",".join(map(str, DEFAULT_THREADS)), metavar="N,N,...",
                   help="engine: download threads per worker to sweep (default: %(default)s). "
                        f"get's defaults (here --workers {default_workers()} --threads "
                        f"{Options.__dataclass_fields__['threads'].default}) are always a row")
    g.add_argument("--start-methods", metavar="M,M,...",
                   help=f"sweep the engine per start method: fork, spawn, forkserver; the first one also starts "
                        f"the classic pool (default: {default_start_method()})")
    g.add_argument("--classic-workers", default="3", metavar="N,N,...",
                   help="processes of the classic ProcessPoolExecutor(N).map row(s) (default: %(default)s)")
    g.add_argument("--chunksize", type=int, default=d["chunksize"].default, metavar="C",
                   help="the classic row's executor.map(..., chunksize=C) (default: %(default)s)")
    g = p.add_argument_group("how to measure")
    g.add_argument("--seconds", type=float, default=d["seconds"].default, metavar="S",
                   help="each run counts the images saved in S seconds, after the ramp (default: %(default)s)")
    g.add_argument("--ramp", type=float, default=d["ramp"].default, metavar="S",
                   help="seconds at the start of each run that are not counted, while processes, threads and "
                        "connections start (default: %(default)s)")
    g.add_argument("--repeat", type=int, default=d["repeat"].default, metavar="N",
                   help="runs per row, interleaved: two, and up to N for a row whose runs differ by over 10 %%; "
                        "the table shows their median and min-max (default: %(default)s)")
    g.add_argument("--per-host", type=int, metavar="N",
                   help="at most N downloads in flight per host, in every row (default: no limit)")
    g.add_argument("--rate", type=float, metavar="R",
                   help="at most R downloads started per second per host, in every row (default: no limit)")
    g.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per-request timeout (default: %(default)s)")
    g.add_argument("--retries", type=int, default=3, metavar="N", help="engine: retries per URL (default: %(default)s)")
    g.add_argument("--log-pids", action="store_true",
                   help="log '[Process ID]:<pid> Downloading..' (classic) and '... Downloading <url>' (engine) as "
                        "each download starts; -v does too")
    g = p.add_argument_group("output")
    g.add_argument("--json", metavar="PATH", help="write the machine, the date, the settings and every run as JSON")
    g.add_argument("--chart", metavar="PATH.png",
                   help="draw images/s against concurrency as a PNG (pip install 'imgfetch[plot]')")
    g.add_argument("--chart-size", default="1200x800", help="chart size in pixels (default: %(default)s)")
    g.add_argument("--keep", metavar="DIR", help="keep every run's downloads under DIR (default: temporary, removed)")


def options_from_args(args: argparse.Namespace) -> Any:
    from ..options import Options

    given: dict[str, Any] = dict(
        threads=args.threads, timeout=args.timeout, max_time=args.max_time, deadline=args.deadline, max_bytes=args.max_bytes,
        retries=args.retries, backoff=args.backoff, max_retry_after=args.max_retry_after,
        max_redirects=args.max_redirects, user_agent=args.user_agent, headers=tuple(args.headers),
        proxy=args.proxy, ca_bundle=args.ca_bundle, insecure=args.insecure, max_pixels=args.max_pixels,
        verify=args.verify, formats=args.formats, naming=args.naming, subdirs=args.subdirs,
        overwrite=args.overwrite, manifest=args.manifest, errors=args.errors, input_format=args.input_format,
        url_column=args.url_column, url_key=args.url_key,
        keep_columns=tuple(c.strip() for c in args.keep_columns.split(",") if c.strip()),
        per_host=args.per_host, rate=args.rate, executor=args.executor, scheduler=args.scheduler,
        progress=not args.quiet and sys.stderr.isatty(), log_pids=args.verbose > 0)  # no bar redrawn into a log file
    if args.workers is not None:
        given["workers"] = args.workers
    if args.start_method is not None:
        given["start_method"] = args.start_method
    return Options(**given)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from ..store.files import ignore_file_size_signal

    ignore_file_size_signal()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help()
        return ExitStatus.OK
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            command = _subparser(parser, args.command)
            command.error(unrecognized(command, extras, args.command))
    except SystemExit as exc:  # --help, --version, usage errors: argparse has already said why
        return int(exc.code or 0)
    _setup_logging(args)
    from ..errors import ImgFetchError, Interrupted

    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "bench":
            from ..bench.command import run_bench_command

            return run_bench_command(args)
        return _get(args)
    except ValueError as exc:  # bad options, from Options validation
        from ..options import OptionError

        return _fail(args, f"imgfetch: error: {exc.spelled(_flag) if isinstance(exc, OptionError) else exc}")
    except Interrupted as exc:
        return ExitStatus.TERMINATED if exc.signum == 15 else ExitStatus.INTERRUPTED
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except ImgFetchError as exc:
        return _fail(args, f"imgfetch: error: {exc}")
    except OSError as exc:
        return _fail(args, f"imgfetch: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))


def _fail(args: argparse.Namespace, line: str) -> int:
    if getattr(args, "traceback", False):
        import traceback

        traceback.print_exc()
    print(line, file=sys.stderr)
    return ExitStatus.ERROR


def _subparser(parser: argparse.ArgumentParser, command: str) -> Any:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    return parser


def _flag(name: str) -> str:
    """An option's command-line spelling."""
    return {"headers": "--header", "log_pids": "-v"}.get(name, "--" + name.replace("_", "-"))


def _get(args: argparse.Namespace) -> int:
    from ..errors import InputError, Interrupted
    from ..engine.run import Run

    if _URL.match(args.urls) and not os.path.exists(args.urls):
        raise InputError(f"{args.urls} is a URL, not a list file; to use the list it points to, pipe it in: "
                         f"curl -s {shlex.quote(args.urls)} | imgfetch get - -o {shlex.quote(args.out)}")
    opts = options_from_args(args)
    run = Run(args.urls, args.out, opts, hard_exit_on_second_signal=True)
    try:
        for _result in run.results():
            pass
    except Interrupted:
        if not args.quiet:
            print(_interrupted_report(run), file=sys.stderr)
        raise
    if not args.quiet:
        print(_report(run, args), file=sys.stderr)
    return ExitStatus.OK if run.summary.all_ok else ExitStatus.SOME_FAILED


def _report(run: Any, args: argparse.Namespace) -> str:
    """The end of a run: counts, the commonest failures, the manifest, how to retry."""
    summary = run.summary
    lines = [f"done: {summary.line()}"]
    if summary.reasons:
        lines += ["failures:", *summary.reason_lines(5)]
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


def _interrupted_report(run: Any) -> str:
    summary = run.summary
    of = f" of {run.lines:,}" if run.lines else ""
    counts = ", ".join(f"{name} {n:,}" for name, n in summary.counts.items() if n or name == "ok")
    return (f"interrupted: {summary.total:,}{of} URLs done ({counts}) in {summary.seconds:.1f} s\n"
            f"manifest: {run.manifest_path}\n"
            f"run the same command again to resume: finished URLs are skipped")


def _serve(args: argparse.Namespace) -> int:
    import threading

    from ..server import ImageServer

    for name, value, low in (("--count", args.count, 1), ("--latency-ms", args.latency_ms, 0), ("--port", args.port, 0),
                             ("--latency-spread", args.latency_spread, 0), ("--hang-s", args.hang_s, 0)):
        if not value >= low:  # also catches nan
            raise ValueError(f"{name} must be >= {low}, got {value}")
    with ImageServer(count=args.count, latency_ms=args.latency_ms, latency_spread=args.latency_spread,
                     faults=args.faults, hang_s=args.hang_s, port=args.port, seed=args.seed) as server:
        for i in range(args.count):  # render every image now, so no client pays for it mid-benchmark
            server.image_bytes(i)
        print(f"serving {args.count} images on {server.base_url} (list: {server.url('/urls.txt')}); "
              "Ctrl-C stops", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return ExitStatus.OK


class _BarSafeHandler(logging.Handler):
    """Writes log lines above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"imgfetch: {record.levelname.lower()}: {message}"
        return message


def _setup_logging(args: argparse.Namespace) -> None:
    handler = _BarSafeHandler()
    handler.setFormatter(_Formatter())
    log.handlers[:] = [handler]
    log.propagate = False
    quiet = getattr(args, "quiet", False)
    log.setLevel(logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else
                 logging.ERROR if quiet else logging.WARNING)
    if args.verbose > 1 or args.traceback:
        from ..logrelay import show_tracebacks

        show_tracebacks()
    if args.verbose or getattr(args, "log_pids", False):
        logging.getLogger("imgfetch.pids").setLevel(logging.INFO)
