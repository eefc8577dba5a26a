"""Per-host politeness, decided in the parent: at most N tasks in flight per host, at most R starts
per second per host, and hosts interleaved so one slow host does not stall the others.

Because the parent decides, the limits hold across every local worker and thread, and under Dask
across every machine. A task holds its host's slot for all its attempts and redirect hops (they are
sequential within the task); a redirect to another host still counts against the first host.
"""
from __future__ import annotations

import heapq
import time
from collections import deque
from typing import Iterable, Iterator
from urllib.parse import urlsplit

from ..records import FetchResult, Task

LOOKAHEAD = 20_000       # tasks read ahead of the pool to find ones whose host is free
PASSTHROUGH_MAX = 1_024  # ready-made records (skipped, duplicate, invalid) held before they are handed on
WAIT_HINT_S = 0.2        # the wait hint when no rate limit is due sooner: the engine's usual poll interval
MIN_WAIT_HINT_S = 0.005  # shortest wait hint, so a host due any moment does not make the engine spin
DEFAULT_PORTS = {"http": 80, "https": 443}
NOTHING_YET = object()   # what a live source (the Downloader's) yields when it is empty for now, not for good

Host = tuple[str, int]  # (hostname, port)


class PlainFeeder:
    """No politeness limits: tasks in list order, as fast as the pool takes them."""

    def __init__(self, source: Iterator[Task | FetchResult]) -> None:
        self.source = source

    def take(self, n: int, passthrough: list[FetchResult]) -> list[Task] | None:
        """Up to n tasks; fewer when ready-made records should be handed on first; None at the end."""
        chunk: list[Task] = []
        for item in self.source:
            if item is NOTHING_YET:
                return chunk
            if isinstance(item, FetchResult):
                passthrough.append(item)
                if len(passthrough) >= PASSTHROUGH_MAX:
                    return chunk
                continue
            chunk.append(item)
            if len(chunk) >= n:
                return chunk
        return chunk or None

    def has_backlog(self, passthrough: list[FetchResult]) -> bool:
        """take() stopped early only to let ready-made records out: call again at once."""
        return len(passthrough) >= PASSTHROUGH_MAX

    def release(self, tasks: Iterable[Task]) -> None:
        pass

    def wait_hint(self) -> float:
        return WAIT_HINT_S


def host_of(url: str) -> Host:
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, DEFAULT_PORTS["http"]))


class HostScheduler:
    """Hands out tasks whose host is under its limits; passes ready-made records straight on.

    Every host with buffered tasks is in exactly one place: ``ready`` (may start now, in turn
    order), ``waiting`` (a heap by the time --rate lets it start again) or ``capped`` (at
    --per-host until one of its tasks ends). A take therefore costs O(tasks taken + log hosts),
    not a scan of every buffered host. ``next_start`` remembers a host only while its --rate
    interval runs (``cooling``, in time order, says when to forget it), so a list of millions of
    hosts keeps state only for those in play.
    """

    def __init__(self, source: Iterator[Task | FetchResult], per_host: int | None, rate: float | None) -> None:
        self.source = source
        self.per_host, self.interval = per_host, (1.0 / rate if rate else 0.0)
        self.pending: dict[Host, deque[Task]] = {}
        self.in_flight: dict[Host, int] = {}
        self.next_start: dict[Host, float] = {}
        self.ready: deque[Host] = deque()
        self.waiting: list[tuple[float, Host]] = []
        self.capped: set[Host] = set()
        self.cooling: deque[tuple[float, Host]] = deque()  # (next start, host) of every start, oldest first
        self.buffered = 0
        self.exhausted = False
        self.hosts_examined = 0  # the scheduler's work: linear in tasks (a test holds it to that)

    def take(self, n: int, passthrough: list[FetchResult]) -> list[Task] | None:
        """Up to n startable tasks; [] if none can start yet; None when everything has been handed out."""
        self._fill(passthrough)
        if self.exhausted and not self.buffered:
            return None
        now = time.monotonic()  # after reading ahead, which may take a while: the intervals start now
        self._expire(now)
        chosen: list[Task] = []
        while self.ready and len(chosen) < n:  # a started host goes to the back: each gets a turn before any gets two
            chosen.append(self._start(self.ready.popleft(), now))
        return chosen

    def _start(self, host: Host, now: float) -> Task:
        self.hosts_examined += 1
        queue = self.pending[host]
        task = queue.popleft()
        self.buffered -= 1
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        if self.interval:
            self.next_start[host] = start = max(now, self.next_start.get(host, 0.0)) + self.interval
            self.cooling.append((start, host))
        if queue:
            self._place(host, now)
        else:
            del self.pending[host]
        return task

    def _place(self, host: Host, now: float) -> None:
        """File a host that has buffered tasks under ready, waiting or capped."""
        self.hosts_examined += 1
        if self.per_host and self.in_flight.get(host, 0) >= self.per_host:
            self.capped.add(host)
        elif self.next_start.get(host, 0.0) > now:
            heapq.heappush(self.waiting, (self.next_start[host], host))
        else:
            self.ready.append(host)

    def _expire(self, now: float) -> None:
        """Hosts whose --rate interval is over: waiting ones become ready, and every one is forgotten."""
        while self.waiting and self.waiting[0][0] <= now:
            self.hosts_examined += 1
            self.ready.append(heapq.heappop(self.waiting)[1])
        while self.cooling and self.cooling[0][0] <= now:
            self.hosts_examined += 1
            start, host = self.cooling.popleft()
            if self.next_start.get(host) == start:
                del self.next_start[host]

    def has_backlog(self, passthrough: list[FetchResult]) -> bool:
        return len(passthrough) >= PASSTHROUGH_MAX

    def release(self, tasks: Iterable[Task]) -> None:
        """These tasks are done: free their hosts' slots."""
        now = time.monotonic()
        for task in tasks:
            host = host_of(task.url)
            left = self.in_flight.get(host, 1) - 1
            if left:
                self.in_flight[host] = left
            else:
                self.in_flight.pop(host, None)
            if host in self.capped:
                self.capped.discard(host)
                self._place(host, now)

    def wait_hint(self) -> float:
        """Seconds until a rate-limited host may start again (for the pool's wait timeout)."""
        if not self.waiting:  # nothing waits on --rate; a freed --per-host slot comes with a record, waking the pool
            return WAIT_HINT_S
        self.hosts_examined += 1
        return max(MIN_WAIT_HINT_S, min(WAIT_HINT_S, self.waiting[0][0] - time.monotonic()))

    def _fill(self, passthrough: list[FetchResult]) -> None:
        now = time.monotonic()
        while not self.exhausted and self.buffered < LOOKAHEAD and len(passthrough) < PASSTHROUGH_MAX:
            item = next(self.source, None)
            if item is NOTHING_YET:
                return
            if item is None:
                self.exhausted = True
            elif isinstance(item, FetchResult):
                passthrough.append(item)
            else:
                host = host_of(item.url)
                if host in self.pending:
                    self.pending[host].append(item)
                else:
                    self.pending[host] = deque([item])
                    self._place(host, now)
                self.buffered += 1
