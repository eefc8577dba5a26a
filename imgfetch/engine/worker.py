"""What runs inside a worker process: fetch -> validate -> store -> one plain record per URL.

A local worker process (``worker_main``) talks to the parent over one duplex pipe. The parent sends small
batches of tasks; ``capacity`` download threads take them one at a time from a local queue; a sender thread
sends each finished record back at once (records that finish together travel in one message). So no thread
ever waits for another URL to finish. For a dataset, the outbox files each record in the process's shard.

Messages, parent -> worker: ("tasks", [Task, ...]), ("drain",) stop starting queued tasks, ("abort",) cut
downloads in flight too, ("exit",). Worker -> parent: ("ready", pid) once all its threads run,
("init-failed", message), ("start-failed", message) before it exits unready, ("results", [FetchResult, ...]).

Workers never raise across the process boundary and never print; they log through a pipe that the parent drains.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from PIL import Image
from urllib3.exceptions import InsecureRequestWarning

from ..net.fetcher import CANCELLED_ERROR, Fetcher
from ..images import NotAnImage
from ..logrelay import install_in_worker
from .markers import MarkerFlag, may_start
from .shaping import shape
from ..options import Options
from ..records import CANCELLED, FAILED, OK, FetchResult, Task
from ..urls import mask_url
from ..store.files import ignore_file_size_signal, target_name, write_atomic
from ..store.journal import save_notes
from ..net.limits import raise_open_files_limit
from ..store.shards import close_shard, hold_sample, shard_outbox
from ..net.watchdog import Watchdog

log = logging.getLogger(__name__)
pid_log = logging.getLogger("imgfetch.pids")
PID_LINE = "[Process ID]:%d Downloading %s"
PARENT_CHECK_S = 1.0  # how often an idle worker checks that its parent is still there
ELAPSED_DIGITS = 4    # decimals of a record's elapsed_s (a tenth of a millisecond)
THREAD_JOIN_S = 2.0   # how long an exiting worker waits for each of its threads


def worker_main(conn: Any, opts: Options, root: str, tmp: str, log_pipe: Any, log_level: int,
                capacity: int, quarantine: bool = False) -> None:
    """A local worker process: serve the parent's tasks on ``capacity`` threads until told to exit."""
    # The parent owns interruption: a Ctrl-C or a SIGTERM sent to the whole process group must
    # not kill downloads that the parent gives a grace period to finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ignore_file_size_signal()
    if log_pipe is not None:
        install_in_worker(log_pipe, log_level)
        pid_log.setLevel(logging.INFO)  # emitted only when options.log_pids asks for it
    own_process(opts)
    if opts.initializer is not None:
        try:
            opts.initializer(*opts.initargs)
        except BaseException as exc:  # reported to the parent, which ends the run with one line
            conn.send(("init-failed", f"{type(exc).__name__}: {exc}"))
            return
    worker = _Worker(conn, opts, Path(root), Path(tmp), capacity, quarantine)
    try:
        worker.start()
    except RuntimeError as exc:  # "can't start new thread": exit unready, so its tasks count as innocent
        threads = f"{capacity} download thread{'' if capacity == 1 else 's'}"
        why = f"a worker process cannot start its {threads} ({type(exc).__name__}: {exc}); try fewer --threads"
        conn.send(("start-failed", why))
        return
    conn.send(("ready", os.getpid()))  # only now: a worker that is ready can work
    worker.serve()


class _Worker:
    def __init__(self, conn: Any, opts: Options, root: Path, tmp: Path, capacity: int, quarantine: bool) -> None:
        self.conn, self.opts, self.root, self.tmp = conn, opts, root, tmp
        self.inbox: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self.outbox = shard_outbox(queue.SimpleQueue(), opts, tmp, quarantine)  # a dataset: records filed in shards
        self.draining = threading.Event()
        self.aborted = threading.Event()
        self.fetcher = Fetcher(opts, self.aborted)
        self.threads = [threading.Thread(target=self._download_loop, name=f"imgfetch-dl-{n}", daemon=True)
                        for n in range(capacity)]
        self.sender = threading.Thread(target=self._send_loop, name="imgfetch-send", daemon=True)

    def start(self) -> None:
        self.sender.start()
        for thread in self.threads:
            thread.start()

    def serve(self) -> None:
        try:
            self._listen()
        except (EOFError, OSError):
            pass  # the parent went away
        self._shutdown()

    def _listen(self) -> None:
        """Act on the parent's messages until it says exit, or is gone."""
        # The process that started us, not os.getppid(): under forkserver that is the fork
        # server, which a SIGTERM to the process group ends while the run goes on.
        parent = multiprocessing.parent_process()
        while True:
            if not self.conn.poll(PARENT_CHECK_S):
                if parent is not None and not parent.is_alive():
                    return  # orphaned: the run is gone
                continue
            message = self.conn.recv()
            if message[0] == "tasks":
                for task in message[1]:
                    self.inbox.put(task)
            elif message[0] == "drain":
                self._drain()
            elif message[0] == "abort":
                self._abort()
            elif message[0] == "exit":
                return

    def _shutdown(self) -> None:
        """Cut what is in flight, let the threads send its records, and end them."""
        self._abort()
        for _ in self.threads:
            self.inbox.put(None)
        for thread in self.threads:
            thread.join(timeout=THREAD_JOIN_S)
        self.outbox.put(None)
        self.sender.join(timeout=THREAD_JOIN_S)

    def _drain(self) -> None:
        """Stop starting tasks: hand back every queued one at once (threads finish what they hold)."""
        self.draining.set()
        while True:
            try:
                task = self.inbox.get_nowait()
            except queue.Empty:
                return
            if task is not None:
                self.outbox.put(cancelled_record(task))

    def _abort(self) -> None:
        self._drain()
        self.aborted.set()
        Watchdog.get().abort_all()
        close_shard(self.outbox)  # at once, with what it holds: not at the end of a slow exit, nor never

    def _download_loop(self) -> None:
        while True:
            task = self.inbox.get()
            if task is None:
                return
            if self.draining.is_set():
                record = cancelled_record(task)
            else:
                record = process_task(task, self.opts, self.fetcher, self.root, self.tmp)
            self.outbox.put(record)

    def _send_loop(self) -> None:
        while True:
            item = self.outbox.get()
            batch, last = [], False
            while item is not None:
                batch.append(item)
                try:
                    item = self.outbox.get_nowait()
                except queue.Empty:
                    break
            else:
                last = True
            if batch:
                try:
                    self.conn.send(("results", batch))
                except OSError:
                    return  # the parent went away
            if last:
                return


def own_process(opts: Options) -> None:
    """Settings for a process that is ours alone (a pool worker): global state may be set."""
    # Our own --max-pixels check decides; Pillow's global limit (which some decoders check on their own, e.g.
    # WebP and TIFF) must not pre-empt a larger --max-pixels. It stays as a backstop. fetch() leaves it alone.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, opts.max_pixels)
    raise_open_files_limit()  # room for idle connections to many hosts; before the Fetcher sizes its budget
    if opts.insecure:  # the parent warns once for the run, not once per URL
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)


def cancelled_record(task: Task) -> FetchResult:
    """A task the run stopped before it started: never recorded, fetched again next run."""
    return FetchResult(url=mask_url(task.url), key=task.key, line=task.line, status=CANCELLED,
                       error=CANCELLED_ERROR, columns=task.columns)


class _RunState:
    """Per Dask worker process and run: one fetcher for its threads, cut when the run aborts."""

    def __init__(self, opts: Options, tmp: str) -> None:
        self.opts, self.pid = opts, os.getpid()
        self.stop = MarkerFlag(tmp)
        own_process(opts)
        self.fetcher = Fetcher(opts, self.stop)


RUNS_KEPT = 4  # runs a Dask worker process keeps a fetcher for (runs may share a cluster)
_states: dict[str, _RunState] = {}  # by the run's temporary folder, unique to the run
_state_lock = threading.Lock()


def _run_state(opts: Options, tmp: str) -> _RunState:
    with _state_lock:
        state = _states.get(tmp)
        if state is None or state.opts != opts or state.pid != os.getpid():
            state = _states[tmp] = _RunState(opts, tmp)
            while len(_states) > RUNS_KEPT:
                del _states[next(iter(_states))]
        return state


def dask_task(opts: Options, root: str, tmp: str, task: Task) -> FetchResult:
    """One URL as one Dask task, on whichever Dask worker thread runs it.

    The run's marker files (engine/markers.py) stand in for the local pool's drain and abort
    messages: a task queued when the run stopped returns at once without downloading, and one
    in flight when it aborted is cut and saves nothing.
    """
    if not may_start(tmp):
        return cancelled_record(task)
    state = _run_state(opts, tmp)
    return process_task(task, opts, state.fetcher, Path(root), Path(tmp), cancel_save=state.stop.check)


def process_task(task: Task, opts: Options, fetcher: Fetcher, root: Path, tmp: Path, *,
                 cancel_save: Callable[[], bool] | None = None, notes: bool = True) -> FetchResult:
    """Fetch, validate and store one URL. Every problem becomes a failed record.

    ``cancel_save`` is asked just before the image is saved: True makes the URL cancelled
    (nothing saved, nothing recorded, fetched again next run). ``notes``: note each save in
    the run's temporary folder first (store/journal.py); a run's workers do, fetch() need not."""
    started, pid, masked = time.monotonic(), os.getpid(), mask_url(task.url)
    if opts.log_pids:
        pid_log.info(PID_LINE, pid, masked)
    result = FetchResult(url=masked, key=task.key, line=task.line, status=FAILED, pid=pid,
                         columns=task.columns)
    try:
        _fill(result, task, opts, fetcher, root, tmp, cancel_save, notes)
    except Exception as exc:  # a bug must not take the worker or the run down with it
        log.warning("internal error on %s: %s: %s", masked, type(exc).__name__, exc, exc_info=True)
        result.status, result.error = FAILED, f"internal error: {type(exc).__name__}: {exc}"
        result.error_kind = "internal"
    result.elapsed_s = round(time.monotonic() - started, ELAPSED_DIGITS)
    result.fetched_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return result


def _fill(result: FetchResult, task: Task, opts: Options, fetcher: Fetcher, root: Path, tmp: Path,
          cancel_save: Callable[[], bool] | None, notes: bool) -> None:
    download = fetcher.fetch(task.url)
    result.attempts, result.http_status = download.attempts, download.http_status
    result.final_url = mask_url(download.final_url) if download.final_url else None
    if download.body is None:
        result.error, result.error_kind = download.error, download.error_kind
        if download.error == CANCELLED_ERROR:
            result.status, result.error_kind = CANCELLED, None
        return
    try:  # check, filter, resize, re-encode (engine/shaping.py): body and facts are what is saved
        body, facts = shape(result, download.body, opts, download.content_type)
    except NotAnImage as exc:
        result.error, result.error_kind = str(exc), exc.kind
        return
    digest = hashlib.sha256(body).hexdigest()
    if opts.output_format != "files":  # a dataset: the worker's shard writer takes the image with its record
        return hold_sample(result, body, facts, digest)
    relpath = target_name(opts.naming, url=task.url, key=task.key, line=task.line, sha256=digest,
                          extension=facts.extension, columns=task.columns, subdirs=opts.subdirs)
    if cancel_save is not None and cancel_save():
        result.status, result.error = CANCELLED, CANCELLED_ERROR
        return
    try:
        if notes:  # see store/journal.py: a kill between this save and its record
            save_notes(tmp).note(task.key, digest, len(body), relpath)
        write_atomic(root, tmp, relpath, body, replace=opts.overwrite or relpath == task.owned_path)
    except OSError as exc:
        result.error = f"cannot save {relpath}: {exc.strerror or exc}"
        result.error_kind = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "disk"
        return
    result.status, result.path, result.bytes, result.sha256 = OK, relpath, len(body), digest
    result.format, result.width, result.height = facts.format, facts.width, facts.height

