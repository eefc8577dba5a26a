"""A hard cap on the time a download may take, whatever the server does.

Socket timeouts bound each read, not the sum of reads: a server that sends one header byte
every few seconds never trips them. So each download thread arms the watchdog with its
deadline, and one thread per process shuts down the socket of any download past its
deadline. The blocked read then returns at once and the fetch fails as timed out. The same
mechanism aborts every download at once when a run is stopped: all of a process's
(``abort_all``), or those armed with a stop flag that is now set (a Dask worker process
serves many runs, and only one of them is stopping).

Which socket: the connection is attached when the thread takes it from the pool (or opens it),
its socket captured as it connects and again as TLS wraps it, and both are forgotten when the
connection goes back to the pool, where another thread may take it. The captured socket still
works after http.client lets go of it (a ``Connection: close`` answer hands its socket to the
response), so such a body is cut on time too. Waits with no socket yet (a DNS lookup, a
connect in progress) poll ``fired()`` instead.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any, TypeVar

TICK_S = 0.05  # how late past its deadline a download may be cut
_CREATE_LOCK = threading.Lock()


def _after_fork() -> None:
    global _CREATE_LOCK
    _CREATE_LOCK = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

_One = TypeVar("_One", bound="PerProcess")


class PerProcess:
    """A class with one instance per process, made on first use by ``get()``."""

    _instance: Any = None
    _pid = -1

    @classmethod
    def get(cls: type[_One]) -> _One:
        """This process's instance (a fork gets a fresh one: threads do not survive fork)."""
        found = cls._instance
        if found is None or found._pid != os.getpid():
            with _CREATE_LOCK:  # download threads start together: exactly one of them creates it
                found = cls._instance
                if found is None or found._pid != os.getpid():
                    found = cls._instance = cls()
                    found._pid = os.getpid()
        return found


def _shut(sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):  # already closed (its descriptor is -1: no other socket is hit)
        sock.shutdown(socket.SHUT_RDWR)


class Armed:
    """One download's deadline, the connection it holds and the socket it reads."""

    __slots__ = ("deadline", "conn", "sock", "fired", "stop")

    def __init__(self, deadline: float, stop: Any = None) -> None:
        self.deadline = deadline
        self.conn: Any = None
        self.sock: Any = None
        self.fired = False
        self.stop = stop  # anything with is_set(): set means cut this download now

    def due(self, now: float) -> bool:
        return not self.fired and (self.deadline <= now or (self.stop is not None and self.stop.is_set()))

    def fire(self) -> None:
        self.fired = True
        # ``sock`` is a public attribute of http.client connections (urllib3's too). Shutting the
        # socket down is the only way to wake a thread blocked reading it from another thread.
        current = getattr(self.conn, "sock", None)
        captured = self.sock
        if current is not None:
            _shut(current)
        if captured is not None and captured is not current:
            _shut(captured)


class Watchdog(PerProcess):
    """Per-process registry of armed downloads, keyed by thread, checked every TICK_S."""

    def __init__(self) -> None:
        self._armed: dict[int, Armed] = {}
        self._aborted = False
        threading.Thread(target=self._watch, name="imgfetch-watchdog", daemon=True).start()

    def arm(self, deadline: float, stop: Any = None) -> Armed:
        entry = Armed(deadline, stop)
        if self._aborted or (stop is not None and stop.is_set()):
            entry.fired = True
        self._armed[threading.get_ident()] = entry
        return entry

    def disarm(self) -> None:
        self._armed.pop(threading.get_ident(), None)

    def attach(self, conn: Any) -> None:
        """This thread now holds ``conn``: capture its socket (a new one has none until it connects)."""
        entry = self._armed.get(threading.get_ident())
        if entry is not None:
            entry.conn, entry.sock = conn, getattr(conn, "sock", None)
            if entry.fired:
                entry.fire()

    def capture(self, sock: Any) -> None:
        """This thread's connection now reads ``sock`` (connected, or wrapped in TLS before its handshake)."""
        entry = self._armed.get(threading.get_ident())
        if entry is not None:
            entry.sock = sock
            if entry.fired:
                entry.fire()

    def detach(self, conn: Any) -> None:
        """``conn`` goes back to the pool: never shut it for this thread again."""
        entry = self._armed.get(threading.get_ident())
        if entry is not None and entry.conn is conn:
            entry.conn = entry.sock = None

    def fired(self) -> bool:
        """Whether this thread's download has been cut (past its deadline, or stopped)."""
        entry = self._armed.get(threading.get_ident())
        return entry is not None and (entry.fired or entry.due(time.monotonic()))

    def abort_all(self) -> None:
        """Cut every download now and any armed later (the run is stopping)."""
        self._aborted = True
        for entry in list(self._armed.values()):
            entry.fire()

    def _watch(self) -> None:
        while True:
            time.sleep(TICK_S)
            now = time.monotonic()
            for entry in list(self._armed.values()):
                if entry.due(now):
                    entry.fire()
