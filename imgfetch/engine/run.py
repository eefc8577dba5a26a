"""One run: source -> plan (dedupe, resume) -> pool -> manifest + progress."""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from .schedule import Engine
from ..errors import DiskFull, Interrupted, OutputError
from .guard import refuse_in_worker
from ..logrelay import LogRelay
from ..store.errorlist import ErrorsList
from ..store.journal import recover_unrecorded
from ..store.locking import FileLock
from ..store.outputs import is_empty_file, missing_folders, refuse_overwriting_the_list, remove_if_empty
from ..store.manifest import MANIFEST_NAME, DoneIndex, ManifestWriter, compact, lock_manifest
from ..store.shardset import ShardSet, open_shards
from ..options import Options
from ..report.progress import Progress, wanted
from ..report.summary import Summary
from ..records import CANCELLED, FAILED, OK, FetchResult
from ..sources import Entry, ListCounter, open_entries
from .plan import plan_tasks
from ..net.failures import permanent_failure
from ..store.files import OutputDir

log = logging.getLogger(__name__)
SIGNAL_EXIT_BASE = 128  # a process ended by signal N exits with 128 + N, as shells report it
COMPACT_RATIO = 2  # compact a manifest once it holds over this many lines per URL it records


class Run:
    """A whole download run. Iterate ``results()``; ``summary`` fills in as records arrive."""

    def __init__(self, urls: Any, out_dir: str | os.PathLike[str], opts: Options, *,
                 hard_exit_on_second_signal: bool = False, label: str | None = None) -> None:
        self.urls, self.opts = urls, opts
        self.out = OutputDir(out_dir)
        self.summary = Summary()
        self.hard_exit = hard_exit_on_second_signal
        self.label = label
        self.engine: Engine | None = None
        self._signum: int | None = None
        self._disk_full = False
        self._counter: ListCounter | None = None
        self._manifest_lock: FileLock | None = None
        self._unchanged: set[str] = set()  # keys of failures not retried whose manifest record says it all already
        self._shards: ShardSet | None = None  # a dataset's shards (--output-format): put in place as records are written

    @property
    def manifest_path(self) -> Path:
        return Path(self.opts.manifest) if self.opts.manifest else self.out.root / MANIFEST_NAME

    @property
    def lines(self) -> int | None:
        """The list's entries, once the background count (or len) knows them; else None."""
        return self._counter.total if self._counter is not None else None

    def failure_split(self) -> tuple[int, int]:
        """This run's failed URLs as (transient, permanent): what --retry-failed transient fetches again, and not."""
        permanent = sum(n for (kind, status), n in self.summary.failures.items() if permanent_failure(kind, status))
        return self.summary.counts[FAILED] - permanent, permanent

    def results(self) -> Iterator[FetchResult]:
        """Yield one record per input URL as it completes; raises only for run-level failures."""
        refuse_in_worker()
        if self.out.root.exists() and not self.out.root.is_dir():
            raise OutputError(f"{self.out.root}: is a file, not a folder")
        refuse_overwriting_the_list(self.urls, self.manifest_path, Path(self.opts.errors) if self.opts.errors else None)
        self._counter = ListCounter(self.urls, self.opts.input_format)  # starts counting a list file at once
        entries = open_entries(self.urls, input_format=self.opts.input_format, url_column=self.opts.url_column,
                               url_key=self.opts.url_key, keep_columns=self.opts.kept_columns)
        try:
            if self.opts.executor == "dask":
                from .dask_pool import require_dask

                require_dask()
            if self.opts.insecure:
                log.warning("--insecure: TLS certificates are not checked for any URL of this run")
            yield from self._run(entries)
        finally:
            entries.close()
            self._counter.stop()
        if self._disk_full:
            saved = self.summary.counts[OK] - self.summary.skipped[OK]
            raise DiskFull(f"the disk is full: {saved} images saved in this run, each recorded in "
                           f"{self.manifest_path}; free some space, then run the same command again to resume")
        if self._signum is not None:
            raise Interrupted(self._signum)

    def _run(self, entries: Iterator[Entry]) -> Iterator[FetchResult]:
        started = time.monotonic()
        done, writer, errors = self._open()
        relay = LogRelay(multiprocessing.get_context(self.opts.start_method))
        self.engine = engine = Engine(self.opts, str(self.out.root), str(self.out.tmp), log_pipe=relay.writer,
                                      stop_requested=lambda: self._signum is not None or self._disk_full)
        bar = Progress(self.summary, self._counter, self.label, in_flight=engine.in_flight,
                       budget_s=self.opts.max_time) if wanted(self.opts.progress) else None
        complete = False
        try:
            full_urls: dict[str, str] | None = {} if errors else None  # for the errors file
            plan = plan_tasks(entries, done, self.out.root, full_urls, self.opts.retry_failed, self._unchanged)
            with _signals(self._on_signal):
                yield from self._record(self.engine.run(plan), writer, errors, full_urls, bar, started)
            complete = self._signum is None and not self._disk_full
            self._finish(done, writer, errors, complete)
        finally:
            self.summary.seconds = time.monotonic() - started
            self._close(done, writer, errors)
            if bar is not None:
                bar.close(complete)
            relay.stop()
            if self._shards is not None:  # the workers have ended: their last shards go in place
                self._shards.finish()
            self._release()

    def _open(self) -> tuple[DoneIndex, ManifestWriter, ErrorsList | None]:
        """Open the output folder, the manifest and the errors list; a run that cannot start leaves nothing behind."""
        errors = Path(self.opts.errors) if self.opts.errors else None
        new_folders = missing_folders(self.out.root, self.manifest_path.parent, *([errors.parent] if errors else []))
        new_manifest = not self.manifest_path.exists()
        try:
            self.out.open()
            self._manifest_lock = lock_manifest(self.manifest_path)
            done = DoneIndex(self.manifest_path)
            recover_unrecorded(self.out.root, self.out.tmp, lambda key: (done.get(key) or {}).get("path"),
                               self.manifest_path)
            self._shards = open_shards(self.out.root, self.out.tmp, self.opts.output_format, self.opts.shard_size,
                                       done.max_shard)
            writer = ManifestWriter(self.manifest_path, in_flight=self._in_flight)
            return done, writer, ErrorsList(errors, self.manifest_path) if errors else None
        except BaseException:
            self._release()
            if new_manifest and is_empty_file(self.manifest_path):
                self.manifest_path.unlink()
            remove_if_empty(new_folders)
            raise

    def _in_flight(self) -> int:
        return self.engine.capacity if self.engine is not None else 0

    def _release(self) -> None:
        """Unlock the manifest and the output folder, and remove the run's temporary folder."""
        if self._manifest_lock is not None:
            self._manifest_lock.release()
        self.out.close()

    def _close(self, done: DoneIndex, writer: ManifestWriter, errors: ErrorsList | None) -> None:
        """Put the errors list in place and close the manifest; a full disk here is the run's full disk."""
        try:
            if errors is not None:
                errors.commit()
            writer.close()
        except DiskFull:
            self._disk_full = True
        finally:
            if errors is not None:
                errors.discard()
            done.close()

    def _record(self, records: Iterator[FetchResult], writer: ManifestWriter, errors: ErrorsList | None,
                full_urls: dict[str, str] | None, bar: Progress | None, started: float) -> Iterator[FetchResult]:
        """Write each record to the manifest, count it, show it, and hand it on."""
        root = os.path.abspath(self.out.root)
        for result in records:
            if result.status == CANCELLED:
                continue  # not this URL's fault; the next run fetches it
            if not self._write(writer, errors, result, full_urls):
                break  # not even the reserve is left: stop at once
            if result.path:
                result.abspath = os.path.join(root, result.path)
            self.summary.add(result)
            self.summary.seconds = time.monotonic() - started
            if bar is not None:
                bar.add(result)
            yield result

    def _write(self, writer: ManifestWriter, errors: ErrorsList | None, result: FetchResult,
               full_urls: dict[str, str] | None) -> bool:
        """Write one record; False when the disk is too full even for that."""
        unchanged = result.skipped and result.status == FAILED and result.key in self._unchanged
        self._unchanged.discard(result.key)
        full_url = full_urls.pop(result.key, None) if full_urls is not None else None
        try:
            writer.write(result, append=not unchanged)  # a failure not retried may say nothing new
            if self._shards is not None:
                self._shards.recorded(result)
            if errors is not None and result.status == FAILED and full_url:
                errors.add(full_url)
        except DiskFull:
            self._disk_full = True
            return False
        if (result.error_kind == "disk_full" or writer.low_space) and not self._disk_full:
            self._disk_full = True  # stop: downloads in flight finish into the manifest's reserve
            log.warning("the disk is full: stopping")
        return True

    def _finish(self, done: DoneIndex, writer: ManifestWriter, errors: ErrorsList | None, complete: bool) -> None:
        """Close the manifest; after a complete run, compact it if old records make up most of it."""
        try:
            if errors is not None:
                errors.commit()
            writer.close()
        except DiskFull:
            self._disk_full = True
            return
        done.close()
        if complete and done.lines + writer.written > COMPACT_RATIO * max(writer.records, len(done), 1):
            _compact(self.manifest_path)

    def _on_signal(self, signum: int) -> None:
        if self._signum is None:
            self._signum = signum
            log.warning("stopping: finishing in-flight downloads (press Ctrl-C again to quit at once)")
            return
        if not self.hard_exit:
            raise KeyboardInterrupt
        # Second signal from a terminal: kill the workers, drop temporary files, go.
        if self.engine is not None:
            for pid in self.engine.worker_pids & _live_children():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self._release()
        # os._exit (public despite its name): end now, without running cleanup that waits on workers.
        os._exit(SIGNAL_EXIT_BASE + self._signum)


def _live_children() -> set[int]:
    """PIDs of the processes this one started that are still running.

    A PID outlives its process only as a number: once the process is gone, another program may
    get it. Under forkserver a worker whose fork server has died counts as gone here; it exits by
    itself when our end of its pipe closes.
    """
    return {child.pid for child in multiprocessing.active_children() if child.pid is not None}


class _signals:
    """Route SIGINT/SIGTERM to a callback while a run is active (main thread only)."""

    def __init__(self, callback: Any) -> None:
        self.callback = callback
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.saved[signum] = signal.signal(signum, lambda s, _f: self.callback(s))

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)


def _compact(path: Path) -> None:
    """Keep the manifest one record per URL; a failure here costs nothing but disk space."""
    try:
        before, after = compact(path)
    except (OSError, OutputError) as exc:
        log.warning("could not compact %s (it stays as it is): %s", path, getattr(exc, "strerror", None) or exc)
        return
    log.info("compacted %s: %d records -> %d (the newest per URL)", path, before, after)
