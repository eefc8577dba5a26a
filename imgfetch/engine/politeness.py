"""Per-host politeness, decided in the parent: hosts interleaved, at most N tasks in flight per host,
at most R starts per second per host.

Hosts are always interleaved (round-robin over the hosts with startable work), so a few big hosts
do not take the whole pool while other hosts wait. Without --per-host, a soft cap (SOFT_CAP) keeps
a host's downloads in flight few while other hosts have work that can start; when none has, the
capped hosts share the pool, so a big host left alone at the end of a list still gets every thread.
--per-host N is a hard cap and --rate R exact; both hold whatever else is waiting.

Because the parent decides, the limits hold across every local worker and thread, and under Dask
across every machine. A task holds its host's slot for all its attempts and redirect hops (they are
sequential within the task); a redirect to another host still counts against the first host.
"""
from __future__ import annotations

import heapq
import time
from collections import OrderedDict, deque
from typing import Callable, Iterable, Iterator
from urllib.parse import urlsplit

from ..records import FetchResult, Task

LOOKAHEAD = 20_000       # tasks read ahead of the pool to find ones whose host is free (--per-host, --rate)
SOFT_LOOKAHEAD = 4_096   # without them: enough to interleave hundreds of hosts; memory stays small on any list
SOFT_MIN = 1             # the soft cap of a host with little work: its URLs one after another, on one connection
SCAN_SLACK = 64          # hosts a take passes over looking for ones whose worker has room (then it takes any)
PASSTHROUGH_MAX = 1_024  # ready-made records (skipped, duplicate, invalid) held before they are handed on
WAIT_HINT_S = 0.2        # the wait hint when no rate limit is due sooner: the engine's usual poll interval
MIN_WAIT_HINT_S = 0.005  # shortest wait hint, so a host due any moment does not make the engine spin
DEFAULT_PORTS = {"http": 80, "https": 443}
NOTHING_YET = object()   # what a live source (the Downloader's) yields when it is empty for now, not for good

Host = tuple[str, int]  # (hostname, port)


def lookahead(per_host: int | None, rate: float | None) -> int:
    """How many tasks the scheduler reads ahead of the pool."""
    return LOOKAHEAD if per_host or rate else SOFT_LOOKAHEAD


def host_of(url: str) -> Host:
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, DEFAULT_PORTS["http"]))


Fits = Callable[[Host], bool]  # whether a task for this host would go where its connections are (see take)


class HostScheduler:
    """Hands out tasks whose host is under its limits, hosts in turn; passes ready-made records straight on.

    Every host with buffered tasks is in exactly one place: ``ready`` (may start now, in turn
    order), ``waiting`` (a heap by the time --rate lets it start again), ``capped`` (at --per-host
    until one of its tasks ends) or ``over`` (at the soft cap: starts only when no ready host
    can, in turn order). A take therefore costs O(tasks taken + SCAN_SLACK + log hosts), not a
    scan of every buffered host. ``next_start`` remembers a host only while its --rate interval
    runs (``cooling``, in time order, says when to forget it), so a list of millions of hosts
    keeps state only for those in play. It reads at most ``lookahead`` tasks ahead of the pool.
    """

    def __init__(self, source: Iterator[Task | FetchResult], per_host: int | None, rate: float | None,
                 width: int = 0) -> None:
        self.source = source
        self.per_host, self.interval = per_host, (1.0 / rate if rate else 0.0)
        self.width = 0 if per_host else width  # the soft cap's pool size; a hard cap replaces the soft one
        self.started = 0  # tasks in flight, over all hosts
        self.lookahead = lookahead(per_host, rate)
        self.pending: dict[Host, deque[Task]] = {}
        self.in_flight: dict[Host, int] = {}
        self.next_start: dict[Host, float] = {}
        self.ready: deque[Host] = deque()
        self.over: OrderedDict[Host, None] = OrderedDict()
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
        self._fill(passthrough)
        if self.exhausted and not self.buffered:
            return None
        now = time.monotonic()  # after reading ahead, which may take a while: the intervals start now
        self._expire(now)
        chosen: list[Task] = []
        for turns in (self.ready, self.over):  # the soft cap: over-cap hosts only when no ready host is left
            self._take_turns(turns, n, chosen, fits, now)
        return chosen

    def _take_turns(self, turns: deque[Host] | OrderedDict[Host, None], n: int, chosen: list[Task],
                    fits: Fits | None, now: float) -> None:
        """Start hosts from ``turns`` in turn until ``chosen`` has n; a started host goes to the back."""
        passed: list[Host] = []
        while turns and len(chosen) < n:
            host = turns.popleft() if isinstance(turns, deque) else turns.popitem(last=False)[0]
            if fits is None or len(passed) >= SCAN_SLACK or fits(host):
                chosen.append(self._start(host, now))
            else:
                passed.append(host)
        started = 0
        while started < len(passed) and len(chosen) < n:  # nothing else could start: these go where there is room
            chosen.append(self._start(passed[started], now))
            started += 1
        for host in reversed(passed[started:]):  # the rest keep their turn
            if isinstance(turns, deque):
                turns.appendleft(host)
            else:
                turns[host] = None
                turns.move_to_end(host, last=False)

    def _start(self, host: Host, now: float) -> Task:
        self.hosts_examined += 1
        queue = self.pending[host]
        task = queue.popleft()
        self.buffered -= 1
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        self.started += 1
        if self.interval:
            self.next_start[host] = start = max(now, self.next_start.get(host, 0.0)) + self.interval
            self.cooling.append((start, host))
        if queue:
            self._place(host, now)
        else:
            del self.pending[host]
        return task

    def _place(self, host: Host, now: float) -> None:
        """File a host that has buffered tasks under ready, waiting, capped or over."""
        self.hosts_examined += 1
        if self.per_host and self.in_flight.get(host, 0) >= self.per_host:
            self.capped.add(host)
        elif self.next_start.get(host, 0.0) > now:
            heapq.heappush(self.waiting, (self.next_start[host], host))
        elif self.width and self.in_flight.get(host, 0) >= self._soft_cap(host):
            self.over[host] = None
        else:
            self.ready.append(host)

    def _soft_cap(self, host: Host) -> int:
        """Its share of the pool, by its share of the work in view (buffered and in flight).

        Why a share, not one number for every host: a host's downloads in flight each need a connection,
        and on a Zipf-like list a fixed cap holds the big hosts back until the small ones are done, then
        lets them take the whole pool at the end (hundreds of new connections). In proportion, every host
        finishes about when the others do, a big host keeps few more connections than it needs, and a
        small one fetches its URLs one after another on one connection."""
        work = len(self.pending.get(host, ())) + self.in_flight.get(host, 0)
        return max(SOFT_MIN, -(-self.width * work // max(1, self.buffered + self.started)))

    def _expire(self, now: float) -> None:
        """Hosts whose --rate interval is over: waiting ones become ready, and every one is forgotten."""
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
            self.started -= 1
            if left:
                self.in_flight[host] = left
            else:
                self.in_flight.pop(host, None)
            if host in self.capped:
                self.capped.discard(host)
                self._place(host, now)
            elif host in self.over and left < self._soft_cap(host):  # under the soft cap again: its turn among the ready
                del self.over[host]
                self._place(host, now)

    def wait_hint(self) -> float:
        """Seconds until a rate-limited host may start again (for the pool's wait timeout)."""
        if not self.waiting:  # nothing waits on --rate; a freed --per-host slot comes with a record, waking the pool
            return WAIT_HINT_S
        self.hosts_examined += 1
        return max(MIN_WAIT_HINT_S, min(WAIT_HINT_S, self.waiting[0][0] - time.monotonic()))

    def _fill(self, passthrough: list[FetchResult]) -> None:
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
                else:
                    self.pending[host] = deque([item])
                    self._place(host, now)
                self.buffered += 1
