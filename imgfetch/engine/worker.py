"""A local worker process: the parent's tasks in, each through the per-URL pipeline (pipeline.py), records out.

``capacity`` download threads take the parent's tasks one at a time from a local queue. A download thread
hands each body to a bounded backlog and starts its next download at once; keeper threads (one per CPU) check,
resize and store the bodies (pipeline.keep_fetched), so the list's last, slow URLs start sooner. A sender thread
sends each finished record back at once (records that finish together travel in one message), and the key of
each URL whose body entered the backlog (its thread is free). So no thread ever waits for another URL. For a
dataset, the outbox files each record in the process's shard.

Messages, parent -> worker: ("tasks", [Task, ...]), ("drain",) stop starting queued tasks, ("abort",) cut
downloads in flight too, ("exit",). Worker -> parent: ("ready", pid) once all its threads run,
("init-failed", message), ("start-failed", message) before it exits unready, ("results", [FetchResult or
key, ...]): a key alone says that URL's body is in the backlog.

Workers never raise across the process boundary and never print; they log through a pipe that the parent drains.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable

from ..logrelay import install_in_worker
from ..net.fetcher import Fetcher
from ..net.watchdog import Watchdog
from ..options import Options
from ..records import Task, cancelled_record
from ..store.files import ignore_file_size_signal
from ..store.shards import close_shard, shard_outbox
from .pipeline import Fetched, fetch_task, keep_fetched, own_process, pid_log

PARENT_CHECK_S = 1.0  # how often an idle worker checks that its parent is still there
THREAD_JOIN_S = 2.0   # how long an exiting worker waits for each of its threads
BACKLOG_PER_THREAD = 8  # fetched bodies waiting for the image step, per download thread, at most
BACKLOG_BYTES = 64 * 1024**2  # and their bytes in all (one body larger than this still goes in, alone)


def worker_main(conn: Any, opts: Options, root: str, tmp: str, log_pipe: Any, log_level: int,
                capacity: int, quarantine: bool = False, taken: Any = None) -> None:
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
    worker = _WorkerLoop(conn, opts, Path(root), Path(tmp), capacity, quarantine, taken)
    try:
        worker.start()
    except RuntimeError as exc:  # "can't start new thread": exit unready, so its tasks count as innocent
        threads = f"{capacity} download thread{'' if capacity == 1 else 's'}"
        why = f"a worker process cannot start its {threads} ({type(exc).__name__}: {exc}); try fewer --threads"
        conn.send(("start-failed", why))
        return
    conn.send(("ready", os.getpid()))  # only now: a worker that is ready can work
    worker.serve()


class _WorkerLoop:
    """The worker process's side: its listener (the main thread), download threads and sender thread."""

    def __init__(self, conn: Any, opts: Options, root: Path, tmp: Path, capacity: int, quarantine: bool,
                 taken: Any = None) -> None:
        self.conn, self.opts, self.root, self.tmp = conn, opts, root, tmp
        self.inbox: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self.outbox = shard_outbox(queue.SimpleQueue(), opts, tmp, quarantine)  # a dataset: records filed in shards
        self.draining = threading.Event()
        self.aborted = threading.Event()
        self.fetcher = Fetcher(opts, self.aborted)
        self.backlog = Backlog(capacity * BACKLOG_PER_THREAD, BACKLOG_BYTES, self.outbox.put, taken)
        self.threads = [threading.Thread(target=self._download_loop, name=f"imgfetch-dl-{n}", daemon=True)
                        for n in range(capacity)]
        self.keepers = [threading.Thread(target=self._keep_loop, name=f"imgfetch-keep-{n}", daemon=True)
                        for n in range(min(capacity, os.cpu_count() or 1))]
        self.sender = threading.Thread(target=self._send_loop, name="imgfetch-send", daemon=True)

    def start(self) -> None:
        self.sender.start()
        for thread in (*self.keepers, *self.threads):
            thread.start()

    def serve(self) -> None:
        with contextlib.suppress(EOFError, OSError):  # the parent went away
            self._listen()
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
        for _ in self.keepers:
            self.backlog.put(None, 0)
        for thread in self.keepers:
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
        for fetched in self.backlog.take_all():  # cut short too: fetched again by the next run
            self.outbox.put(cancelled_record(fetched.task))
        Watchdog.get().abort_all()
        close_shard(self.outbox)  # at once, with what it holds: not at the end of a slow exit, nor never

    def _download_loop(self) -> None:
        while True:
            task = self.inbox.get()
            if task is None:
                return
            if self.draining.is_set():
                self.outbox.put(cancelled_record(task))
                continue
            fetched = fetch_task(task, self.opts, self.fetcher)
            if fetched.body is None:  # a failure: its record is complete
                self.outbox.put(keep_fetched(fetched, self.opts, self.root, self.tmp))
            else:
                self.backlog.put(fetched, len(fetched.body))  # says so to the parent: this thread is free

    def _keep_loop(self) -> None:
        while True:
            fetched = self.backlog.get()
            if fetched is None:
                return
            self.outbox.put(keep_fetched(fetched, self.opts, self.root, self.tmp))

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


class Backlog:
    """Fetched URLs waiting for the image step, first in first out, at most ``count`` of them and ``size``
    bytes of bodies: ``put`` waits while it is full (an item larger than ``size`` goes in alone).

    Each URL's key is announced as it enters, in the backlog's order, and ``taken`` (a shared counter the
    parent reads should this process die) counts the bodies keepers have taken: a body the counter has not
    reached never met the image step, so it cannot have killed the process (pool.py)."""

    def __init__(self, count: int, size: int, announce: Callable[[str], None] = lambda key: None,
                 taken: Any = None) -> None:
        self.count, self.size = count, size
        self.announce, self.taken = announce, taken
        self.items: deque[tuple[Fetched | None, int]] = deque()
        self.bytes = 0
        lock = threading.Lock()
        self.not_full, self.not_empty = threading.Condition(lock), threading.Condition(lock)

    def put(self, item: Fetched | None, size: int) -> None:
        """Add ``item`` (None: a keeper's signal to end, never refused)."""
        with self.not_full:
            while item is not None and self.items and (len(self.items) >= self.count or self.bytes + size > self.size):
                self.not_full.wait()
            self.items.append((item, size))
            self.bytes += size
            if item is not None:
                self.announce(item.task.key)  # under the lock: the parent numbers the keys in this order
            self.not_empty.notify()

    def get(self) -> Fetched | None:
        with self.not_empty:
            while not self.items:
                self.not_empty.wait()
            item, size = self.items.popleft()
            self.bytes -= size
            if item is not None and self.taken is not None:
                self.taken.value += 1  # before its image step starts
            self.not_full.notify()  # one waiting download thread (once empty, any of them fits)
            return item

    def take_all(self) -> list[Fetched]:
        """Empty it (the worker is aborting): what it held; end signals stay."""
        with self.not_full:
            taken = [item for item, _ in self.items if item is not None]
            self.items = deque(entry for entry in self.items if entry[0] is None)
            self.bytes = 0
            self.not_full.notify_all()
            return taken
