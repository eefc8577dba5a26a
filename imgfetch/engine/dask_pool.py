"""The Downloader's backend on a Dask cluster: the same per-URL pipeline (pipeline.py), one Dask task per URL.

Each URL is one Dask task, so a slow URL holds one Dask thread and nothing else, and the
work in flight follows the cluster's size: twice its total threads (workers x threads),
looked at again as workers join or leave. If a Dask worker dies, Dask itself retries its
tasks elsewhere and gives up on a URL that keeps killing workers (KilledWorker), which
becomes that URL's `worker crashed` record.

A stop goes through the run's marker files (markers.py: a cancelled Dask future stops nothing), and
the engine waits for the futures themselves, within the stop's time limits.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import queue
import time
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..errors import ImgFetchError
from ..options import Options
from ..records import FetchResult, Task, cancelled_record, crashed_record
from .markers import RunMarkers, SchedulerMarkers, may_start

log = logging.getLogger(__name__)
INSTALL_HINT = "--executor dask needs Dask: pip install 'imgfetch[dask]'"
IN_FLIGHT_PER_THREAD = 2   # tasks per Dask thread: one running, one ready to start
SIZE_CHECK_S = 2.0         # how often the cluster's size is looked at again
STOP_RESULT_WAIT_S = 1.0   # during a stop, how long to wait for a finished task's result to arrive
CLOSE_WAIT_S = 2.0         # at a close without a stop (the caller left early): wait this long for tasks to end
H = TypeVar("H")


def require_dask() -> None:
    """Fail early, before any download, when the extra is missing."""
    try:
        importlib.import_module("distributed")
    except ImportError:
        raise ImgFetchError(INSTALL_HINT) from None


def url_task(opts: Options, root: str, tmp: str, task: Task) -> FetchResult:
    """One URL as one Dask task, on whichever Dask worker thread runs it; a stop reaches it through the
    run's marker files (see the module docstring)."""
    from .pipeline import process_task  # here, in the Dask worker: the client imports nothing of the download path
    from .shard_task import process_state

    if not may_start(tmp):
        return cancelled_record(task)
    state = process_state(opts, tmp, remote=False)  # the process's fetcher for this run, shared with its threads
    return process_task(task, opts, state.fetcher, Path(root), Path(tmp), cancel_save=state.stop.check)


class DaskClient(Generic[H]):
    """What both Dask backends share: a client of --scheduler, or of a LocalCluster of our own; the futures
    held (each with what it stands for), and the queue their done-callbacks feed from Dask's callback thread.
    ``markers`` stop the run's tasks (markers.py: files, or for an OUT on object storage the scheduler)."""

    markers: RunMarkers | SchedulerMarkers

    def __init__(self, opts: Options, threads: int | None, what: str) -> None:
        from .dask_local import connect

        self.client, self.cluster = connect(opts, threads)
        log.info("running %s on Dask: %s", what, self.client)
        self.held: dict[Any, H] = {}
        self.finished: queue.SimpleQueue[Any] = queue.SimpleQueue()

    @property
    def worker_pids(self) -> set[int]:
        """Our own LocalCluster's worker processes (a second Ctrl-C kills them); none of a
        --scheduler's, which are its owner's to stop."""
        if self.cluster is None:
            return set()
        from .dask_local import local_worker_pids

        return local_worker_pids(self.cluster)

    def _reported(self, timeout: float) -> list[Any]:
        """What the callbacks have queued (futures, wake-ups), waiting up to ``timeout`` for the first."""
        found: list[Any] = []
        try:
            found.append(self.finished.get(timeout=timeout) if timeout > 0 else self.finished.get_nowait())
            while True:
                found.append(self.finished.get_nowait())
        except queue.Empty:
            return found

    def _leave(self, wait: bool) -> None:
        """Leave the cluster; no held task saves anything from now on. ``wait``: no stop came first (the caller
        left early), so wait a little for the held tasks to see the cut and end, so that none saves after we return."""
        try:
            self.markers.abort()
            if self.held and wait:
                wait_quietly(self.held, CLOSE_WAIT_S)
                running = sum(not future.done() for future in self.held)
                if running:
                    log.warning("%d Dask task(s) still running as the run ends; they save nothing", running)
            if self.held:
                self.client.cancel(list(self.held))  # frees the cluster of tasks not yet started
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


class DaskPool(DaskClient[Task]):
    """The engine's backend on Dask: join --scheduler, or start a LocalCluster of --workers x --threads."""

    def __init__(self, opts: Options, root: str, tmp: str) -> None:
        require_dask()
        self.opts, self.root, self.tmp = opts, root, tmp
        self.markers = RunMarkers(tmp)
        self.markers.create()
        super().__init__(opts, None, "URLs")
        self.lost: set[Any] = set()  # held futures reported done whose results were lost since
        self.stopping = False
        self.aborted = False
        self._capacity, self._sized_at = 0, 0.0

    def _cluster_threads(self) -> int:
        now = time.monotonic()
        if now - self._sized_at > SIZE_CHECK_S or not self._capacity:
            self._capacity = max(1, sum(self.client.nthreads().values())) * IN_FLIGHT_PER_THREAD
            self._sized_at = now
        return self._capacity

    def room(self) -> int:
        return 0 if self.stopping else max(0, self._cluster_threads() - len(self.held))

    def outstanding(self) -> int:
        return len(self.held)

    def limit(self) -> int:
        """The most tasks whose records may still come: those held and those it has room for."""
        return self.room() + self.outstanding()

    def placement(self) -> None:
        """Dask places tasks on its workers itself: every host fits (no placement check)."""

    def submit(self, tasks: list[Task]) -> None:
        futures = self.client.map(url_task, [self.opts] * len(tasks), [self.root] * len(tasks),
                                  [self.tmp] * len(tasks), tasks, pure=False)
        for task, future in zip(tasks, futures):
            self.held[future] = task
            future.add_done_callback(self.finished.put)  # runs on Dask's callback thread

    def poll(self, timeout: float) -> list[tuple[Task, FetchResult]]:
        done: list[tuple[Task, FetchResult]] = []
        for future in self._done_futures(timeout):
            if future not in self.held:
                continue  # swept up early, then reported again by its callback
            if not future.done():  # it finished, then the worker holding its result was lost: Dask runs it again
                self.lost.add(future)  # no callback: one fires at once while the future reads 'lost'
                continue
            task = self.held.pop(future)
            done.append((task, self._record(future, task)))
        return done

    def _done_futures(self, timeout: float) -> list[Any]:
        """Futures reported done by their callbacks, and lost ones done again. During a stop, any
        done future whose callback has not run yet (they run one at a time, on a thread of their
        own), so that the engine never gives up on a record that exists."""
        found = [future for future in (self.held if self.stopping else self.lost) if future.done()]
        self.lost.difference_update(found)
        return found + self._reported(0.0 if found else timeout)

    def _record(self, future: Any, task: Task) -> FetchResult:
        if future.cancelled():
            return cancelled_record(task)
        try:
            # During a stop, a result whose worker is lost may never come back: do not wait on it.
            record = future.result(timeout=STOP_RESULT_WAIT_S if self.stopping else None)
        except Exception as exc:  # KilledWorker, a transport error, or that timeout
            if self.stopping:
                return cancelled_record(task)
            log.warning("a Dask task was lost (%s)", type(exc).__name__)
            return crashed_record(task, f"{type(exc).__name__}: Dask gave up on this URL")
        return record

    def wake(self) -> None:
        """Make a poll() in progress return now (from any thread): None is no future, so it yields nothing."""
        self.finished.put(None)

    def drain(self) -> None:
        """Stop handing out tasks; those already queued on the cluster return cancelled as they start."""
        self.stopping = True
        self.markers.drain()

    def abort(self) -> None:
        """Cut the downloads in flight. Their futures are not cancelled: a cancelled future stops
        nothing on the worker, so the engine waits for each task to end and records what it saved."""
        self.aborted = True
        self.markers.abort()

    def close(self) -> None:
        self._leave(wait=not self.aborted)


def wait_quietly(futures: Any, seconds: float) -> None:
    """Wait up to ``seconds`` for Dask futures to end, however they end (done, cancelled, lost)."""
    from distributed import wait

    with contextlib.suppress(Exception):  # timed out, or some were cancelled or lost: nothing more to wait for
        wait(list(futures), timeout=seconds)
