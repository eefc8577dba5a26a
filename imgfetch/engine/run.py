"""One run over a URL list: source -> plan (dedupe, resume) -> the driver -> records, summary and progress.

A run is a user of the same driver as the Downloader (engine/driver.py): this thread reads the list
and queues a bounded window of requests; the driver's thread plans them, runs the engine and writes
the manifest; records come back here, in the order they complete, to be counted, shown and yielded.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from ..errors import DiskFull, Interrupted, OutputError
from ..options import Options
from ..records import OK, FetchResult
from ..report.progress import Progress, wanted
from ..report.summary import Summary
from ..sources import Entry, ListCounter, open_entries
from .driver import Driver, Request
from .engine import Engine
from .folder import OutputFolder, refuse_overwriting_the_list
from .guard import refuse_in_worker
from .plan import Planner
from .shard_run import ShardBar, ShardedRun, parts_folder

log = logging.getLogger(__name__)
SIGNAL_EXIT_BASE = 128  # a process ended by signal N exits with 128 + N, as shells report it
CHUNK = 256  # entries read from the list and queued at a time
QUIT_WAIT_S = 15.0  # after the consumer leaves (break, a second Ctrl-C): how long to wait for the driver's end
_END = object()  # the driver has ended: no record follows


class Run:
    """A whole download run. Iterate ``results()``; ``summary`` fills in as records arrive."""

    def __init__(self, urls: Any, out_dir: str | os.PathLike[str], opts: Options, *,
                 hard_exit_on_second_signal: bool = False, records: bool = True,
                 progress_file: IO[str] | None = None) -> None:
        """``records``: on Dask, read each shard's records back for ``results()`` (the CLI needs counts only);
        ``progress_file``: where the bar goes (stderr by default)."""
        self.urls, self.opts, self.records, self.progress_file = urls, opts, records, progress_file
        self.folder = OutputFolder(out_dir, opts)
        self.out = self.folder.out
        self.summary = Summary()
        self.hard_exit = hard_exit_on_second_signal
        self.engine: Engine | None = None
        self.driver: Driver | None = None
        self.sharded: ShardedRun | None = None  # --executor dask: the run as shards
        self._signum: int | None = None
        self._counter: ListCounter | None = None

    @property
    def manifest_path(self) -> Path | str:
        """Where the records are: the manifest, or on Dask its parts (a URL when OUT is object storage)."""
        if self.opts.executor != "dask":
            return self.folder.manifest_path
        if self.folder.destination is not None:  # the shards' parts are only on the destination
            return f"{self.folder.destination.url}/{parts_folder(Path()).as_posix()}"
        return parts_folder(self.folder.root)

    @property
    def lines(self) -> int | None:
        """The list's entries, once the background count (or len) knows them; else None."""
        return self._counter.total if self._counter is not None else None

    def results(self) -> Iterator[FetchResult]:
        """Yield one record per input URL as it completes; raises only for run-level failures."""
        refuse_in_worker()
        if self.out.root.exists() and not self.out.root.is_dir():
            raise OutputError(f"{self.out.root}: is a file, not a folder")
        if isinstance(self.manifest_path, Path):
            refuse_overwriting_the_list(self.urls, self.manifest_path,
                                        Path(self.opts.errors) if self.opts.errors else None)
        self._counter = ListCounter(self.urls, self.opts.input_format)  # starts counting a list file at once
        entries = open_entries(self.urls, input_format=self.opts.input_format, url_column=self.opts.url_column,
                               url_key=self.opts.url_key, keep_columns=self.opts.kept_columns)
        try:
            if self.opts.executor == "dask":
                from .dask_pool import require_dask

                require_dask()
            if self.opts.insecure:
                log.warning("--insecure: TLS certificates are not checked for any URL of this run")
            yield from self._run_shards(entries) if self.opts.executor == "dask" else self._run(entries)
        finally:
            entries.close()
            self._counter.stop()
        if self.folder.disk_full:
            saved = self.summary.counts[OK] - self.summary.skipped[OK]
            raise DiskFull(f"the disk is full: {saved} images saved in this run, each recorded in "
                           f"{self.manifest_path}; free some space, then run the same command again to resume")
        if self._signum is not None:
            raise Interrupted(self._signum)
        if self.driver is not None and self.driver.failure is not None:
            raise self.driver.failure

    def _run(self, entries: Iterator[Entry]) -> Iterator[FetchResult]:
        started = time.monotonic()
        records = _Outbox()
        self.driver = driver = Driver(self.folder, self.opts, on_end=lambda: records.put(_END), name="imgfetch-run")
        driver.start()
        self.engine = engine = driver.engine
        assert engine is not None
        bar = Progress(self.summary, self._counter, in_flight=engine.in_flight, budget_s=self.opts.max_time,
                       file=self.progress_file) if wanted(self.opts.progress, self.progress_file) else None
        try:
            planner = Planner(driver.folder.done, self.folder.root, self.opts.retry_failed,  # type: ignore[arg-type]
                              shard_in_place=self.folder.shard_in_place)
            with _signals(self._on_signal):
                for result in self._exchange(entries, planner, records, driver):
                    self.summary.add(result)
                    self.summary.seconds = time.monotonic() - started
                    if bar is not None:
                        bar.add(result)
                    yield result
        finally:
            if driver.running:  # the consumer left early (break, or a second Ctrl-C): stop now
                driver.stop(grace=False)
                if not driver.join(QUIT_WAIT_S):
                    log.warning("the run did not end within %.0f s of being stopped", QUIT_WAIT_S)
            self.summary.seconds = time.monotonic() - started
            if bar is not None:
                bar.close(self._signum is None and not self.folder.disk_full and driver.failure is None)

    def _run_shards(self, entries: Iterator[Entry]) -> Iterator[FetchResult]:
        """On Dask: the shards' counts make the summary and move the bar; records only if asked for."""
        started = time.monotonic()
        self.sharded = ShardedRun(self.out, self.opts, self.folder.destination)
        bar = (Progress(self.summary, self._counter, file=self.progress_file)
               if wanted(self.opts.progress, self.progress_file) else None)
        moves = ShardBar(bar)
        try:
            with _signals(self._on_signal):
                for item in self.sharded.results(entries, self.records):
                    if isinstance(item, FetchResult):
                        yield item
                    elif item.get("progress"):
                        moves.progress(item["number"], item["done"])
                    else:
                        self.summary.merge(item, skipped=bool(item.get("earlier")))
                        self.summary.seconds = time.monotonic() - started
                        moves.finished(item)
        finally:
            self.summary.seconds = time.monotonic() - started
            if bar is not None:
                bar.close(self._signum is None)

    def _exchange(self, entries: Iterator[Entry], planner: Planner, records: _Outbox,
                  driver: Driver) -> Iterator[FetchResult]:
        """Queue the list's entries, a window ahead, and yield records until the driver ends."""
        ahead, more = 0, True
        while True:
            while more and ahead <= driver.window - CHUNK and not driver.stopped:
                batch = [Request(planner.plan, entry, records) for entry in itertools.islice(entries, CHUNK)]
                if batch:
                    driver.put(batch)
                    ahead += len(batch)
                if len(batch) < CHUNK:
                    more = False
                    driver.close()  # the list is read: the driver ends once every URL is done
            item = records.get()
            if item is _END:
                return
            ahead -= 1
            yield item

    def _on_signal(self, signum: int) -> None:
        if self._signum is None:
            self._signum = signum
            log.warning("stopping: finishing in-flight downloads (press Ctrl-C again to quit at once)")
            if self.driver is not None:
                self.driver.stop()
            if self.sharded is not None:
                self.sharded.stop()
            return
        if not self.hard_exit:
            raise KeyboardInterrupt
        # Second signal from a terminal: kill the workers, drop temporary files, go.
        pids = self.engine.worker_pids if self.engine is not None else set()
        if self.sharded is not None:
            pids = self.sharded.worker_pids
        for pid in pids & _live_children():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            self.folder.release()  # unlock the manifest and OUT, remove the temporary folder
        except Exception as exc:  # nothing may keep this exit from happening: the next run tidies what is left
            log.debug("cleanup before the hard exit failed: %s", exc, exc_info=True)
        # os._exit (public despite its name): end now, without running cleanup that waits on workers.
        os._exit(SIGNAL_EXIT_BASE + self._signum)


def _live_children() -> set[int]:
    """PIDs of the processes this one started that are still running.

    A PID outlives its process only as a number: once the process is gone, another program may
    get it. Under forkserver a worker whose fork server has died counts as gone here; it exits by
    itself when our end of its pipe closes.
    """
    return {child.pid for child in multiprocessing.active_children() if child.pid is not None}


class _Outbox(queue.SimpleQueue[Any]):
    """A run's queue of records (and _END), shaped like a Future for the driver: never cancelled."""

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def set_result(self, result: FetchResult) -> None:
        self.put(result)

    def set_exception(self, exception: BaseException | None) -> None:
        pass  # the run raises the driver's failure itself, once the driver has ended

    def cancel(self) -> bool:
        return False


@contextlib.contextmanager
def _signals(callback: Callable[[int], None]) -> Iterator[None]:
    """Route SIGINT/SIGTERM to a callback while a run is active (main thread only)."""
    saved = {}
    if threading.current_thread() is threading.main_thread():
        saved = {signum: signal.signal(signum, lambda s, _f: callback(s)) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
