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
from pathlib import Path
from typing import Any

from ..logrelay import install_in_worker
from ..net.fetcher import Fetcher
from ..net.watchdog import Watchdog
from ..options import Options
from ..records import Task, cancelled_record
from ..store.files import ignore_file_size_signal
from ..store.shards import close_shard, shard_outbox
from .backlog import BACKLOG_BYTES, BACKLOG_PER_THREAD, Backlog
from .pipeline import Fetched, fetch_task, keep_fetched, own_process, pid_log

PARENT_CHECK_S = 1.0  # how often an idle worker checks that its parent is still there
THREAD_JOIN_S = 2.0   # how long an exiting worker waits for each of its threads


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
        self.backlog: Backlog[Fetched] = Backlog(capacity * BACKLOG_PER_THREAD, BACKLOG_BYTES,
                                                 lambda fetched: self.outbox.put(fetched.task.key), taken)
        self.threads = [threading.Thread(target=self._download_loop, name=f"imgfetch-dl-{n}", daemon=True)
                        for n in range(capacity)]
        self.sender = threading.Thread(target=self._send_loop, name="imgfetch-send", daemon=True)

    def start(self) -> None:
        self.sender.start()
        self.backlog.start_keepers(self._keep, len(self.threads))
        for thread in self.threads:
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
        self.backlog.stop_keepers(THREAD_JOIN_S)
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

    def _keep(self, fetched: Fetched) -> None:
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
