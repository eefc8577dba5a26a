"""How a run stops its Dask tasks: two marker files in the run's temporary folder.

Dask cannot stop a running task, and a cancelled future only stops the client from waiting
for it: the task goes on and may save its image after the run has ended. So the parent tells
its tasks through the run's temporary folder, which every Dask worker already shares (it is in
OUT), at the cost of a stat() per URL and no scheduler round trip. Both files exist while the
run goes on:

- START_MARKER is removed at a drain: a task that has not started returns cancelled at once;
- SAVE_MARKER is removed at an abort: downloads in flight are cut and nothing more is saved.

A task that finds the temporary folder gone (the run is over) reads both as removed, so a task
the run no longer waits for never starts a download and never saves one.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from ..errors import OutputError

START_MARKER = ".may-start"
SAVE_MARKER = ".may-save"
CHECK_S = 0.1  # how stale a MarkerFlag's answer may be: one stat per process this often, not per chunk


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
