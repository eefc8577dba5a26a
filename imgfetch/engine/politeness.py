"""Per-host politeness, decided in the parent (the README's "Politeness"): hosts interleaved, at most
--per-host N tasks in flight per host, at most --rate R starts per second per host.

The next task to start is from the host with the smallest share of its work in view already in flight
(``in flight / (in flight + buffered)``): a soft per-host cap in proportion to each host's work, which binds
only while other hosts have startable work, so no big host is left to take hundreds of new connections at
the end. --per-host is a hard cap and --rate exact. At most ``lookahead`` tasks are read ahead of the pool,
so memory stays bounded on any list.
"""
from __future__ import annotations

import heapq
import time
from collections import deque
from typing import Callable, Iterable, Iterator

from ..records import FetchResult, Task
from ..urls import Host, host_of

LOOKAHEAD = 20_000       # tasks read ahead of the pool to find ones whose host is free (--per-host, --rate)
SOFT_LOOKAHEAD = 4_096   # without them: enough to interleave hundreds of hosts; memory stays small on any list
SCAN_SLACK = 64          # hosts a take passes over looking for ones whose worker has room (then it takes any)
PASSTHROUGH_MAX = 1_024  # ready-made records (skipped, duplicate, invalid) held before they are handed on
WAIT_HINT_S = 0.2        # the wait hint when no rate limit is due sooner: the engine's usual poll interval
MIN_WAIT_HINT_S = 0.005  # shortest wait hint, so a host due any moment does not make the engine spin
NOTHING_YET = object()   # what a live source (the Downloader's) yields when it is empty for now, not for good

def lookahead(per_host: int | None, rate: float | None) -> int:
    """How many tasks the scheduler reads ahead of the pool."""
    return LOOKAHEAD if per_host or rate else SOFT_LOOKAHEAD


Fits = Callable[[Host], bool]  # whether a task for this host would go where its connections are (see take)


class HostScheduler:
    """Hands out tasks whose host is under its limits, the host most behind first; passes ready-made
    records straight on.

    Every host with buffered tasks is in exactly one place: ``turns`` (may start now: a heap by the
    share of its work in flight, stale entries skipped), ``waiting`` (a heap by the time --rate
    lets it start again) or ``capped`` (at --per-host until one of its tasks ends). A take
    therefore costs O((tasks taken + SCAN_SLACK) log hosts), not a scan of every buffered host.
    ``next_start`` remembers a host only while its --rate interval runs (``cooling``, in time
    order, says when to forget it), so a list of millions of hosts keeps state only for those in play.
    """

    def __init__(self, source: Iterator[Task | FetchResult], per_host: int | None, rate: float | None) -> None:
        self.source = source
        self.per_host, self.interval = per_host, (1.0 / rate if rate else 0.0)
        self.lookahead = lookahead(per_host, rate)
        self.pending: dict[Host, deque[Task]] = {}
        self.in_flight: dict[Host, int] = {}
        self.next_start: dict[Host, float] = {}
        self.turns: list[tuple[float, int, Host]] = []  # (share in flight, order, host)
        self.turn: dict[Host, tuple[float, int]] = {}   # each startable host's live entry in ``turns``
        self.order = 0
        self.waiting: list[tuple[float, Host]] = []
        self.capped: set[Host] = set()
        self.cooling: deque[tuple[float, Host]] = deque()  # (next start, host) of every start, oldest first
        self.buffered = 0
        self.exhausted = False
        self.hosts_examined = 0  # the scheduler's work: linear in tasks (a test holds it to that)

    def take(self, n: int, passthrough: list[FetchResult], fits: Fits | None = None) -> list[Task] | None:
        """Up to n startable tasks; [] if none can start yet; None when everything has been handed out.

        ``fits`` (the pool's) says whether a host's task would go to the worker holding its connections;
        hosts it refuses keep their turn while up to SCAN_SLACK others are tried. Room is never left
        unused while a task could start, though: if too few fit, the refused ones start anyway.
        """
        self._read_ahead(passthrough)
        if self.exhausted and not self.buffered:
            return None
        now = time.monotonic()  # after reading ahead, which may take a while: the intervals start now
        self._expire(now)
        chosen: list[Task] = []
        passed: list[Host] = []
        while len(chosen) < n and (host := self._next_turn()) is not None:
            if fits is None or len(passed) >= SCAN_SLACK or fits(host):
                chosen.append(self._start(host, now))
            else:
                passed.append(host)
        for host in passed:  # if nothing else could start, these go wherever there is room
            if len(chosen) < n:
                chosen.append(self._start(host, now))
            else:
                self._queue(host)
        return chosen

    def _next_turn(self) -> Host | None:
        """The startable host with the smallest share of its work in flight, out of ``turns``."""
        while self.turns:
            share, order, host = heapq.heappop(self.turns)
            if self.turn.get(host) == (share, order):
                del self.turn[host]
                return host
            self.hosts_examined += 1  # a stale entry
        return None

    def _queue(self, host: Host) -> None:
        """Put a startable host in ``turns`` (again, if its share changed: the old entry goes stale)."""
        # Why a share of each host's own work, not one soft cap for all: measured on the web-shaped
        # benchmark (350 hosts, Zipf), round-robin with a cap of 8 per host held the big hosts back until
        # the small ones were done, then they took the whole pool at the end and opened 2,219 connections
        # (1,566 in list order); by share, with the pool's placement, 833 to 929.
        flying = self.in_flight.get(host, 0)
        share = flying / (flying + len(self.pending[host]))
        self.order += 1
        self.turn[host] = (share, self.order)
        heapq.heappush(self.turns, (share, self.order, host))
        if len(self.turns) > 2 * len(self.turn) + 1024:  # stale entries: rebuild, so the heap stays bounded
            self.turns = [(share, order, h) for h, (share, order) in self.turn.items()]
            heapq.heapify(self.turns)

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
        """File a host that has buffered tasks under turns, waiting or capped."""
        self.hosts_examined += 1
        if self.per_host and self.in_flight.get(host, 0) >= self.per_host:
            self.capped.add(host)
        elif self.next_start.get(host, 0.0) > now:
            heapq.heappush(self.waiting, (self.next_start[host], host))
        else:
            self._queue(host)

    def _expire(self, now: float) -> None:
        """Hosts whose --rate interval is over: waiting ones become startable, and every one is forgotten."""
        while self.waiting and self.waiting[0][0] <= now:
            self._place(heapq.heappop(self.waiting)[1], now)
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
            elif host in self.turn:  # a smaller share in flight now: an earlier turn
                self._queue(host)

    def wait_hint(self) -> float:
        """Seconds until a rate-limited host may start again (for the pool's wait timeout)."""
        if not self.waiting:  # nothing waits on --rate; a freed --per-host slot comes with a record, waking the pool
            return WAIT_HINT_S
        self.hosts_examined += 1
        return max(MIN_WAIT_HINT_S, min(WAIT_HINT_S, self.waiting[0][0] - time.monotonic()))

    def _read_ahead(self, passthrough: list[FetchResult]) -> None:
        """Read the source into the hosts' buffers, up to the lookahead; ready-made records go to ``passthrough``."""
        now = time.monotonic()
        while not self.exhausted and self.buffered < self.lookahead and len(passthrough) < PASSTHROUGH_MAX:
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
                    if host in self.turn:  # more work: a smaller share in flight
                        self._queue(host)
                else:
                    self.pending[host] = deque([item])
                    self._place(host, now)
                self.buffered += 1
