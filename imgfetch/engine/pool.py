"""The local pool: ``--workers`` processes x ``--threads`` download threads, fed per URL, each process over a
duplex pipe of its own. Why not ``ProcessPoolExecutor``, and how a worker's death is pinned on one URL (its
suspects retried one by one in quarantine processes): the README's "The engine".

A run-level failure found while polling (an initializer that raises, workers that keep dying as
they start) is raised by ``poll``; the records read before it are handed out by the next
``poll``, and the engine stops the run as on Ctrl-C before raising it, so nothing that finished
goes unrecorded. ``worker_pids`` holds the PIDs of live processes only: a dead worker's PID may
soon be another program's.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import time
from collections import deque
from multiprocessing.connection import wait
from typing import Any, Iterable

from ..errors import ImgFetchError, PoolKeepsDying, WorkerInitFailed
from ..options import Options
from ..records import FetchResult, Task, crashed_record
from ..store.shards import worker_imports
from .affinity import Affinity
from .backlog import BACKLOG_PER_THREAD
from .politeness import Fits
from .waker import Waker
from .worker import worker_main

log = logging.getLogger(__name__)
QUARANTINE_WORKERS = 2     # processes at once that retry suspects, one suspect per process
MAX_STARTUP_DEATHS = 5     # workers in a row dying before they are ready: give up
JOIN_S = 2.0               # how long close() waits for a worker to exit before terminating it
KILLED_JOIN_S = 1.0        # then, how long it waits for a killed worker to be gone
PREFETCH_MIN = 2           # URLs queued in a worker beyond its threads, at the least
PREFETCH_SHARE = 8         # and one more per this many threads
HOSTS_PER_WORKER = 1_024   # hosts whose connections the pool keeps track of, per worker: as many as one keeps idle
Done = tuple[Task, FetchResult]


class _WorkerHandle:
    """The parent's handle on one worker process and the tasks it holds."""

    def __init__(self, ctx: Any, args: tuple[Any, ...], capacity: int, window: int, quarantine: bool) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.taken = ctx.Value("q", 0, lock=False)  # bodies its keepers have taken from its backlog (worker.py)
        name = "imgfetch-quarantine" if quarantine else "imgfetch-worker"
        self.process = ctx.Process(target=worker_main, args=(child, *args, capacity, quarantine, self.taken),
                                   name=name, daemon=True)
        self.process.start()
        child.close()
        self.pid: int = self.process.pid
        self.window, self.capacity = window, capacity
        self.quarantine = quarantine
        self.held: dict[str, Task] = {}
        self.fetched: dict[str, int] = {}  # held URLs whose bodies are in its backlog (no thread holds them): position
        self.entered = 0  # bodies it has said entered its backlog
        self.ready = False
        self.retiring = False  # told to exit: a quarantine process whose one suspect is done
        self.gone = False

    @property
    def room(self) -> int:
        return 0 if self.gone or self.retiring else self.window - len(self.held) + len(self.fetched)

    @property
    def free_threads(self) -> int:
        """Threads with nothing to do (as far as the parent knows): a task sent now starts at once."""
        return max(0, min(self.room, self.capacity - len(self.held) + len(self.fetched)))

    def send(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):  # it died; its sentinel will say so
            self.conn.send(message)

    def give(self, tasks: list[Task]) -> None:
        for task in tasks:
            self.held[task.key] = task
        self.send(("tasks", tasks))


class LocalPool:
    """Processes x threads on this machine. See the module docstring."""

    def __init__(self, opts: Options, root: str, tmp: str, log_pipe: Any = None) -> None:
        self.opts = opts
        self.ctx = multiprocessing.get_context(opts.start_method)
        if opts.start_method == "forkserver":
            # The fork server imports requests and Pillow once (and pyarrow for a dataset); every worker forked
            # from it starts warm.
            self.ctx.set_forkserver_preload(["imgfetch.engine.worker", *worker_imports(opts.output_format)])
        level = logging.getLogger("imgfetch").getEffectiveLevel()
        self._args = (opts, root, tmp, log_pipe, level)
        self.window = opts.threads + max(PREFETCH_MIN, opts.threads // PREFETCH_SHARE)  # a thread that ends starts the next
        self.worker_pids: set[int] = set()  # live processes only: see the module docstring
        self.workers = [self._spawn() for _ in range(opts.workers)]
        self.affinity: Affinity[_WorkerHandle] = Affinity(HOSTS_PER_WORKER * opts.workers)  # which workers hold which hosts
        self.quarantine: list[_WorkerHandle] = []
        self.suspects: deque[Task] = deque()
        self.startup_deaths = 0
        self.start_failure: str | None = None  # why the last worker could not start, if it said
        self.kept: list[Done] = []  # records read in a poll that raised: the next poll hands them out
        self.stopping = False
        self.waker = Waker()  # wake(): a poll() in progress returns at once

    def _spawn(self, quarantine: bool = False) -> _WorkerHandle:
        threads, window = (1, 1) if quarantine else (self.opts.threads, self.window)
        worker = _WorkerHandle(self.ctx, self._args, threads, window, quarantine)
        self.worker_pids.add(worker.pid)
        return worker

    def room(self) -> int:
        """How many more tasks the workers take now."""
        return 0 if self.stopping else sum(w.room for w in self.workers)

    def outstanding(self) -> int:
        return sum(len(w.held) for w in (*self.workers, *self.quarantine)) + len(self.suspects) + len(self.kept)

    def limit(self) -> int:
        """The most tasks whose records may still come: those held, those it has room for, and those its
        workers may take while bodies wait in their backlogs (worker.py)."""
        backlogs = sum(self.opts.threads * BACKLOG_PER_THREAD - len(w.fetched) for w in self.workers)
        return self.room() + self.outstanding() + max(0, backlogs)

    def placement(self) -> Fits:
        """For the scheduler's next take: whether a host's URL would go to a worker with an idle connection."""
        return self.affinity.fits(self.workers)

    def submit(self, tasks: list[Task]) -> None:
        """Share tasks among the workers within their windows: each to a worker with an idle connection
        to its host if one has room (engine/affinity.py), else to the emptiest."""
        for worker, given in self.affinity.place(tasks, self.workers):
            worker.give(given)

    def poll(self, timeout: float) -> list[Done]:
        """Wait up to ``timeout`` for records; returns (task, record) for each finished task."""
        # A worker's death is the end of its pipe, not its process sentinel: under forkserver the
        # sentinel also fires when the fork server dies (a SIGTERM to the process group), while
        # the worker lives on and finishes its downloads. The pipe's end also means every record
        # it sent has been read.
        by_conn = {worker.conn: worker for worker in (*self.workers, *self.quarantine)}
        done, self.kept = self.kept, []
        try:
            for ready in wait([*by_conn, self.waker], 0.0 if done else timeout):
                if ready is self.waker:
                    self.waker.clear()
                    continue
                worker = by_conn[ready]
                if not worker.gone and not self._receive(worker, done):
                    self._died(worker, done)
            self._feed_quarantine()
        except ImgFetchError:
            self.kept = done  # their images are saved: they must reach the manifest
            raise
        return done

    def _receive(self, worker: _WorkerHandle, done: list[Done]) -> bool:
        """Read what the worker sent; False once its pipe has ended (it exited or died)."""
        while True:
            try:
                if not worker.conn.poll():
                    return True
                message = worker.conn.recv()
            except (EOFError, OSError):
                return False
            kind = message[0]
            if kind == "results":
                for record in message[1]:
                    if isinstance(record, str):  # a key: its body is in the worker's backlog (worker.py)
                        if record in worker.held and record not in worker.fetched:
                            worker.fetched[record] = worker.entered  # its thread and its connection are free
                            self.affinity.done(worker.held[record], worker)
                        worker.entered += 1
                        continue
                    task = worker.held.pop(record.key, None)
                    if task is not None:
                        done.append((task, record))
                        if record.key not in worker.fetched:
                            self.affinity.done(task, worker)
                    worker.fetched.pop(record.key, None)
                if worker.quarantine and not worker.held:
                    worker.retiring = True  # one suspect per process: whatever it broke dies with it
                    worker.send(("exit",))
            elif kind == "ready":  # its threads are running: it has truly started
                worker.ready = True
                self.startup_deaths, self.start_failure = 0, None
            elif kind == "start-failed":
                self.start_failure = message[1]
            elif kind == "init-failed":
                raise WorkerInitFailed(f"the worker initializer failed: {message[1]}")

    def _died(self, worker: _WorkerHandle, done: list[Done]) -> None:
        """A worker's pipe has ended: it exited or died. Replace it, and retry or convict what it held."""
        (self.quarantine if worker.quarantine else self.workers).remove(worker)
        self._reap([worker])  # it is exiting, if not gone already
        if self.stopping or worker.retiring:
            return  # it held nothing, or what the stop leaves unfinished: fetched again next run
        unstarted = self._suspect_held(worker, done) if worker.ready else self._died_starting(worker)
        if worker.quarantine:
            self.suspects.extendleft(unstarted)
        else:
            replacement = self._spawn()
            self.workers.append(replacement)
            if unstarted:
                replacement.give(unstarted)

    def _died_starting(self, worker: _WorkerHandle) -> list[Task]:
        """A worker died before it was ready: the tasks it held, all innocent (it never started them)."""
        self.startup_deaths += 1
        if self.startup_deaths > MAX_STARTUP_DEATHS:
            why = self.start_failure or ("with spawn or forkserver, a script must call imgfetch under "
                                         "`if __name__ == '__main__':`")
            raise PoolKeepsDying(f"worker processes keep dying as soon as they start: {why}")
        return list(worker.held.values())

    def _suspect_held(self, worker: _WorkerHandle, done: list[Done]) -> list[Task]:
        """A worker died while downloading: each URL it may have been working on is retried alone, or convicted
        if it was retried; what it returns, the URLs whose bodies never left its backlog, are innocent."""
        if worker.quarantine:
            log.warning("a URL killed its process a second time (exit code %s): recorded as worker crashed",
                        worker.process.exitcode)
            innocent: list[Task] = []
        else:
            taken = worker.taken.value  # a body at a position it has not reached never met the image step
            innocent = [task for key, task in worker.held.items() if worker.fetched.get(key, -1) >= taken]
            suspects = len(worker.held) - len(innocent)
            log.warning("a worker process died (exit code %s) holding %d URL%s; retrying the %d it may have been "
                        "working on one by one%s", worker.process.exitcode, len(worker.held),
                        "" if len(worker.held) == 1 else "s", suspects,
                        f" (the {len(innocent)} waiting for the image step as usual)" if innocent else "")
            for task in innocent:
                del worker.held[task.key]
        for task in worker.held.values():
            if task.suspect >= 1:
                done.append((task, crashed_record(task, "its process died twice while fetching this URL")))
            else:
                self.suspects.append(dataclasses.replace(task, suspect=task.suspect + 1))
        return innocent

    def _feed_quarantine(self) -> None:
        """A fresh process for each suspect: one that a suspect left broken could kill the next one."""
        if self.stopping:
            return
        while self.suspects and len(self.quarantine) < QUARANTINE_WORKERS:
            worker = self._spawn(quarantine=True)
            self.quarantine.append(worker)
            worker.give([self.suspects.popleft()])

    def wake(self) -> None:
        """Make a poll() in progress return now (from any thread): there is new work."""
        self.waker.set()

    def drain(self) -> None:
        """Stop: no new tasks; queued ones come back cancelled; in-flight ones go on."""
        self.stopping = True
        self.suspects.clear()  # never started in this run: fetched again by the next
        for worker in (*self.workers, *self.quarantine):
            worker.send(("drain",))

    def abort(self) -> None:
        """Cut the downloads in flight; their records (mostly cancelled) follow at once."""
        for worker in (*self.workers, *self.quarantine):
            worker.send(("abort",))

    def close(self) -> None:
        everyone = [*self.workers, *self.quarantine]
        for worker in everyone:
            worker.send(("exit",))
        self._reap(everyone)
        self.workers, self.quarantine = [], []
        self.waker.close()

    def _reap(self, workers: Iterable[_WorkerHandle]) -> None:
        """Wait for workers to exit (killing any that do not); their PIDs leave ``worker_pids``."""
        deadline = time.monotonic() + JOIN_S
        for worker in workers:
            worker.gone = True
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():  # workers ignore SIGTERM (see worker_main)
                worker.process.kill()
                worker.process.join(KILLED_JOIN_S)
            worker.conn.close()
            self.worker_pids.discard(worker.pid)
