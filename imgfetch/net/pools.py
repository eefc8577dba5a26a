"""Idle keep-alive connections, kept by one budget over all hosts.

urllib3 keeps idle connections per host pool, and its PoolManager closes a whole host's pool
when it has more hosts than it may keep. Here every pool's idle connections stand in one
process-wide line instead (``IdleConnections``): a connection going idle joins its end, one
taken for a request leaves it, and past the budget the connection idle longest is closed,
whichever host it belongs to. So a list over thousands of hosts keeps a connection to every
host it still uses, within the open-files limit, and reconnects only to hosts it has not used
for longest.

``IdleQueue`` is the queue urllib3 asks for (a pool's public ``QueueCls``): ``get`` hands out
the host's most recently used idle connection (urllib3 opens a new one when there is none), and
``put`` takes one back. Both tell the watchdog which connection the thread now holds.
"""
from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from typing import Any

from .watchdog import Watchdog


class IdleConnections:
    """At most ``budget`` idle connections over all hosts; past it, the least recently used is closed."""

    def __init__(self, budget: int) -> None:
        self.budget = max(1, budget)
        self._lock = threading.Lock()
        self._line: OrderedDict[int, tuple[IdleQueue, Any]] = OrderedDict()  # by id(conn), oldest first

    def __len__(self) -> int:
        return len(self._line)

    def take(self, host: IdleQueue) -> Any:
        """The host's most recently used idle connection, or None."""
        with self._lock:
            if not host.idle:
                return None
            conn = host.idle.pop()
            del self._line[id(conn)]
            return conn

    def give(self, host: IdleQueue, conn: Any) -> bool:
        """Keep ``conn`` idle for its host; False when the host has its fill already."""
        with self._lock:
            if len(host.idle) >= host.maxsize:
                return False
            host.idle.append(conn)
            self._line[id(conn)] = (host, conn)
            evicted = []
            while len(self._line) > self.budget:
                _key, (owner, oldest) = self._line.popitem(last=False)
                owner.idle.remove(oldest)
                evicted.append(oldest)
        for oldest in evicted:  # no longer reachable by any thread: close it outside the lock
            oldest.close()
        return True


class IdleQueue:
    """One host pool's idle connections, held in an IdleConnections line (urllib3's ``QueueCls``)."""

    def __init__(self, line: IdleConnections, maxsize: int) -> None:
        self.line, self.maxsize = line, max(1, maxsize)
        self.idle: list[Any] = []  # most recently used last; changed only under the line's lock

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        conn = self.line.take(self)
        if conn is None:
            raise queue.Empty  # urllib3 opens a new connection (our pools never block)
        Watchdog.get().attach(conn)
        return conn

    def put(self, conn: Any, block: bool = True, timeout: float | None = None) -> None:
        if conn is None:
            return  # urllib3 fills a new queue with None placeholders; connections are what we keep
        Watchdog.get().detach(conn)
        if getattr(conn, "sock", None) is None:
            return  # closed: holds no socket, so there is nothing to keep
        if not self.line.give(self, conn):
            raise queue.Full  # urllib3 closes it

    def qsize(self) -> int:
        return len(self.idle)
