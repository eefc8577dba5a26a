"""What runs inside a worker process: fetch -> validate -> store -> one plain record per URL.

Workers never raise across the process boundary and never print; they log through a queue
that the parent drains.
"""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from .fetcher import CANCELLED_ERROR, Fetcher, StopFlag
from .images import NotAnImage, inspect_image
from .logrelay import install_in_worker
from .options import Options
from .records import CANCELLED, FAILED, OK, FetchResult, Task
from .sources import mask_url
from .storage import ignore_file_size_signal, target_name, write_atomic

log = logging.getLogger(__name__)
pid_log = logging.getLogger("imgfetch.pids")
PID_LINE = "[Process ID]:%d Downloading %s"


class _ProcessState:
    """Per-process: the fetcher (a session per thread) and the download threads."""

    def __init__(self, opts: Options, stop: StopFlag | None) -> None:
        self.opts = opts
        self.pid = os.getpid()
        self.fetcher = Fetcher(opts, stop)
        self.threads = ThreadPoolExecutor(max_workers=opts.threads, thread_name_prefix="imgfetch-dl")
        # Our own --max-pixels check decides; Pillow's fixed global limit must not pre-empt it.
        # (Only in pool workers, which are ours; an in-process fetch() leaves the global alone.)
        Image.MAX_IMAGE_PIXELS = None


_state: _ProcessState | None = None
_stop: StopFlag | None = None


def init_worker(stop: StopFlag | None, log_pipe: Any = None, log_level: int = logging.WARNING) -> None:
    """Pool initializer: the parent owns interruption, logging goes back to the parent."""
    global _stop, _state
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ignore_file_size_signal()
    _stop, _state = (_LocalStop(stop) if stop is not None else None), None  # never reuse an inherited session
    if log_pipe is not None:
        install_in_worker(log_pipe, log_level)
        pid_log.setLevel(logging.INFO)  # emitted only when options.log_pids asks for it


class _LocalStop:
    """The parent's stop event, mirrored into a threading.Event by one watcher thread.

    multiprocessing.Event.is_set() takes a cross-process lock; hundreds of download threads
    checking it between reads queue on it. The watcher polls rather than blocking in
    Event.wait(): a worker killed while waiting would leave the parent's Event.set() hanging
    (multiprocessing.Condition.notify waits for every sleeper to wake).
    """

    def __init__(self, shared: StopFlag) -> None:
        self._local = threading.Event()
        self._shared = shared
        threading.Thread(target=self._watch, name="imgfetch-stop-watch", daemon=True).start()

    def _watch(self) -> None:
        while not self._shared.is_set():
            self._local.wait(0.1)
        self._local.set()

    def is_set(self) -> bool:
        return self._local.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._local.wait(timeout)


def _state_for(opts: Options) -> _ProcessState:
    global _state
    if _state is None or _state.opts != opts or _state.pid != os.getpid():
        _state = _ProcessState(opts, _stop)
    return _state


def run_chunk(opts: Options, root: str, tmp: str, tasks: list[Task]) -> list[FetchResult]:
    """The pool's unit of work: a few tasks, run on this process's download threads."""
    state = _state_for(opts)
    root_path, tmp_path = Path(root), Path(tmp)

    def one(task: Task) -> FetchResult:
        return process_task(task, opts, state.fetcher, root_path, tmp_path)

    if len(tasks) == 1:
        return [one(tasks[0])]
    return list(state.threads.map(one, tasks))


def process_task(task: Task, opts: Options, fetcher: Fetcher, root: Path, tmp: Path) -> FetchResult:
    """Fetch, validate and store one URL. Every problem becomes a failed record."""
    started = time.monotonic()
    pid = os.getpid()
    masked = mask_url(task.url)
    if opts.log_pids:
        pid_log.info(PID_LINE, pid, masked)
    result = FetchResult(url=masked, key=task.key, line=task.line, status=FAILED, pid=pid,
                         columns=task.columns)
    try:
        _fill(result, task, opts, fetcher, root, tmp)
    except Exception as exc:  # a bug must not take the worker or the run down with it
        log.debug("unexpected error on %s", masked, exc_info=True)
        result.status, result.error = FAILED, f"internal error: {type(exc).__name__}: {exc}"
    result.elapsed_s = round(time.monotonic() - started, 4)
    result.fetched_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return result


def _fill(result: FetchResult, task: Task, opts: Options, fetcher: Fetcher, root: Path, tmp: Path) -> None:
    download = fetcher.fetch(task.url)
    result.attempts, result.http_status = download.attempts, download.http_status
    result.final_url = mask_url(download.final_url) if download.final_url else None
    if download.body is None:
        result.error = download.error
        if download.error == CANCELLED_ERROR:
            result.status = CANCELLED
        return
    body = download.body
    try:
        facts = inspect_image(body, formats=opts.formats, max_pixels=opts.max_pixels, verify=opts.verify,
                              content_type=download.content_type)
    except NotAnImage as exc:
        result.error = str(exc)
        return
    digest = hashlib.sha256(body).hexdigest()
    relpath = target_name(opts.naming, url=task.url, key=task.key, line=task.line, sha256=digest,
                          extension=facts.extension, columns=task.columns, subdirs=opts.subdirs)
    try:
        write_atomic(root, tmp, relpath, body, replace=opts.overwrite or relpath == task.owned_path)
    except OSError as exc:
        result.error = f"cannot save {relpath}: {exc.strerror or exc}"
        return
    result.status, result.path, result.bytes, result.sha256 = OK, relpath, len(body), digest
    result.format, result.width, result.height = facts.format, facts.width, facts.height


def ping(_: int) -> int:
    """A no-op task: lets the benchmark time pool start-up on its own."""
    return os.getpid()
