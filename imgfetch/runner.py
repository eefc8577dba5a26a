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

from .errors import Interrupted
from .keys import KeySet
from .logrelay import LogRelay
from .manifest import MANIFEST_NAME, DoneIndex, ManifestWriter, Summary
from .options import Options
from .engine import Engine
from .records import CANCELLED, DUPLICATE, INVALID, OK, SKIPPED, FetchResult, Task
from .sources import Entry, mask_url, normalized_key, open_entries
from .storage import OutputDir, file_matches

log = logging.getLogger(__name__)


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

    @property
    def manifest_path(self) -> Path:
        return Path(self.opts.manifest) if self.opts.manifest else self.out.root / MANIFEST_NAME

    def results(self) -> Iterator[FetchResult]:
        """Yield one record per input URL as it completes; raises only for run-level failures."""
        entries = open_entries(self.urls, input_format=self.opts.input_format, url_column=self.opts.url_column,
                               url_key=self.opts.url_key, keep_columns=self.opts.keep_columns)
        if self.opts.executor == "dask":
            from .dask_executor import require_dask

            require_dask()
        if self.opts.insecure:
            log.warning("--insecure: TLS certificates are not checked for any URL of this run")
        started = time.monotonic()
        with self.out:
            done = DoneIndex(self.manifest_path)
            errors = Path(self.opts.errors) if self.opts.errors else None
            writer = ManifestWriter(self.manifest_path, errors)
            sized = isinstance(self.urls, (list, tuple))
            bar = progress_bar(self.opts.progress, self.label, total=len(self.urls) if sized else None)
            relay = LogRelay(multiprocessing.get_context(self.opts.start_method))
            try:
                self.engine = Engine(self.opts, str(self.out.root), str(self.out.tmp), log_pipe=relay.writer,
                                     stop_requested=lambda: self._signum is not None)
                full_urls: dict[str, str] = {}
                plan = _plan(entries, done, self.out.root, full_urls if errors else None)
                with _signals(self._on_signal):
                    for result in self.engine.run(plan):
                        if result.status == CANCELLED:
                            continue  # not this URL's fault; the next run fetches it
                        writer.write(result, full_urls.pop(result.key, None) if errors else None)
                        self.summary.add(result)
                        self.summary.seconds = time.monotonic() - started
                        _tick(bar, result, self.summary)
                        yield result
            finally:
                self.summary.seconds = time.monotonic() - started
                writer.close()
                done.close()
                if bar is not None:
                    _tick(bar, None, self.summary)
                    bar.close()
                relay.stop()
        if self._signum is not None:
            raise Interrupted(self._signum)

    def _on_signal(self, signum: int) -> None:
        if self._signum is None:
            self._signum = signum
            log.warning("stopping: finishing in-flight downloads (press Ctrl-C again to quit at once)")
            return
        if not self.hard_exit:
            raise KeyboardInterrupt
        # Second signal from a terminal: kill the workers, drop temporary files, go.
        if self.engine is not None:
            for pid in self.engine.worker_pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.out.close()
        os._exit(128 + self._signum)


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
        if previous is not None and file_matches(root, previous.path, previous.bytes):
            yield FetchResult(url=masked, key=key, line=entry.line, status=SKIPPED, path=previous.path,
                              bytes=previous.bytes, sha256=previous.sha256, columns=entry.columns)
            continue
        if full_urls is not None:
            full_urls[key] = entry.url
        yield Task(entry.url, key, entry.line, entry.columns, previous.path if previous else None)


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


def progress_bar(enabled: bool, label: str | None = None, total: int | None = None) -> Any:
    """A tqdm.auto bar (a notebook widget in Jupyter), or None."""
    if not enabled:
        return None
    from tqdm import tqdm as std_tqdm
    from tqdm.auto import tqdm

    std_tqdm.monitor_interval = 0  # no monitor thread: forking a threaded parent invites deadlocks
    return tqdm(desc=label, total=total, unit="img", dynamic_ncols=True, smoothing=0.1, mininterval=0.25)


def _tick(bar: Any, result: FetchResult | None, summary: Summary) -> None:
    """Count one record (or, with None, refresh the totals one last time)."""
    if bar is None:
        return
    if result is not None:
        bar.update(1)
    c = summary.counts
    if result is None or bar.n % 16 == 0 or result.status not in (OK, SKIPPED):
        bar.set_postfix_str(f"ok={c[OK] + c[SKIPPED]} failed={c['failed'] + c[INVALID]} "
                            f"{summary.bytes / 1e6:.1f}MB", refresh=False)
