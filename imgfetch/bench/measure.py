"""Measuring ``imgfetch bench``'s rows.

Every run of every row is time-boxed: it downloads for ``ramp + seconds`` and counts the images
saved in the last ``seconds`` (the ramp lets processes, threads and connections start; a run
whose list runs out first is timed to its last image). So a slow row (the sequential loop) and a
fast one (hundreds of downloads in flight) take the same time, and images/s compare fairly.
Rows are interleaved (A B C, A B C, ...) so drift on a busy machine hits every row alike; every
row runs twice, and a third time (up to ``repeat``) only if its two runs differ by over 10 %.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import platform
import shutil
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from .classic import Box, Outcome, RunStats, classic_pool, run_stats, sequential_loop
from ..errors import ImgFetchError, OutputError
from ..options import Options, usable_cpus
from .plan import CLASSIC, ENGINE, SEQUENTIAL, BenchReport, BenchSettings, Row, plan_rows

log = logging.getLogger(__name__)
WARMUP_URLS = 8
RUN_OVERHEAD_S = 0.3  # stopping a run and its processes, for the time estimate
STEADY = 0.10         # a row whose runs agree within 10 % (or 2 images) needs no third run
# The sequential loop saves ~10 images a second, and a few slow images would sway so small a
# sample: it counts longer. It starts no processes, so it counts from its start.
SEQUENTIAL_SPAN = 3


def run_bench(settings: BenchSettings, opts: Options, *, announce: Callable[[str], Any] = log.info,
              on_progress: Callable[[str], Any] | None = None) -> BenchReport:
    """Run every row ``settings.repeat`` times, interleaved, and return the measurements."""
    started = time.monotonic()
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with ExitStack() as stack:
        urls, source = _urls(settings, stack, announce)
        if not urls:
            raise ImgFetchError("no valid URLs to benchmark")
        keep = _keep_folder(settings.keep) if settings.keep else None
        if keep:
            announce(f"keeping every run's downloads under {keep}")
        rows = plan_rows(settings, opts)
        _announce_plan(settings, opts, rows, source, announce)
        relay = _pid_relay(opts, stack)
        _warm_up(urls, opts, rows, _scratch(keep, stack, "warmup"))
        for run in range(settings.repeat):  # interleaved, so drift hits every row alike
            todo = [row for row in rows if run < 2 or not steady(row)]
            if not todo:
                break
            round_started = time.monotonic()
            for row in todo:
                row.runs.append(_measure(row, run, urls, opts, settings, keep, stack, relay))
                if on_progress:
                    name = row.label + (f" {row.short}" if row.kind == ENGINE else "")
                    on_progress(f"{name}: run {run + 1}: {row.runs[-1].images} images in {row.runs[-1].seconds:.2f} s")
            which = "" if len(todo) == len(rows) else f", the {len(todo)} rows whose runs differed by over 10 %"
            announce(f"round {run + 1} of {settings.repeat}{which}: {time.monotonic() - round_started:.0f} s")
        report = BenchReport(settings, rows, len(urls), source, date,
                             options={"timeout": opts.timeout, "retries": opts.retries, "per_host": opts.per_host,
                                      "rate": opts.rate})
    report.wall_s = time.monotonic() - started
    return report


def _announce_plan(settings: BenchSettings, opts: Options, rows: list[Row], source: str,
                   announce: Callable[[str], Any]) -> None:
    if opts.per_host and any(n > opts.per_host for n in settings.classic_workers):
        announce(f"--per-host {opts.per_host}: the classic pool runs at most {opts.per_host} processes")
    per_round = (len(rows) - 1) * (settings.ramp + settings.seconds) + SEQUENTIAL_SPAN * settings.seconds
    per_round += len(rows) * RUN_OVERHEAD_S
    least, most = (round(n * per_round) for n in (min(2, settings.repeat), settings.repeat))
    announce(f"benchmarking {source}: {len(rows)} rows x {_runs(settings.repeat)}; each run lasts "
             f"{settings.ramp + settings.seconds:g} s and counts the images saved in its last {settings.seconds:g} s "
             f"(about {least}{'' if least == most else f'-{most}'} s in all)")


def _measure(row: Row, run: int, urls: list[str], opts: Options, settings: BenchSettings, keep: Path | None,
             stack: ExitStack, relay: Any) -> RunStats:
    """One run of one row, in a fresh folder (kept under --keep, else removed at once)."""
    folder = f"{row.kind}_{row.start_method or ''}_w{row.workers}_t{row.threads}".replace("__", "_")
    out = _scratch(keep, stack, f"{folder}_run{run + 1}")
    box = (Box.from_now(0, SEQUENTIAL_SPAN * settings.seconds) if row.kind == SEQUENTIAL else
           Box.from_now(settings.ramp, settings.seconds))
    try:
        return _run_row(row, urls, str(out), opts, box, relay)
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)  # a temporary folder of ours


def steady(row: Row) -> bool:
    """Two or more runs within 10 % (or 2 images) of each other: a third adds little."""
    if len(row.runs) < 2:
        return False
    images = [run.images for run in row.runs]
    return max(images) - min(images) <= 2 or row.high - row.low <= STEADY * row.median


def _runs(repeat: int) -> str:
    if repeat <= 2:
        return f"{repeat} run{'s' if repeat > 1 else ''}"
    return f"2 runs, up to {repeat} for rows whose runs differ by over 10 %"


def _run_row(row: Row, urls: list[str], out: str, opts: Options, box: Box, relay: Any) -> RunStats:
    if row.kind == SEQUENTIAL:
        return sequential_loop(urls, out, box=box, timeout=opts.timeout, rate=opts.rate)
    if row.kind == CLASSIC:
        return classic_pool(urls, out, box=box, workers=row.workers, chunksize=row.chunksize or 1,
                            start_method=row.start_method or opts.start_method, timeout=opts.timeout,
                            rate=opts.rate, log_pipe=relay.writer if relay else None,
                            log_level=logging.getLogger("imgfetch").getEffectiveLevel(), log_pids=opts.log_pids)
    row_opts = opts.replace(workers=row.workers, threads=row.threads, start_method=row.start_method)
    return engine_run(urls, out, row_opts, box)


def engine_run(urls: Sequence[str], out: str, opts: Options, box: Box) -> RunStats:
    """``imgfetch get``'s path (the public iter_download), stopped when the box closes."""
    from ..api import iter_download

    outcomes = []
    ran_out = True
    records = iter_download(list(urls), out, options=opts)
    try:
        for record in records:
            now = time.monotonic()
            if now > box.closes:
                ran_out = False
                break  # closing the iterator stops the run: downloads still in flight are cut short
            outcomes.append(Outcome(record.pid or 0, record.status == "ok", record.bytes or 0, now))
    finally:
        records.close()  # type: ignore[attr-defined]  # a generator
    return run_stats(outcomes, box, ran_out=ran_out)


def _warm_up(urls: list[str], opts: Options, rows: list[Row], out: Path) -> None:
    """Unmeasured: start each start method's fork server, open the first connections."""
    sample = urls[:WARMUP_URLS]
    sequential_loop(sample[:2], str(out), box=Box.from_now(0, 30), timeout=opts.timeout, rate=opts.rate)
    for method in dict.fromkeys(row.start_method for row in rows if row.kind == ENGINE):
        engine_run(sample, str(out / (method or "engine")), opts.replace(workers=1, threads=4, start_method=method,
                                                                        log_pids=False), Box.from_now(0, 30))


def _pid_relay(opts: Options, stack: ExitStack) -> Any:
    """With --log-pids, a pipe that carries the classic workers' PID lines to this process."""
    if not opts.log_pids:
        return None
    from ..logrelay import LogRelay

    relay = LogRelay(multiprocessing.get_context(opts.start_method))
    stack.callback(relay.stop)
    return relay


def _urls(settings: BenchSettings, stack: ExitStack, announce: Callable[[str], Any]) -> tuple[list[str], str]:
    if settings.urls is None:
        from .serverproc import ServerProcess

        count = min(settings.count, settings.limit or settings.count)
        announce(f"starting the built-in server: rendering {count} images")
        server = stack.enter_context(ServerProcess(count, settings.latency_ms, settings.latency_spread))
        return server.urls, f"the built-in server ({server.describe()}; {count} images)"
    from ..sources import open_entries

    urls: list[str] = []
    seen: set[str] = set()
    with open_entries(settings.urls) as entries:
        for entry in entries:
            if entry.url is not None and entry.url not in seen:
                seen.add(entry.url)
                urls.append(entry.url)
            if settings.limit and len(urls) >= settings.limit:
                break
    return urls, f"{settings.urls} ({len(urls)} URLs)"


def _keep_folder(keep: str) -> Path:
    """A new folder of our own under --keep DIR: nothing already there is touched."""
    parent = Path(keep)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = _fresh_folder(parent, time.strftime("bench-%Y%m%d-%H%M%S"))
    except OSError as exc:
        raise OutputError(f"cannot use --keep {keep}: {exc.strerror or exc}") from None
    if path is None:
        raise OutputError(f"cannot use --keep {keep}: too many runs started this second")
    return path


def _fresh_folder(parent: Path, name: str) -> Path | None:
    """Create parent/name, or name-2, name-3 ... if taken; None if 999 are taken."""
    for n in range(1, 1000):
        path = parent / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    return None


def _scratch(keep: Path | None, stack: ExitStack, name: str) -> Path:
    """A fresh folder for one run: under our --keep folder, or a temporary one removed at the end."""
    if keep:
        fresh = _fresh_folder(keep, name)
        if fresh is not None:
            return fresh
    path = Path(tempfile.mkdtemp(prefix=f"imgfetch-bench-{name}-"))
    stack.callback(shutil.rmtree, path, True)
    return path


def machine_info() -> dict[str, Any]:
    """The machine and the versions that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    versions: dict[str, str | None] = {"imgfetch": __version__}
    for package in ("requests", "urllib3", "pillow", "matplotlib"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"usable_cpus": usable_cpus(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "machine": platform.machine(), "versions": versions}
