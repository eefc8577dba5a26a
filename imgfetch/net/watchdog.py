"""A hard cap on the time a download may take, whatever the server does.

Socket timeouts bound each read, not the sum of reads: a server that sends one header byte
every few seconds never trips them. So each download thread arms the watchdog with its
deadline, the HTTP connection it uses attaches itself when it starts waiting for the
response, and one thread per process shuts down the socket of any download past its
deadline. The blocked read then returns at once and the fetch fails as timed out. The same
mechanism aborts every download at once when a run is stopped: all of a process's
(``abort_all``), or those armed with a stop flag that is now set (a Dask worker process
serves many runs, and only one of them is stopping).
"""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

TICK_S = 0.05  # how late past its deadline a download may be cut
_CREATE_LOCK = threading.Lock()


def _after_fork() -> None:
    global _CREATE_LOCK
    _CREATE_LOCK = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class Armed:
    """One download's deadline and the connection it is waiting on."""

    __slots__ = ("deadline", "conn", "fired", "stop")

    def __init__(self, deadline: float, stop: Any = None) -> None:
        self.deadline = deadline
        self.conn: Any = None
        self.fired = False
        self.stop = stop  # anything with is_set(): set means cut this download now

    def due(self, now: float) -> bool:
        return not self.fired and (self.deadline <= now or (self.stop is not None and self.stop.is_set()))

    def fire(self) -> None:
        self.fired = True
        # ``sock`` is a public attribute of http.client connections (urllib3's too). Shutting the
        # socket down is the only way to wake a thread blocked reading it from another thread.
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Watchdog:
    """Per-process registry of armed downloads, keyed by thread, checked every TICK_S."""

    _instance: Watchdog | None = None

    def __init__(self) -> None:
        self._armed: dict[int, Armed] = {}
        self._pid = os.getpid()
        self._aborted = False
        threading.Thread(target=self._watch, name="imgfetch-watchdog", daemon=True).start()

    @classmethod
    def get(cls) -> Watchdog:
        """This process's watchdog (a fork gets a fresh one: threads do not survive fork)."""
        dog = cls._instance
        if dog is None or dog._pid != os.getpid():
            with _CREATE_LOCK:  # download threads start together: exactly one of them creates it
                dog = cls._instance
                if dog is None or dog._pid != os.getpid():
                    dog = cls._instance = cls()
        return dog

    def arm(self, deadline: float, stop: Any = None) -> Armed:
        entry = Armed(deadline, stop)
        if self._aborted or (stop is not None and stop.is_set()):
            entry.fired = True
        self._armed[threading.get_ident()] = entry
        return entry

    def disarm(self) -> None:
        self._armed.pop(threading.get_ident(), None)

    def attach(self, conn: Any) -> None:
        entry = self._armed.get(threading.get_ident())
        if entry is not None:
            entry.conn = conn
            if entry.fired:
                entry.fire()

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


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self) -> Any:  # type: ignore[override]
        Watchdog.get().attach(self)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> Any:  # type: ignore[override]
        Watchdog.get().attach(self)
        return super().getresponse()


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection  # urllib3's documented hook for a pool's connection class


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# Installed as a PoolManager's ``pool_classes_by_scheme``: a plain (not underscored) attribute,
# and the only way to choose the pool classes, since requests builds its managers itself.
_WATCHED = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections (direct or through an HTTP proxy) report to the watchdog."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools have their own classes; socket timeouts still apply
            manager.pool_classes_by_scheme = dict(_WATCHED)
        return manager
