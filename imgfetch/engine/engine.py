"""``Engine``, the scheduling loop: keep every download slot busy, hand each record on the moment it exists.

The engine reads the plan (tasks, and records that need no download), hands tasks to a
backend as fast as it has room (the local pool, or Dask), frees each URL's per-host slot as
its record arrives, and passes ready-made records straight through. A stop (``_Stop``) still
records whatever finished; a run-level failure the backend raises while polling (ImgFetchError)
stops the run the same way, and is raised once the records are in.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Protocol

from ..errors import ImgFetchError
from ..options import Options
from ..records import CANCELLED, FetchResult, Task
from .politeness import Fits, HostScheduler

log = logging.getLogger(__name__)
STOP_GRACE_S = 5.0   # how long downloads in flight may go on after a stop request
ABORT_WAIT_S = 2.0   # then, how long to wait for the records of downloads cut short
IDLE_WAIT_S = 0.2    # longest wait for a record before looking at the stop flag again


class Backend(Protocol):
    worker_pids: set[int]

    def room(self) -> int: ...
    def outstanding(self) -> int: ...
    def limit(self) -> int: ...
    def submit(self, tasks: list[Task]) -> None: ...
    def poll(self, timeout: float) -> list[tuple[Task, FetchResult]]: ...
    def wake(self) -> None: ...
    def drain(self) -> None: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...
    def placement(self) -> Fits | None: ...


class InFlight(NamedTuple):
    """The URLs handed to the backend and not back yet; times are ``time.monotonic()``, None when there are none."""

    count: int
    oldest: float | None  # when the longest-waiting one was handed out
    newest: float | None  # when the latest one was


class _HandedOut:
    """When each URL in flight was handed to the backend: the parent's view of how long it has waited.

    The engine's loop writes it and the progress bar's ticker thread reads it, hence the lock.
    Keys are in the order they were handed out, so the oldest and the newest are the ends.
    """

    def __init__(self) -> None:
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, tasks: list[Task]) -> None:
        now = time.monotonic()
        with self._lock:
            for task in tasks:
                self._since[task.key] = now

    def remove(self, tasks: list[Task]) -> None:
        with self._lock:
            for task in tasks:
                self._since.pop(task.key, None)

    def now(self) -> InFlight:
        with self._lock:
            if not self._since:
                return InFlight(0, None, None)
            return InFlight(len(self._since), next(iter(self._since.values())), next(reversed(self._since.values())))


class Engine:
    """Runs a plan on a backend; ``run`` yields one record per input item, as each completes.

    The plan may be live (the Downloader's): it yields ``NOTHING_YET`` while it is empty for now, and
    ``wake()`` ends the wait for records when it has more. ``admit`` sees each batch of tasks before
    the backend does and keeps those still wanted (the others were cancelled while queued).
    """

    def __init__(self, opts: Options, root: str, tmp: str, *, log_pipe: Any = None,
                 stop_requested: Callable[[], bool] = lambda: False,
                 admit: Callable[[list[Task]], list[Task]] | None = None) -> None:
        self.opts, self.root, self.tmp, self.log_pipe = opts, root, tmp, log_pipe
        self.stop_requested, self.admit = stop_requested, admit
        self.grace_s = STOP_GRACE_S  # how long downloads in flight may go on after a stop request
        self.backend: Backend | None = None
        self._handed = _HandedOut()
        self.failure: ImgFetchError | None = None  # raised by the backend; the run stops, then raises it

    @property
    def worker_pids(self) -> set[int]:
        return self.backend.worker_pids if self.backend is not None else set()

    @property
    def capacity(self) -> int:
        """How many records may still come from downloads handed out now or soon (0 before the start)."""
        backend = self.backend
        return backend.limit() if backend is not None else 0

    def in_flight(self) -> InFlight:
        """How many URLs are out with the workers, and since when; safe to call from any thread."""
        return self._handed.now()

    def start(self) -> None:
        """Start the backend's workers now, rather than when ``run`` starts."""
        if self.backend is not None:
            return
        if self.opts.executor == "dask":
            from .dask_pool import DaskPool

            self.backend = DaskPool(self.opts, self.root, self.tmp)
        else:
            from .pool import LocalPool

            self.backend = LocalPool(self.opts, self.root, self.tmp, self.log_pipe)

    def wake(self) -> None:
        """The plan has more (or a stop was requested): end the wait for records now. From any thread."""
        backend = self.backend
        if backend is not None:
            backend.wake()

    def run(self, items: Iterable[Task | FetchResult]) -> Iterator[FetchResult]:
        feeder = HostScheduler(iter(items), self.opts.per_host, self.opts.rate)
        self.start()
        backend = self.backend
        assert backend is not None
        try:
            yield from self._loop(feeder, backend)
            if self.failure is not None:
                raise self.failure
        finally:
            backend.close()

    def _loop(self, feeder: HostScheduler, backend: Backend) -> Iterator[FetchResult]:
        passthrough: list[FetchResult] = []
        exhausted = False
        stop = _Stop(backend)
        while True:
            if not stop.started and (self.failure is not None or self.stop_requested()):
                stop.start(self.grace_s)
            more = False
            if not stop.started and not exhausted:
                exhausted, more = _hand_out(feeder, backend, passthrough, self._handed, self.admit)
            if passthrough:
                yield from passthrough
                passthrough.clear()
            if not backend.outstanding() and (exhausted or stop.started):
                return
            if stop.given_up():
                yield from _collect(feeder, backend, 0.0, self._handed)  # records that came in as we gave up still count
                return
            try:
                yield from _collect(feeder, backend, 0.0 if more else min(IDLE_WAIT_S, feeder.wait_hint()), self._handed)
            except ImgFetchError as exc:  # from poll: the backend cannot go on. Stop as on Ctrl-C, then raise
                log.debug("stopping: %s", exc)
                self.failure = self.failure or exc


class _Stop:
    """A stop in progress: no new tasks at once, downloads cut after STOP_GRACE_S, given up ABORT_WAIT_S later."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.stop_at: float | None = None   # when the grace period ends
        self.abort_at: float | None = None  # when we stop waiting for cut-short downloads

    @property
    def started(self) -> bool:
        return self.stop_at is not None

    def start(self, grace_s: float = STOP_GRACE_S) -> None:
        self.backend.drain()
        self.stop_at = time.monotonic() + grace_s

    def given_up(self) -> bool:
        """Cut the downloads still going at the end of the grace period; True once their records are not awaited."""
        if self.stop_at is None:
            return False
        now = time.monotonic()
        if self.abort_at is None and now >= self.stop_at:
            self.backend.abort()
            self.abort_at = now + ABORT_WAIT_S
        if self.abort_at is not None and now >= self.abort_at:
            log.warning("%d download(s) did not end after the stop; they are not recorded",
                        self.backend.outstanding())
            return True
        return False


def _collect(feeder: HostScheduler, backend: Backend, timeout: float,
             handed: _HandedOut) -> Iterator[FetchResult]:
    """Wait up to ``timeout`` for records; free their hosts' slots and hand them on."""
    finished = backend.poll(timeout)
    if finished:
        tasks = [task for task, _ in finished]
        handed.remove(tasks)
        feeder.release(tasks)
        for _task, record in finished:
            if record.status != CANCELLED:  # not this URL's fault; the next run fetches it
                yield record


def _hand_out(feeder: HostScheduler, backend: Backend, passthrough: list[FetchResult],
              handed: _HandedOut, admit: Callable[[list[Task]], list[Task]] | None = None) -> tuple[bool, bool]:
    """Hand the backend as many tasks as it has room for: (plan exhausted, more ready to hand out)."""
    room = backend.room()
    while room > 0:
        tasks = feeder.take(room, passthrough, backend.placement())
        if tasks is None:
            return True, False
        if not tasks:
            return False, feeder.has_backlog(passthrough)
        if admit is not None:
            wanted = admit(tasks)
            if len(wanted) < len(tasks):
                kept = {id(task) for task in wanted}
                feeder.release([task for task in tasks if id(task) not in kept])  # cancelled while queued
                tasks = wanted
                if not tasks:
                    continue
        backend.submit(tasks)
        handed.add(tasks)
        room -= len(tasks)
    return False, False
