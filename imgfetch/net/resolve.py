"""Host names -> addresses inside a URL's budget, cached per process.

``socket.getaddrinfo`` has no timeout: a broken resolver holds the calling thread for as long as
the C library retries (often 5-30 s). So lookups run on a few daemon threads of the process's
own (at most RESOLVER_THREADS, one lookup per name at a time), and a caller waits only as long
as its deadline allows, then fails with ``DNSTimeout``. A lookup that outlives its callers goes
on in its thread and fills the cache; one nobody waits for any more is dropped before it starts.
Answers are kept ANSWER_TTL_S, names that do not exist FAILURE_TTL_S, other failures
TRANSIENT_TTL_S, for at most CACHE_NAMES names.
"""
from __future__ import annotations

import ipaddress
import queue
import socket
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from .watchdog import PerProcess

RESOLVER_THREADS = 16  # lookups in progress at once per process (each blocks a thread)
CACHE_NAMES = 4096     # (name, port, family) answers kept per process
ANSWER_TTL_S = 60.0    # how long an answer is reused (getaddrinfo does not tell the record's TTL)
FAILURE_TTL_S = 10.0   # how long "no such name" is answered from the cache
TRANSIENT_TTL_S = 1.0  # ... and any other failure (the resolver's own), so that a retry soon asks again
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
WAIT_SLICE_S = 0.05    # a waiting caller checks this often whether its download was cut

AddrInfo = tuple[Any, ...]  # one of getaddrinfo's (family, type, proto, canonname, sockaddr)


class DNSTimeout(OSError):
    """The resolver did not answer within the time the URL had left."""

    def __init__(self, host: str, waited: float) -> None:
        super().__init__(f"DNS lookup of {host} timed out after {waited:.1f} s")
        self.host, self.waited = host, waited


class _Lookup:
    """One name being looked up, and the callers waiting for it."""

    __slots__ = ("key", "done", "answer", "error", "waiters")

    def __init__(self, key: tuple[str, int, int]) -> None:
        self.key = key
        self.done = threading.Event()
        self.answer: list[AddrInfo] | None = None
        self.error: tuple[int, str] | None = None  # a gaierror's (errno, text)
        self.waiters = 0


class Resolver(PerProcess):
    """This process's lookups: a bounded cache and a bounded set of resolver threads."""

    def __init__(self, threads: int = RESOLVER_THREADS) -> None:
        self._most_threads = threads
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int, int], tuple[float, _Lookup]] = OrderedDict()
        self._pending: dict[tuple[str, int, int], _Lookup] = {}
        self._jobs: queue.SimpleQueue[_Lookup] = queue.SimpleQueue()
        self._threads = self._idle = self._unclaimed = 0  # resolver threads; of them waiting; lookups queued

    def resolve(self, host: str, port: int, family: int, deadline: float | None = None,
                cancelled: Callable[[], bool] | None = None) -> list[AddrInfo]:
        """getaddrinfo(host, port, family, SOCK_STREAM) by ``deadline`` (time.monotonic()), or DNSTimeout.

        socket.gaierror when the name does not resolve; DNSTimeout also when ``cancelled()`` turns true.
        """
        if _is_address(host):  # nothing to look up, nothing to wait for
            return socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
        started = time.monotonic()
        lookup = self._join((host.lower(), port, family))
        try:
            if not _wait(lookup.done, deadline, cancelled):
                raise DNSTimeout(host, time.monotonic() - started)
        finally:
            with self._lock:
                lookup.waiters -= 1
        if lookup.error is not None:
            raise socket.gaierror(*lookup.error)  # a new exception per caller: threads must not share one
        assert lookup.answer is not None
        return lookup.answer

    def forget(self) -> None:
        """Drop every cached answer (lookups in progress go on)."""
        with self._lock:
            self._cache.clear()

    def _join(self, key: tuple[str, int, int]) -> _Lookup:
        """The cached or pending lookup of ``key``, or a new one queued; counted as waited for."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > now:
                self._cache.move_to_end(key)
                lookup = cached[1]
            else:
                lookup = self._pending.get(key) or self._queue(key)
            lookup.waiters += 1
            return lookup

    def _queue(self, key: tuple[str, int, int]) -> _Lookup:
        lookup = self._pending[key] = _Lookup(key)
        self._unclaimed += 1
        self._jobs.put(lookup)
        if self._unclaimed > self._idle and self._threads < self._most_threads:
            self._threads += 1
            self._idle += 1  # on the new thread's behalf: it is idle until it takes a lookup
            threading.Thread(target=self._work, name="imgfetch-resolver", daemon=True).start()
        return lookup

    def _work(self) -> None:
        while True:
            lookup = self._jobs.get()
            with self._lock:
                self._idle -= 1
                self._unclaimed -= 1
                wanted = lookup.waiters > 0  # else everyone gave up before it started: drop it
                if not wanted:
                    del self._pending[lookup.key]
            if wanted:
                self._look_up(lookup)
            with self._lock:
                if wanted:
                    self._remember(lookup)
                self._idle += 1
            if wanted:
                lookup.done.set()

    def _remember(self, lookup: _Lookup) -> None:
        """Cache a finished lookup (the caller holds the lock)."""
        del self._pending[lookup.key]
        if lookup.error is None:
            ttl = ANSWER_TTL_S
        else:
            ttl = FAILURE_TTL_S if lookup.error[0] in _NO_SUCH_NAME else TRANSIENT_TTL_S
        self._cache[lookup.key] = (time.monotonic() + ttl, lookup)
        self._cache.move_to_end(lookup.key)
        while len(self._cache) > CACHE_NAMES:
            self._cache.popitem(last=False)

    @staticmethod
    def _look_up(lookup: _Lookup) -> None:
        host, port, family = lookup.key
        try:  # socket.getaddrinfo looked up at each call, so a test may stand in its own
            lookup.answer = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
            if not lookup.answer:
                lookup.error = (socket.EAI_NONAME, "no addresses")
        except socket.gaierror as exc:
            lookup.error = (exc.errno or socket.EAI_FAIL, exc.strerror or str(exc))
        except (OSError, UnicodeError) as exc:  # an unencodable name, or the system refusing
            lookup.error = (socket.EAI_FAIL, str(exc) or type(exc).__name__)


def _wait(done: threading.Event, deadline: float | None, cancelled: Callable[[], bool] | None) -> bool:
    """Wait for ``done`` until ``deadline`` or ``cancelled()``; whether it was set."""
    while True:
        left = WAIT_SLICE_S if deadline is None else min(WAIT_SLICE_S, deadline - time.monotonic())
        if done.wait(max(0.0, left)):
            return True
        if (deadline is not None and time.monotonic() >= deadline) or (cancelled is not None and cancelled()):
            return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True
