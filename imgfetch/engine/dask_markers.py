"""How a run stops its shard tasks when OUT is object storage: the run's state in the Dask scheduler.

markers.py's files need a folder every Dask worker shares; with -o s3://... there is none (the run's
temporary folder is on the client's disk). Objects in the bucket would do, but a client killed before its
cleanup would leave them behind, and a HEAD per check costs money. So the state lives in the one place
every Dask worker already reaches: the scheduler's task metadata, under RUNS_KEY / the run's name. The
client sets it to RUNNING, then DRAINING at a stop (no URL starts), then deletes it at an abort and at the
end of the run. A task reads anything but RUNNING as "do not start" and anything but RUNNING or
DRAINING (a missing entry included: the run is over) as "cut now, save nothing", the same positive
reading as the marker files, so a task the run no longer waits for never saves.

A Dask worker process asks at most every CHECK_S per run (one small scheduler call), not per URL.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from .markers import poll_until

RUNS_KEY = "imgfetch-runs"
RUNNING, DRAINING = "run", "drain"
CHECK_S = 0.2  # how stale a process's answer may be


class SchedulerMarkers:
    """The client's side, shaped like markers.RunMarkers: create, drain, abort (and forget, at the end)."""

    def __init__(self, client: Any, run: str) -> None:
        self.client, self.run = client, run

    def create(self) -> None:
        self.client.set_metadata([RUNS_KEY, self.run], RUNNING)

    def drain(self) -> None:
        """No task starts a download from now on."""
        self._set(DRAINING)

    def abort(self) -> None:
        """Downloads in flight are cut, and none is saved from now on: the run's entry goes."""
        run = self.run

        def forget(dask_scheduler: Any) -> None:
            dask_scheduler.task_metadata.get(RUNS_KEY, {}).pop(run, None)

        try:
            self.client.run_on_scheduler(forget)
        except Exception:  # noqa: BLE001 - the scheduler is gone: so is the entry
            pass

    def _set(self, state: str) -> None:
        try:
            self.client.set_metadata([RUNS_KEY, self.run], state)
        except Exception:  # noqa: BLE001 - the scheduler is gone: the tasks stop with it
            pass


class SchedulerFlag:
    """A Dask worker process's view of one run's state: ``may_start()``, and a stop flag for the fetcher
    and the watchdog (``check``, ``is_set``, ``wait``, as markers.MarkerFlag). Once set, it stays set."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.worker = _this_worker()  # made in a Dask thread: download threads cannot look it up themselves
        self._state: str | None = RUNNING
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self._set = False

    def _ask(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._checked_at >= CHECK_S:
                self.worker = self.worker or _this_worker()
                self._state = _scheduler_state(self.worker, self.run)
                self._checked_at = time.monotonic()
            return self._state

    def may_start(self) -> bool:
        return not self._set and self._ask() == RUNNING

    def check(self) -> bool:
        if not self._set and self._ask() not in (RUNNING, DRAINING):
            self._set = True
        return self._set

    is_set = check

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds (None: until set); True as soon as the flag is set."""
        return poll_until(self.check, timeout, CHECK_S)


def _this_worker() -> Any:
    """The Dask worker this thread runs a task for, or None."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _scheduler_state(worker: Any, run: str) -> str | None:
    """The run's state as the scheduler holds it; None when it has none (or cannot be asked: the run is over)."""
    if worker is None:
        return None
    try:
        from distributed.utils import sync

        return sync(worker.loop, worker.scheduler.get_metadata, keys=[RUNS_KEY, run], default=None)
    except Exception:  # noqa: BLE001 - not in a Dask worker, or the scheduler is gone
        return None


_flags: dict[str, SchedulerFlag] = {}
_flags_lock = threading.Lock()
FLAGS_KEPT = 8


def scheduler_flag(run: str) -> SchedulerFlag:
    """This process's flag for the run (one per run, shared by its shards and threads)."""
    with _flags_lock:
        flag = _flags.get(run)
        if flag is None:
            flag = _flags[run] = SchedulerFlag(run)
            while len(_flags) > FLAGS_KEPT:
                _flags.pop(next(iter(_flags)))
        return flag
