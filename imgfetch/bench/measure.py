"""Measuring ``imgfetch bench``'s rows into a ``BenchReport``: time-boxed runs, so that a slow row and a fast one
take the same time and images/s compare fairly, and interleaved rows, so that drift hits every row alike (the
README's Benchmark mode says how)."""
from __future__ import annotations

import logging
import multiprocessing
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ImgFetchError, OutputError
from ..options import Options
from ..records import OK
from ..report.summary import counted
from .advice import pct
from .bursts import BURST, measure_bursts
from .classic import Box, Outcome, RunStats, classic_pool, run_stats, sequential_loop
from .plan import CLASSIC, ENGINE, MIN_RUNS, SEQUENTIAL, BenchReport, Row, count_hosts, plan_rows, runs_per_row
from .settings import BenchSettings

log = logging.getLogger(__name__)
WARMUP_URLS = 8            # URLs the unmeasured warm-up fetches with each start method's engine
WARMUP_SEQUENTIAL_URLS = 2  # ... and with the sequential loop: enough to open a connection
WARMUP_THREADS = 4         # the warm-up engine's threads: a few connections, not a sweep
WARMUP_LIMIT_S = 3.0       # the warm-up's time box: starting a fork server and a few downloads take less
RUN_OVERHEAD_S = 0.4       # stopping a run and its processes, for the time estimate (measured: 0.3-0.4 s)
WARMUP_ESTIMATE_S = 1.0    # the warm-up, for the time estimate (measured: 0.8-1.4 s)
STEADY = 0.10              # a row whose runs agree within 10 % (or 2 images) needs no third run
STEADY_IMAGES = 2          # runs this few images apart agree, whatever the percentage (small counts)
# The sequential loop saves ~10 images a second, and a few slow images would sway so small a
# sample: it counts longer. It starts no processes, so it counts from its start.
SEQUENTIAL_SPAN = 3
MAX_SAME_NAME = 999  # folders called name, name-2 ... name-999: then give up


def run_bench(settings: BenchSettings, opts: Options, *, announce: Callable[[str], Any] = log.info,
              on_progress: Callable[[str], Any] | None = None) -> BenchReport:
    """Run every row ``settings.repeat`` times, interleaved, and return the measurements."""
    started = time.monotonic()
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with ExitStack() as stack:
        urls, source = _urls(settings, stack, announce)
        if not urls:
            raise ImgFetchError("no valid URLs to benchmark")
        keep = keep_folder(settings.keep) if settings.keep else None
        if keep:
            announce(f"keeping every run's downloads under {keep}")
        hosts = count_hosts(urls)
        rows = plan_rows(settings, opts, hosts)
        _announce_plan(settings, opts, rows, source, hosts, announce)
        runner = _Runner(urls, opts, settings, keep, stack, _pid_relay(opts, stack))
        _warm_up(urls, opts, rows, scratch_folder(keep, stack, "warmup"))
        for run in range(settings.repeat):  # interleaved, so drift hits every row alike
            todo = [row for row in rows if run < MIN_RUNS or not steady(row)]
            if not todo:
                break
            round_started = time.monotonic()
            runner.run_round(todo, run, on_progress)
            which = "" if len(todo) == len(rows) else f", the {len(todo)} rows whose runs differed by over {pct(STEADY)}"
            announce(f"round {run + 1} of {settings.repeat}{which}: {time.monotonic() - round_started:.0f} s")
        report = BenchReport(settings, rows, len(urls), source, date, hosts=hosts,
                             options={"timeout": opts.timeout, "retries": opts.retries, "per_host": opts.per_host,
                                      "rate": opts.rate})
        announce(f"timing bursts of {BURST} URLs: a warm Downloader, and a fresh download() each time")
        report.bursts = measure_bursts(urls, opts, scratch_folder(keep, stack, "bursts"))
    report.wall_s = time.monotonic() - started
    return report


def _announce_plan(settings: BenchSettings, opts: Options, rows: list[Row], source: str, hosts: int,
                   announce: Callable[[str], Any]) -> None:
    if opts.per_host and any(n > opts.per_host for n in settings.classic_workers):
        announce(f"--per-host {opts.per_host}: the classic pool runs at most {opts.per_host} processes")
    capped = [row for row in rows if row.kind == ENGINE and row.capped]
    if capped:
        announce(f"--per-host {opts.per_host}: at most {capped[0].concurrency} downloads in flight "
                 f"({counted(hosts, 'host')} in the list), whatever the workers x threads")
    box = settings.ramp + settings.seconds
    per_round = (len(rows) - 1) * box + SEQUENTIAL_SPAN * settings.seconds + len(rows) * RUN_OVERHEAD_S
    least, most = (round(WARMUP_ESTIMATE_S + n * per_round) for n in (min(MIN_RUNS, settings.repeat), settings.repeat))
    runs = (runs_per_row(settings.repeat) if settings.repeat <= MIN_RUNS else
            f"{MIN_RUNS} runs, up to {settings.repeat} for rows whose runs differ by over {pct(STEADY)}")
    announce(f"benchmarking {source}: {len(rows)} rows x {runs}; each run lasts "
             f"{box:g} s and counts the images saved in its last {settings.seconds:g} s "
             f"(about {least}{'' if least == most else f'-{most}'} s in all)")


def steady(row: Row) -> bool:
    """Two or more runs within 10 % (or 2 images) of each other: a third adds little."""
    if len(row.runs) < MIN_RUNS:
        return False
    images = [run.images for run in row.runs]
    return max(images) - min(images) <= STEADY_IMAGES or row.high - row.low <= STEADY * row.median


@dataclass
class _Runner:
    """What every run of every row shares: the URLs, the options, where the downloads go, the PID relay."""

    urls: list[str]
    opts: Options
    settings: BenchSettings
    keep: Path | None   # our folder under --keep; None: every run downloads to a temporary folder
    stack: ExitStack
    relay: Any          # a LogRelay for the classic workers' PID lines, or None

    def run_round(self, rows: list[Row], run: int, on_progress: Callable[[str], Any] | None) -> None:
        """One run of each row, in order."""
        for row in rows:
            row.runs.append(self.measure(row, run))
            if on_progress:
                name = row.label + (f" {row.short}" if row.kind == ENGINE else "")
                on_progress(f"{name}: run {run + 1}: {row.runs[-1].images} images in {row.runs[-1].seconds:.2f} s")

    def measure(self, row: Row, run: int) -> RunStats:
        """One run of one row, in a fresh folder (kept under --keep, else removed at once)."""
        folder = f"{row.kind}_{row.start_method or ''}_w{row.workers}_t{row.threads}".replace("__", "_")
        out = scratch_folder(self.keep, self.stack, f"{folder}_run{run + 1}")
        seconds = self.settings.seconds
        box = (Box.from_now(0, SEQUENTIAL_SPAN * seconds) if row.kind == SEQUENTIAL else
               Box.from_now(self.settings.ramp, seconds))
        try:
            return self._run(row, str(out), box)
        finally:
            if not self.keep:
                shutil.rmtree(out, ignore_errors=True)  # a temporary folder of ours

    def _run(self, row: Row, out: str, box: Box) -> RunStats:
        opts = self.opts
        if row.kind == SEQUENTIAL:
            return sequential_loop(self.urls, out, box=box, timeout=opts.timeout, rate=opts.rate)
        if row.kind == CLASSIC:
            return classic_pool(self.urls, out, box=box, workers=row.workers, chunksize=row.chunksize or 1,
                                start_method=row.start_method or opts.start_method, timeout=opts.timeout,
                                rate=opts.rate, log_pipe=self.relay.writer if self.relay else None,
                                log_level=logging.getLogger("imgfetch").getEffectiveLevel(), log_pids=opts.log_pids)
        row_opts = opts.replace(workers=row.workers, threads=row.threads, start_method=row.start_method)
        return engine_run(self.urls, out, row_opts, box)


def engine_run(urls: Sequence[str], out: str, opts: Options, box: Box) -> RunStats:
    """``imgfetch get``'s path (the public iter_download), stopped when the box closes.

    No download may take longer than the box (--max-time): the run stops at the first record after
    the box closes, and a download that hangs would otherwise hold that record back.
    """
    from ..api import iter_download

    outcomes = []
    ran_out = True
    opts = opts.replace(max_time=min(opts.max_time, box.closes - box.start))
    records = iter_download(list(urls), out, options=opts)
    try:
        for record in records:
            now = time.monotonic()
            if now > box.closes:
                ran_out = False
                break  # closing the iterator stops the run: downloads still in flight are cut short
            outcomes.append(Outcome(record.pid or 0, record.status == OK, record.bytes or 0, now))
    finally:
        records.close()  # type: ignore[attr-defined]  # a generator
    return run_stats(outcomes, box, ran_out=ran_out)


def _warm_up(urls: list[str], opts: Options, rows: list[Row], out: Path) -> None:
    """Unmeasured: start each start method's fork server, open the first connections."""
    sample = urls[:WARMUP_URLS]
    sequential_loop(sample[:WARMUP_SEQUENTIAL_URLS], str(out), box=Box.from_now(0, WARMUP_LIMIT_S),
                    timeout=opts.timeout, rate=opts.rate)
    for method in dict.fromkeys(row.start_method for row in rows if row.kind == ENGINE):
        warm_opts = opts.replace(workers=1, threads=WARMUP_THREADS, start_method=method, log_pids=False)
        engine_run(sample, str(out / (method or "engine")), warm_opts, Box.from_now(0, WARMUP_LIMIT_S))


def _pid_relay(opts: Options, stack: ExitStack) -> Any:
    """With --log-pids, a pipe that carries the classic workers' PID lines to this process."""
    if not opts.log_pids:
        return None
    from ..logrelay import LogRelay

    relay = LogRelay(multiprocessing.get_context(opts.start_method))
    stack.callback(relay.stop)
    return relay


def _urls(settings: BenchSettings, stack: ExitStack, announce: Callable[[str], Any]) -> tuple[list[str], str]:
    """The URLs to fetch and where they come from: the built-in server, or the list file."""
    if settings.urls is None:
        from ..server import ServerSettings
        from .serverproc import ServerProcess

        count = min(settings.count, settings.limit or settings.count)
        announce(f"starting the built-in server: rendering {count} images")
        served = ServerSettings(count=count, latency_ms=settings.latency_ms, latency_spread=settings.latency_spread)
        server = stack.enter_context(ServerProcess(served))
        return server.urls, f"the built-in server ({server.model.latency_text()}; {count} images)"
    urls = _listed_urls(settings.urls, settings.limit)
    return urls, f"{settings.urls} ({len(urls)} URLs)"


def _listed_urls(path: str, limit: int | None) -> list[str]:
    """The list's valid URLs, each once, in order; the first ``limit`` of them."""
    from ..sources import open_entries

    urls: dict[str, None] = {}  # in order, each once
    with open_entries(path) as entries:
        for entry in entries:
            if entry.url is not None:
                urls[entry.url] = None
            if limit and len(urls) >= limit:
                break
    return list(urls)


def keep_folder(keep: str) -> Path:
    """A new folder of our own under --keep DIR: nothing already there is touched."""
    parent = Path(keep)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = fresh_folder(parent, time.strftime("bench-%Y%m%d-%H%M%S"))
    except OSError as exc:
        raise OutputError(f"cannot use --keep {keep}: {exc.strerror or exc}") from None
    if path is None:
        raise OutputError(f"cannot use --keep {keep}: too many runs started this second")
    return path


def fresh_folder(parent: Path, name: str) -> Path | None:
    """Create parent/name, or name-2, name-3 ... if taken; None if all MAX_SAME_NAME are taken."""
    for n in range(1, MAX_SAME_NAME + 1):
        path = parent / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    return None


def scratch_folder(keep: Path | None, stack: ExitStack, name: str) -> Path:
    """A fresh folder for one run: under our --keep folder, or a temporary one removed at the end."""
    if keep:
        fresh = fresh_folder(keep, name)
        if fresh is not None:
            return fresh
    path = Path(tempfile.mkdtemp(prefix=f"imgfetch-bench-{name}-"))
    stack.callback(shutil.rmtree, path, True)
    return path
