"""How a run stops its Dask tasks: two marker files in the run's temporary folder, or, for an OUT on object
storage, the run's state in the Dask scheduler.

Dask cannot stop a running task, and a cancelled future only stops the client from waiting
for it: the task goes on and may save its image after the run has ended. So the parent tells
its tasks through the run's temporary folder, which every Dask worker already shares (it is in
OUT), at the cost of a stat() per URL and no scheduler round trip. Both files exist while the
run goes on:

- START_MARKER is removed at a drain: a task that has not started returns cancelled at once;
- SAVE_MARKER is removed at an abort: downloads in flight are cut and nothing more is saved.

A task that finds the temporary folder gone (the run is over) reads both as removed, so a task
the run no longer waits for never starts a download and never saves one.

With -o s3://... no folder is shared (the run's temporary folder is on the client's disk). Objects in the
bucket would do, but a client killed before its cleanup would leave them behind, and a HEAD per check costs
money. So the state lives where every Dask worker already reaches: the scheduler's task metadata, under
RUNS_KEY / the run's name. The client sets it to RUNNING, then DRAINING at a stop, and deletes it at an
abort and at the end of the run; a task reads it as positively as the files (a missing entry: the run is
over). A Dask worker process asks at most every SCHEDULER_CHECK_S per run (one small call), not per URL.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import OutputError

START_MARKER = ".may-start"
SAVE_MARKER = ".may-save"
CHECK_S = 0.1  # how stale a MarkerFlag's answer may be: one stat per process this often, not per chunk
RUNS_KEY = "imgfetch-runs"
RUNNING, DRAINING = "run", "drain"
SCHEDULER_CHECK_S = 0.2  # how stale a SchedulerFlag's answer may be
FLAGS_KEPT = 8


class RunMarkers:
    """The parent's side: create both markers before the first task, remove them to stop."""

    def __init__(self, tmp: str) -> None:
        self.start, self.save = Path(tmp, START_MARKER), Path(tmp, SAVE_MARKER)

    def create(self) -> None:
        """Both markers: downloads may start and save. OutputError when the folder cannot be written."""
        try:
            for path in (self.start, self.save):
                path.touch(0o644)
        except OSError as exc:
            raise OutputError(f"cannot write in {self.start.parent}: {exc.strerror or exc}") from None

    def drain(self) -> None:
        """No task starts a download from now on."""
        self.start.unlink(missing_ok=True)

    def abort(self) -> None:
        """Downloads in flight are cut, and none is saved from now on."""
        self.start.unlink(missing_ok=True)
        self.save.unlink(missing_ok=True)


def may_start(tmp: str) -> bool:
    """True while the run lets a new download start (one stat)."""
    return os.path.exists(os.path.join(tmp, START_MARKER))


class MarkerFlag:
    """Set once ``tmp``'s SAVE_MARKER is gone: a stop flag for the fetcher and the watchdog.

    ``is_set`` looks at the file at most every CHECK_S (the watchdog asks every tick for each
    download); ``check`` looks now. Once set, it stays set.
    """

    def __init__(self, tmp: str) -> None:
        self.path = os.path.join(tmp, SAVE_MARKER)
        self._set = False
        self._checked_at = float("-inf")

    def check(self) -> bool:
        self._checked_at = time.monotonic()
        if not self._set and not os.path.exists(self.path):
            self._set = True
        return self._set

    def is_set(self) -> bool:
        if self._set or time.monotonic() - self._checked_at < CHECK_S:
            return self._set
        return self.check()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds (None: until set); True as soon as the flag is set."""
        return poll_until(self.is_set, timeout, CHECK_S)


def poll_until(check: Callable[[], bool], timeout: float | None, every: float) -> bool:
    """Ask ``check`` every ``every`` seconds for up to ``timeout`` seconds (None: until it says yes)."""
    end = None if timeout is None else time.monotonic() + timeout
    while not check():
        left = every if end is None else end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(every, left))
    return True


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

        with contextlib.suppress(Exception):  # the scheduler is gone: so is the entry
            self.client.run_on_scheduler(forget)

    def _set(self, state: str) -> None:
        with contextlib.suppress(Exception):  # the scheduler is gone: the tasks stop with it
            self.client.set_metadata([RUNS_KEY, self.run], state)


class SchedulerFlag:
    """A Dask worker process's view of one run's state: ``may_start()``, and a stop flag for the fetcher
    and the watchdog (``check``, ``is_set``, ``wait``, as markers.MarkerFlag). Once set, it stays set."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.worker = dask_worker()  # made in a Dask thread: download threads cannot look it up themselves
        self._state: str | None = RUNNING
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self._set = False

    def _ask(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._checked_at >= SCHEDULER_CHECK_S:
                self.worker = self.worker or dask_worker()
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
        return poll_until(self.check, timeout, SCHEDULER_CHECK_S)


def dask_worker() -> Any:
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


def scheduler_flag(run: str) -> SchedulerFlag:
    """This process's flag for the run (one per run, shared by its shards and threads)."""
    with _flags_lock:
        flag = _flags.get(run)
        if flag is None:
            flag = _flags[run] = SchedulerFlag(run)
            while len(_flags) > FLAGS_KEPT:
                _flags.pop(next(iter(_flags)))
        return flag
