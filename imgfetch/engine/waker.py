"""A self-pipe that ends a wait on connections at once, from any thread.

The engine's loop waits for records with ``multiprocessing.connection.wait`` (or a queue, under
Dask). A URL submitted meanwhile must not wait for that wait to time out: the submitting thread
sets the waker, whose file descriptor is in the wait set, and the loop reads it clear.
"""
from __future__ import annotations

import contextlib
import os
import threading


class Waker:
    """``set()`` from any thread makes the read end readable until ``clear()``; cheap when already set."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._set = False  # a byte is (or is about to be) in the pipe: further sets need not write
        self._closed = False
        self._lock = threading.RLock()  # a set() never writes to a number close() freed (reentrant: signal handlers set)

    def fileno(self) -> int:
        return self._read

    def set(self) -> None:
        if self._set:
            return
        with self._lock, contextlib.suppress(OSError):  # full: already readable
            self._set = True
            if not self._closed:  # closed: the loop is gone (and the number may be another file's now)
                os.write(self._write, b"!")

    def clear(self) -> None:
        """Called by the waiting thread when the read end is ready, before it looks for new work.

        A set() that comes while the pipe is emptied writes nothing; that is safe because its work was
        queued before it, and the caller looks for work after this returns."""
        with self._lock, contextlib.suppress(OSError):  # BlockingIOError: emptied
            while not self._closed and os.read(self._read, 4096):
                pass
        self._set = False  # last: from now on a set() writes again

    def close(self) -> None:
        """Close both ends, once: a second close must not close a number another file has taken since."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._read, self._write):
                with contextlib.suppress(OSError):
                    os.close(fd)
