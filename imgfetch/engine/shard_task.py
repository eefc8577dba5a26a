"""A shard as one task on a cluster (--executor dask): slice N of the list, run in the Dask worker process.

The task plans its entries as a run does (invalid, duplicate within the shard, done by an earlier
attempt), hands the URLs to the process's download threads, which run the same per-URL pipeline as a
local worker (pipeline.py), and writes the shard's outputs itself (shard_sinks.py). It returns only the
shard's counts, a few hundred bytes.

A Dask worker process keeps one pool of --threads download threads per run, shared by its shards, and runs
at most SHARDS_PER_PROCESS of them at once (a Dask thread beyond that waits for a turn), so --nthreads 64
means 2 shards on --threads threads, not 64 x --threads threads. A stop reaches the task through the run's
markers (markers.py).
"""
from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeAlias

from ..net.fetcher import Fetcher
from ..options import Options
from ..records import CANCELLED, FetchResult, Task, cancelled_record
from ..report.summary import Summary
from ..store.shards import take_held
from .backlog import BACKLOG_BYTES, BACKLOG_PER_THREAD, Backlog
from .markers import MarkerFlag, dask_worker, scheduler_flag
from .pipeline import Fetched, fetch_task, keep_fetched, own_process
from .plan import Planner
from .shard_job import SHARDS_PER_PROCESS, ShardJob, progress_topic
from .shard_sinks import open_sink, remove_stale_staging

REASONS_SENT = 20       # failure reasons a shard's counts carry back to the client
RUNS_KEPT = 4           # runs a Dask worker process keeps threads for (runs may share a cluster)
PROGRESS_S = 1.0        # how often a running shard tells the client how far it is (for the bar)


Result: TypeAlias = "tuple[FetchResult, Any]"  # a record and, for a dataset, its image held for the shard
Route: TypeAlias = "queue.SimpleQueue[Result | BaseException]"  # where a shard's records come back


class ProcessState:
    """Per Dask worker process and run: the download threads, one fetcher for them, the stop flag, and the
    backlog of fetched bodies with its keeper threads (the image step: see backlog.py), shared by the shards
    the process runs. The Downloader's per-URL Dask tasks (dask_pool.py) use its fetcher and stop flag too."""

    def __init__(self, opts: Options, tmp: str, remote: bool) -> None:
        self.opts, self.pid = opts, os.getpid()
        self.stop: Any = scheduler_flag(tmp) if remote else MarkerFlag(tmp)
        own_process(opts)
        self.fetcher = Fetcher(opts, self.stop)
        self.threads = ThreadPoolExecutor(opts.threads, thread_name_prefix="imgfetch-dl")
        self.backlog: Backlog[tuple[Fetched, ShardJob, Route]] = Backlog(opts.threads * BACKLOG_PER_THREAD,
                                                                         BACKLOG_BYTES)
        self.backlog.start_keepers(self._keep, opts.threads)
        self.turns = threading.BoundedSemaphore(SHARDS_PER_PROCESS)
        if opts.output_format != "files":
            remove_stale_staging()

    def _keep(self, item: tuple[Fetched, ShardJob, Route]) -> None:
        fetched, job, route = item
        try:  # a body that waited past a stop's cut is not kept: fetched again by the next run
            route.put((cancelled_record(fetched.task), None) if self.stop.is_set() else _keep(fetched, job, self))
        except BaseException as exc:  # never leave the shard waiting for a record
            route.put(exc)

    def close(self) -> None:
        self.threads.shutdown(wait=False)
        self.backlog.stop_keepers()


_states: dict[str, ProcessState] = {}  # by the run's temporary folder, unique to the run
_state_lock = threading.Lock()


def process_state(opts: Options, tmp: str, remote: bool) -> ProcessState:
    """This process's state for the run whose temporary folder is ``tmp``, made on its first task."""
    with _state_lock:
        state = _states.get(tmp)
        if state is None or state.opts != opts or state.pid != os.getpid():
            state = _states[tmp] = ProcessState(opts, tmp, remote)
            while len(_states) > RUNS_KEPT:
                _states.pop(next(iter(_states))).close()
        return state


def run_shard(job: ShardJob) -> dict[str, Any]:
    """Run one shard and write its outputs; return its counts (see ``shard_counts``)."""
    started = time.monotonic()
    if not job.may_start():
        return _cancelled(job, started)
    state = process_state(job.opts, job.tmp, job.destination is not None)
    with state.turns:
        if not job.may_start():
            return _cancelled(job, started)
        return _run(job, state, started)


def _run(job: ShardJob, state: ProcessState, started: float) -> dict[str, Any]:
    sink = open_sink(job.opts, job.destination or job.out, job.number, [e.columns for e in job.entries[:1]])
    if sink.done is not None:  # finished before (a retried task whose result was lost): nothing to do
        sink.discard()
        return {**sink.done, "number": job.number, "complete": True, "repeated": True}
    summary, cancelled = Summary(), 0
    try:
        planner = Planner(sink.done_index, Path(job.out), job.opts.retry_failed, repeat=False)
        progress = _Progress(job)
        route: Route = queue.SimpleQueue()
        pending = 0
        for entry in job.entries:
            planned = planner.plan(entry)
            if isinstance(planned.item, FetchResult):
                sink.add(planned.item, None, fetched=False, append=planned.append)
                summary.add(planned.item)
                progress.add(planned.item)
            else:
                state.threads.submit(_fetch, planned.item, job, state, route)
                pending += 1
        for _ in range(pending):
            result = route.get()
            if isinstance(result, BaseException):
                raise result  # a bug: the task fails, and Dask runs the shard again
            record, held = result
            if record.status == CANCELLED:  # never recorded: fetched again by the next run
                cancelled += 1
                continue
            sink.add(record, held)
            summary.add(record)
            progress.add(record)
        complete = cancelled == 0 and sink.finish(summary.as_dict(REASONS_SENT))
    finally:
        sink.close()
    return {**summary.as_dict(REASONS_SENT), "number": job.number, "complete": complete, "cancelled": cancelled,
            "seconds": round(time.monotonic() - started, 3), "pid": os.getpid()}


class _Progress:
    """Tells the client, at most every PROGRESS_S, how many records this shard has made so far in this run (not
    counting those an earlier attempt made): a Dask event, batched with the worker's other messages."""

    def __init__(self, job: ShardJob) -> None:
        self.topic, self.number, self.done = progress_topic(job.tmp), job.number, 0
        self.sent_at = time.monotonic()
        self.worker = dask_worker()  # None outside a Dask worker: nobody to tell

    def add(self, record: FetchResult) -> None:
        if record.skipped or self.worker is None:
            return
        self.done += 1
        now = time.monotonic()
        if now - self.sent_at >= PROGRESS_S:
            self.sent_at = now
            self.worker.log_event(self.topic, [self.number, self.done])


def _fetch(task: Task, job: ShardJob, state: ProcessState, route: Route) -> None:
    """One URL on a download thread: its body goes to the backlog (the thread starts its next URL at once),
    or its record, when there is no body, straight back to its shard."""
    try:
        if not job.may_start():
            route.put((cancelled_record(task), None))
            return
        fetched = fetch_task(task, job.opts, state.fetcher)
        if fetched.body is None:
            route.put(_keep(fetched, job, state))
        else:
            state.backlog.put((fetched, job, route), len(fetched.body))
    except BaseException as exc:  # never leave the shard waiting for a record
        route.put(exc)


def _keep(fetched: Fetched, job: ShardJob, state: ProcessState) -> Result:
    """The local worker's image step; a dataset's image comes back beside its record."""
    record = keep_fetched(fetched, job.opts, Path(job.out), Path(job.tmp), cancel_save=state.stop.check,
                          notes=False)  # the part is this shard's manifest: nothing for a run's journal to recover
    return record, take_held()


def _cancelled(job: ShardJob, started: float) -> dict[str, Any]:
    return {"number": job.number, "complete": False, "cancelled": len(job.entries), "counts": {},
            "seconds": round(time.monotonic() - started, 3), "pid": os.getpid()}
