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
from ..store.keys import KeySet
from ..logrelay import LogRelay
from ..store.manifest import MANIFEST_NAME, DoneIndex, ManifestWriter, compact
from ..options import Options
from ..report.progress import Progress
from ..report.summary import Summary
from ..records import CANCELLED, DUPLICATE, INVALID, OK, SKIPPED, FetchResult, Task
from ..sources import Entry, ListCounter, open_entries
from ..urls import mask_url, normalized_key
from ..store.files import OutputDir, file_matches

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

    @property
    def manifest_path(self) -> Path:
        return Path(self.opts.manifest) if self.opts.manifest else self.out.root / MANIFEST_NAME

    @property
    def lines(self) -> int | None:
        """The list's entries, once the background count (or len) knows them; else None."""
        return self._counter.total if self._counter is not None else None

    def results(self) -> Iterator[FetchResult]:
        """Yield one record per input URL as it completes; raises only for run-level failures."""
        refuse_in_worker()
        if self.out.root.exists() and not self.out.root.is_dir():
            raise OutputError(f"{self.out.root}: is a file, not a folder")
        self._counter = ListCounter(self.urls, self.opts.input_format)  # starts counting a list file at once
        entries = open_entries(self.urls, input_format=self.opts.input_format, url_column=self.opts.url_column,
                               url_key=self.opts.url_key, keep_columns=self.opts.keep_columns)
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
            raise DiskFull(f"the disk is full: {self.summary.counts[OK]} images saved in this run, each recorded in "
                           f"{self.manifest_path}; free some space, then run the same command again to resume")
        if self._signum is not None:
            raise Interrupted(self._signum)

    def _run(self, entries: Iterator[Entry]) -> Iterator[FetchResult]:
        started = time.monotonic()
        errors = Path(self.opts.errors) if self.opts.errors else None
        done, writer = self._open(errors)
        bar = Progress(self.summary, self._counter, self.label) if self.opts.progress else None
        relay = LogRelay(multiprocessing.get_context(self.opts.start_method))
        complete = False
        try:
            self.engine = Engine(self.opts, str(self.out.root), str(self.out.tmp), log_pipe=relay.writer,
                                 stop_requested=lambda: self._signum is not None or self._disk_full)
            full_urls: dict[str, str] | None = {} if errors else None  # for the errors file
            plan = _plan(entries, done, self.out.root, full_urls)
            with _signals(self._on_signal):
                yield from self._record(self.engine.run(plan), writer, full_urls, bar, started)
            complete = self._signum is None and not self._disk_full
            self._finish(done, writer, complete)
        finally:
            self.summary.seconds = time.monotonic() - started
            writer.close()
            done.close()
            if bar is not None:
                bar.close(complete)
            relay.stop()
            self.out.close()

    def _open(self, errors: Path | None) -> tuple[DoneIndex, ManifestWriter]:
        """Open the output folder and the manifest; a run that cannot start leaves nothing behind."""
        new_folders = _missing_folders(self.out.root, self.manifest_path.parent, *([errors.parent] if errors else []))
        new_manifest = not self.manifest_path.exists()
        try:
            self.out.open()
            return DoneIndex(self.manifest_path), ManifestWriter(self.manifest_path, errors)
        except BaseException:
            self.out.close()
            if new_manifest and _is_empty_file(self.manifest_path):
                self.manifest_path.unlink()
            _remove_if_empty(new_folders)
            raise

    def _record(self, records: Iterator[FetchResult], writer: ManifestWriter, full_urls: dict[str, str] | None,
                bar: Progress | None, started: float) -> Iterator[FetchResult]:
        """Write each record to the manifest, count it, show it, and hand it on."""
        root = os.path.abspath(self.out.root)
        for result in records:
            if result.status == CANCELLED:
                continue  # not this URL's fault; the next run fetches it
            if not self._write(writer, result, full_urls):
                break  # not even the reserve is left: stop at once
            if result.path:
                result.abspath = os.path.join(root, result.path)
            self.summary.add(result)
            self.summary.seconds = time.monotonic() - started
            if bar is not None:
                bar.add(result)
            yield result

    def _write(self, writer: ManifestWriter, result: FetchResult, full_urls: dict[str, str] | None) -> bool:
        """Write one record; False when the disk is too full even for that."""
        try:
            writer.write(result, full_urls.pop(result.key, None) if full_urls is not None else None)
        except DiskFull:
            self._disk_full = True
            return False
        if (result.error_kind == "disk_full" or writer.low_space) and not self._disk_full:
            self._disk_full = True  # stop: downloads in flight finish into the manifest's reserve
            log.warning("the disk is full: stopping")
        return True

    def _finish(self, done: DoneIndex, writer: ManifestWriter, complete: bool) -> None:
        """Close the manifest; after a complete run, compact it if old records make up most of it."""
        writer.close()
        done.close()
        if complete and done.lines + writer.written > COMPACT_RATIO * max(writer.written, len(done), 1):
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
        self.out.close()
        # os._exit (public despite its name): end now, without running cleanup that waits on workers.
        os._exit(SIGNAL_EXIT_BASE + self._signum)


def _live_children() -> set[int]:
    """PIDs of the processes this one started that are still running.

    A PID outlives its process only as a number: once the process is gone, another program may
    get it. Under forkserver a worker whose fork server has died counts as gone here; it exits by
    itself when our end of its pipe closes.
    """
    return {child.pid for child in multiprocessing.active_children() if child.pid is not None}


def _plan(entries: Iterator[Entry], done: DoneIndex, root: Path,
          full_urls: dict[str, str] | None) -> Iterator[Task | FetchResult]:
    """Turn entries into tasks, or into ready records: invalid, duplicate, skipped."""
    seen = KeySet()
    for entry in entries:
        if entry.url is None:
            yield FetchResult(url=mask_url(entry.raw), key=normalized_key(entry.raw), line=entry.line, status=INVALID,
                              error=entry.error, error_kind="invalid", columns=entry.columns)
            continue
        key = normalized_key(entry.url)
        masked = mask_url(entry.url)
        if not seen.add(bytes.fromhex(key)):
            yield FetchResult(url=masked, key=key, line=entry.line, status=DUPLICATE,
                              error="same URL as an earlier line", columns=entry.columns)
            continue
        previous = done.get(key)
        if previous is not None and file_matches(root, previous["path"], previous["bytes"]):
            yield FetchResult(url=masked, key=key, line=entry.line, status=SKIPPED, columns=entry.columns,
                              **previous)  # the facts of the record it stands for
            continue
        if full_urls is not None:
            full_urls[key] = entry.url
        yield Task(entry.url, key, entry.line, entry.columns, previous["path"] if previous else None)


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


def _missing_folders(*folders: Path) -> list[Path]:
    """The folders (and their missing parents) that do not exist yet, deepest first."""
    missing: list[Path] = []
    for folder in folders:
        for candidate in (folder, *folder.parents):
            if candidate.exists() or candidate in missing:
                break
            missing.append(candidate)
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def _is_empty_file(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty, or not ours to remove
