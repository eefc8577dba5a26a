"""Run the same per-URL worker function on a Dask cluster.

Each URL is one Dask task, so a slow URL holds one Dask thread and nothing else, and the
work in flight follows the cluster's size: twice its total threads (workers x threads),
looked at again as workers join or leave. If a Dask worker dies, Dask itself retries its
tasks elsewhere and gives up on a URL that keeps killing workers (KilledWorker), which
becomes that URL's `worker crashed` record.
"""
from __future__ import annotations

import importlib
import logging
import queue
import time
from typing import Any

from ..errors import ImgFetchError
from ..options import Options
from ..records import FAILED, FetchResult, Task
from ..urls import mask_url
from .worker import cancelled_record, dask_task

log = logging.getLogger(__name__)
INSTALL_HINT = "--executor dask needs Dask: pip install 'imgfetch[dask]'"
IN_FLIGHT_PER_THREAD = 2   # tasks per Dask thread: one running, one ready to start
SIZE_CHECK_S = 2.0         # how often the cluster's size is looked at again
CONNECT_TIMEOUT_S = 30     # how long to try reaching --scheduler before giving up


def require_dask() -> None:
    """Fail early, before any download, when the extra is missing."""
    try:
        importlib.import_module("distributed")
    except ImportError:
        raise ImgFetchError(INSTALL_HINT) from None


class DaskPool:
    """The engine's backend on Dask: join --scheduler, or start a LocalCluster of --workers x --threads."""

    def __init__(self, opts: Options, root: str, tmp: str) -> None:
        require_dask()
        from distributed import Client, LocalCluster

        self.opts, self.root, self.tmp = opts, root, tmp
        self.cluster = None
        try:
            if opts.scheduler:
                self.client = Client(opts.scheduler, timeout=CONNECT_TIMEOUT_S)
            else:
                self.cluster = LocalCluster(n_workers=opts.workers, threads_per_worker=opts.threads, processes=True,
                                            host="127.0.0.1", dashboard_address="127.0.0.1:0")  # loopback only
                self.client = Client(self.cluster)
        except OSError as exc:
            if self.cluster is not None:
                self.cluster.close()
            raise ImgFetchError(f"cannot reach the Dask scheduler {opts.scheduler}: {exc}") from None
        log.info("running on Dask: %s", self.client)
        self.held: dict[Any, Task] = {}
        self.finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.worker_pids: set[int] = set()  # never filled: Dask's processes are Dask's to stop
        self.stopping = False
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

    def submit(self, tasks: list[Task]) -> None:
        futures = self.client.map(dask_task, [self.opts] * len(tasks), [self.root] * len(tasks),
                                  [self.tmp] * len(tasks), tasks, pure=False)
        for task, future in zip(tasks, futures):
            self.held[future] = task
            future.add_done_callback(self.finished.put)  # runs on the client's thread

    def poll(self, timeout: float) -> list[tuple[Task, FetchResult]]:
        done: list[tuple[Task, FetchResult]] = []
        try:
            future = self.finished.get(timeout=timeout) if timeout > 0 else self.finished.get_nowait()
        except queue.Empty:
            return done
        while True:
            task = self.held.pop(future, None)
            if task is not None:
                done.append((task, self._record(future, task)))
            try:
                future = self.finished.get_nowait()
            except queue.Empty:
                return done

    def _record(self, future: Any, task: Task) -> FetchResult:
        if future.cancelled():
            return cancelled_record(task)
        try:
            record = future.result()
        except Exception as exc:  # KilledWorker, or a transport error
            if self.stopping:
                return cancelled_record(task)
            log.warning("a Dask task was lost (%s)", type(exc).__name__)
            return FetchResult(url=mask_url(task.url), key=task.key, line=task.line, status=FAILED,
                               error=f"worker crashed ({type(exc).__name__}: Dask gave up on this URL)", error_kind="crashed",
                               columns=task.columns)
        return record

    def wake(self) -> None:
        """Make a poll() in progress return now (from any thread): None is no future, so it yields nothing."""
        self.finished.put(None)

    def drain(self) -> None:
        """Stop handing out tasks. The client cannot tell queued from running tasks, so all in
        flight (at most IN_FLIGHT_PER_THREAD per Dask thread) get the grace period."""
        self.stopping = True

    def abort(self) -> None:
        self.client.cancel(list(self.held))

    def close(self) -> None:
        try:
            if self.held:
                self.client.cancel(list(self.held))
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
