"""Where work runs: a process pool of download threads, fed in bounded chunks, rebuilt if a worker dies."""
from __future__ import annotations

import logging
import multiprocessing
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

from .errors import ImgFetchError
from .options import Options
from .politeness import HostScheduler
from .records import FAILED, FetchResult, Task
from .sources import mask_url
from .worker import init_worker, run_chunk

log = logging.getLogger(__name__)
IN_FLIGHT_PER_WORKER = 2   # chunks queued per process: one running, one ready to start
STOP_GRACE_S = 5.0         # how long in-flight chunks may take to finish after a stop request
MAX_BARREN_REBUILDS = 5    # pool rebuilds in a row with no chunk finishing before we give up


class PoolKeepsDying(ImgFetchError):
    """Worker processes die as soon as they start; the run cannot make progress."""


class WorkerPool:
    """Runs tasks on ``opts.workers`` processes x ``opts.threads`` threads and yields their records."""

    def __init__(self, opts: Options, root: str, tmp: str, *, log_pipe: Any = None,
                 stop_requested: Callable[[], bool] = lambda: False) -> None:
        self.opts, self.root, self.tmp = opts, root, tmp
        self.ctx = multiprocessing.get_context(opts.start_method)
        if opts.start_method == "forkserver":
            # The fork server imports requests and Pillow once; every worker forked from it starts warm.
            self.ctx.set_forkserver_preload(["imgfetch.worker"])
        self.stop = self.ctx.Event()
        self.log_pipe = log_pipe
        self.stop_requested = stop_requested
        self.chunk_size = opts.threads
        self.executor: Executor | None = None
        self._close_dask: Callable[[], None] | None = None
        self.worker_pids: set[int] = set()

    def _start(self) -> Executor:
        if self.opts.executor == "dask":
            from .dask_executor import start_dask

            self.executor, self._close_dask = start_dask(self.opts)
            return self.executor
        level = logging.getLogger("imgfetch").getEffectiveLevel()
        self.executor = ProcessPoolExecutor(
            max_workers=self.opts.workers, mp_context=self.ctx, initializer=init_worker,
            initargs=(self.stop, self.log_pipe, level))
        return self.executor

    def run(self, items: Iterable[Task | FetchResult]) -> Iterator[FetchResult]:
        """Yield a record per item as work completes; ready-made records pass straight through."""
        feeder = _feeder(iter(items), self.opts)
        retry: deque[Task] = deque()   # tasks from a crashed pool, re-run one per chunk
        running: dict[Future, list[Task]] = {}
        passthrough: list[FetchResult] = []
        executor = self._start()
        barren, exhausted = 0, False
        limit = self.opts.workers * IN_FLIGHT_PER_WORKER
        try:
            while True:
                if self.stop_requested():
                    yield from self._wind_down(running)
                    return
                while len(running) < limit:
                    if retry and not any(c[0].suspect for c in running.values()):
                        # One suspect at a time, alone in its chunk: if the pool breaks again, the
                        # culprit is known, and the URLs beside it only get their first strike.
                        chunk = [retry.popleft()]
                    elif exhausted:
                        break
                    else:
                        chunk = feeder.take(self.chunk_size, passthrough)
                        if chunk is None:
                            exhausted = True
                            break
                        if not chunk:
                            break  # only ready-made records so far: hand them out first
                    running[executor.submit(run_chunk, self.opts, self.root, self.tmp, chunk)] = chunk
                yield from passthrough
                passthrough.clear()
                if not running:
                    if exhausted and not retry:
                        return
                    if not passthrough:
                        time.sleep(feeder.wait_hint())  # every startable host is at its limit
                    continue
                done, _ = wait(running, timeout=feeder.wait_hint(), return_when=FIRST_COMPLETED)
                self._note_pids(executor)
                broken = False
                for future in done:
                    chunk = running.pop(future)
                    feeder.release(chunk)
                    try:
                        yield from future.result()
                        barren = 0
                    except BrokenProcessPool:
                        broken = True
                        yield from self._requeue(chunk, retry)
                    except Exception as exc:  # Dask: a worker lost (KilledWorker) or a transport error
                        log.warning("a chunk was lost (%s); retrying its URLs", type(exc).__name__)
                        yield from self._requeue(chunk, retry)
                if broken and (self.stop.is_set() or self.stop_requested()):
                    return  # the signal that stops us reached the workers too: nothing to rebuild
                if broken:
                    barren += 1
                    for chunk in running.values():
                        feeder.release(chunk)
                        yield from self._requeue(chunk, retry)
                    running.clear()
                    if barren > MAX_BARREN_REBUILDS:
                        raise PoolKeepsDying(
                            "worker processes keep dying as soon as they start; with spawn or forkserver, a script "
                            "must call imgfetch under `if __name__ == '__main__':`")
                    log.warning("a worker process died; restarting the pool and retrying its URLs")
                    executor.shutdown(wait=False, cancel_futures=True)
                    executor = self._start()
        finally:
            self._shutdown(executor)

    def _requeue(self, chunk: list[Task], retry: deque[Task]) -> Iterator[FetchResult]:
        for task in chunk:
            if task.suspect >= 1:
                yield crashed_record(task)
            else:
                retry.append(Task(task.url, task.key, task.line, task.columns, task.owned_path, task.suspect + 1))

    def _wind_down(self, running: dict[Future, list[Task]]) -> Iterator[FetchResult]:
        """Stop requested: cancel what has not started, let in-flight chunks end briefly."""
        self.stop.set()
        for future in running:
            future.cancel()
        deadline = time.monotonic() + STOP_GRACE_S
        pending = {f for f in running if not f.cancelled()}
        while pending and time.monotonic() < deadline:
            done, pending = wait(pending, timeout=max(0.0, deadline - time.monotonic()))
            for future in done:
                try:
                    yield from future.result()
                except Exception:  # a chunk lost to the stop is simply not recorded
                    pass

    def _note_pids(self, executor: Executor) -> None:
        processes = getattr(executor, "_processes", None) or {}
        self.worker_pids.update(processes)

    def _shutdown(self, executor: Executor) -> None:
        self.stop.set()
        if self._close_dask is not None:
            executor.shutdown(wait=False)
            self._close_dask()
            self._close_dask = None
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(timeout=1.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=1.0)
            if process.is_alive():
                process.kill()


class _PlainFeeder:
    """No politeness limits: tasks in list order, as fast as the pool takes them."""

    def __init__(self, source: Iterator[Task | FetchResult]) -> None:
        self.source = source

    def take(self, n: int, passthrough: list[FetchResult]) -> list[Task] | None:
        """Up to n tasks; [] when ready-made records should be flushed first; None at the end."""
        chunk: list[Task] = []
        for item in self.source:
            if isinstance(item, FetchResult):
                passthrough.append(item)
                if len(passthrough) >= 256:
                    return chunk
                continue
            chunk.append(item)
            if len(chunk) >= n:
                return chunk
        return chunk or None

    def release(self, chunk: list[Task]) -> None:
        pass

    def wait_hint(self) -> float:
        return 0.2


def _feeder(source: Iterator[Task | FetchResult], opts: Options) -> _PlainFeeder | HostScheduler:
    if opts.per_host or opts.rate:
        return HostScheduler(source, opts.per_host, opts.rate)
    return _PlainFeeder(source)


def crashed_record(task: Task) -> FetchResult:
    return FetchResult(url=mask_url(task.url), key=task.key, line=task.line, status=FAILED,
                       error="worker crashed (its process died twice while fetching this URL)",
                       columns=task.columns)
