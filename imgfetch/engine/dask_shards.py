"""The client's side of a sharded run on Dask: hand out shards, collect their counts (imports distributed).

Each shard is one Dask task (shard_job.run_shard, which runs shard_task.run_shard in the Dask worker). The
client keeps IN_FLIGHT_PER_WORKER of them per Dask worker process, each placed on the worker with the fewest
(a loose placement: should that worker die, Dask retries the shard on another), looked at again as workers
join or leave. What comes back is a shard's counts, and while it runs, its record count once a second (a Dask
event). A stop: the README's "Running on a Dask cluster", through the run's markers (markers.py). Before any
shard, one task checks an object-storage OUT and lists its complete shards (``survey``).
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from typing import Any, Iterator

from ..options import Options
from ..records import ErrorKind
from ..store.parts import survey
from ..store.remote import Destination
from .dask_pool import DaskClient
from .engine import ABORT_WAIT_S, STOP_GRACE_S
from .markers import RunMarkers, SchedulerMarkers
from .shard_job import SHARDS_PER_PROCESS, ShardJob, progress_topic, run_shard

log = logging.getLogger(__name__)
IN_FLIGHT_PER_WORKER = SHARDS_PER_PROCESS + 1  # two running, one ready to start
POLL_S = 0.25          # how often the loop looks at a stop and at the cluster's workers
WORKERS_CHECK_S = 2.0  # how often the cluster's workers are looked at again


class ShardClient(DaskClient[tuple[int, str, int]]):
    """Runs ShardJobs on --scheduler's cluster (or a LocalCluster of --workers processes); ``held``: each
    future's (shard number, the worker it was placed on, URLs)."""

    def __init__(self, opts: Options, tmp: str, *, remote: bool = False) -> None:
        """``remote``: OUT is object storage, so the stop state lives in the scheduler, not in ``tmp``."""
        self.markers = RunMarkers(tmp)
        if not remote:
            self.markers.create()
        super().__init__(opts, IN_FLIGHT_PER_WORKER, "shards")
        if remote:
            self.markers = SchedulerMarkers(self.client, tmp)
            self.markers.create()
        self.topic = progress_topic(tmp)
        self.client.subscribe_topic(self.topic, self._on_progress)
        self.run_id = uuid.uuid4().hex[:8]
        self.assigned: Counter[str] = Counter()
        self.workers: list[str] = []
        self._workers_at = float("-inf")
        self.stop_requested = False
        self._stopped_at: float | None = None
        self._aborted_at: float | None = None

    def _on_progress(self, event: tuple[float, Any]) -> None:
        """A running shard's record count so far (on the client's event loop thread)."""
        self.finished.put(tuple(event[1]))

    def stop(self) -> None:
        """Stop as on Ctrl-C (from a signal handler): no URL starts from now on; the loop does the rest."""
        self.stop_requested = True
        self.markers.drain()
        self.finished.put(None)

    def run(self, items: Iterator[ShardJob | dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Submit each job, a worker's share at a time, and yield each shard's counts as it ends. A dict
        among ``items`` is a shard done earlier: it is yielded as it comes."""
        more = True
        while True:
            if self.stop_requested:
                if not self._stopping():
                    return
            else:
                while more and len(self.held) < self._capacity():
                    item = next(items, None)
                    if item is None:
                        more = False
                    elif isinstance(item, dict):
                        yield item
                    else:
                        self._submit(item)
            if not self.held and (not more or self.stop_requested):
                return
            yield from self._collect(POLL_S)

    def survey(self, destination: Destination) -> dict[int, dict[str, Any]] | None:
        """The stats of the shards complete on ``destination``, found by a task on the cluster, which checks it
        first (an OutputError comes back as itself); so the client never imports fsspec or s3fs. None if the
        run was stopped meanwhile."""
        future = self.client.submit(survey, destination, key=f"imgfetch-survey-{self.run_id}", pure=False)
        future.add_done_callback(self.finished.put)
        while not future.done():
            if self.stop_requested:
                self.client.cancel(future)
                return None
            self._reported(POLL_S)
        found: dict[int, dict[str, Any]] = future.result()
        return found

    def _capacity(self) -> int:
        """Shards to keep in flight: IN_FLIGHT_PER_WORKER per Dask worker process now in the cluster."""
        now = time.monotonic()
        if now - self._workers_at > WORKERS_CHECK_S:
            self.workers = sorted(self.client.nthreads())
            self._workers_at = now
        return IN_FLIGHT_PER_WORKER * len(self.workers)

    def _submit(self, job: ShardJob) -> None:
        worker = min(self.workers, key=lambda address: self.assigned[address])
        future = self.client.submit(run_shard, job, key=f"imgfetch-shard-{self.run_id}-{job.number:05d}",
                                    workers=[worker], allow_other_workers=True, pure=False)
        self.held[future] = (job.number, worker, len(job.entries))
        self.assigned[worker] += 1
        future.add_done_callback(self.finished.put)  # on Dask's callback thread

    def _collect(self, timeout: float) -> Iterator[dict[str, Any]]:
        for future in self._reported(timeout):
            if isinstance(future, tuple):  # (shard number, records so far): a running shard's progress
                yield {"progress": True, "number": future[0], "done": future[1]}
                continue
            if future is None or future not in self.held or not future.done():
                continue  # a wake-up, or a result lost with its worker: Dask runs the shard again
            number, worker, size = self.held.pop(future)
            self.assigned[worker] -= 1
            yield self._counts(future, number, size)

    def _counts(self, future: Any, number: int, size: int) -> dict[str, Any]:
        try:
            return future.result()
        except Exception as exc:  # KilledWorker (a shard that keeps killing workers), or a bug
            if self._stopped_at is not None:  # cancelled or lost during a stop: nothing to say
                return {"number": number, "complete": False, "counts": {}}
            log.warning("shard %05d was not finished (%s: %s); its URLs are fetched by the next run",
                        number, type(exc).__name__, exc)
            # Counted as failures (not written: the next run fetches them) so that the run does not end "all ok".
            why = f"its shard was not finished ({type(exc).__name__}); fetched by the next run"
            return {"number": number, "complete": False, "counts": {"failed": size}, "reasons": {why: size},
                    "failures": [[ErrorKind.CRASHED.value, None, size]]}

    def _stopping(self) -> bool:
        """Drain, then cut after the grace period, then give up; False once there is nothing to wait for."""
        now = time.monotonic()
        if self._stopped_at is None:
            self._stopped_at = now
            self.markers.drain()
        if self._aborted_at is None and now - self._stopped_at >= STOP_GRACE_S:
            self._aborted_at = now
            self.markers.abort()
        return bool(self.held) and (self._aborted_at is None or now - self._aborted_at < ABORT_WAIT_S)

    def close(self) -> None:
        """Leave the cluster; no task saves anything from now on (their markers are gone)."""
        try:
            self.client.unsubscribe_topic(self.topic)
        finally:
            self._leave(wait=self._aborted_at is None)

