"""Per-host politeness, decided in the parent: at most N tasks in flight per host, at most R starts
per second per host, and hosts interleaved so one slow host does not stall the others.

Because the parent decides, the limits hold across every local worker and thread, and under Dask
across every machine. A task holds its host's slot for all its attempts and redirect hops (they are
sequential within the task); a redirect to another host still counts against the first host.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Iterable, Iterator
from urllib.parse import urlsplit

from ..records import FetchResult, Task

LOOKAHEAD = 20_000       # tasks read ahead of the pool to find ones whose host is free
PASSTHROUGH_MAX = 1_024  # ready-made records (skipped, duplicate, invalid) held before they are handed on
WAIT_HINT_S = 0.2        # the wait hint when no rate limit is due sooner: the engine's usual poll interval
MIN_WAIT_HINT_S = 0.005  # shortest wait hint, so a host due any moment does not make the engine spin
DEFAULT_PORTS = {"http": 80, "https": 443}
NOTHING_YET = object()   # what a live source (the Downloader's) yields when it is empty for now, not for good


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


def host_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, DEFAULT_PORTS["http"]))


class HostScheduler:
    """Hands out tasks whose host is under its limits; passes ready-made records straight on."""

    def __init__(self, source: Iterator[Task | FetchResult], per_host: int | None, rate: float | None) -> None:
        self.source = source
        self.per_host, self.interval = per_host, (1.0 / rate if rate else 0.0)
        self.pending: OrderedDict[tuple[str, int], deque[Task]] = OrderedDict()
        self.in_flight: dict[tuple[str, int], int] = {}
        self.next_start: dict[tuple[str, int], float] = {}
        self.buffered = 0
        self.exhausted = False

    def take(self, n: int, passthrough: list[FetchResult]) -> list[Task] | None:
        """Up to n startable tasks; [] if none can start yet; None when everything has been handed out."""
        self._fill(passthrough)
        if self.exhausted and not self.buffered:
            return None
        chosen: list[Task] = []
        now = time.monotonic()
        progress = True
        while progress and len(chosen) < n:  # rounds: every host gets a turn before any gets two
            progress = False
            for host in list(self.pending):
                if len(chosen) >= n:
                    break
                if self._startable(host, now):
                    chosen.append(self._start(host, now))
                    progress = True
        return chosen

    def _startable(self, host: tuple[str, int], now: float) -> bool:
        if self.per_host and self.in_flight.get(host, 0) >= self.per_host:
            return False
        return self.next_start.get(host, 0.0) <= now

    def _start(self, host: tuple[str, int], now: float) -> Task:
        queue = self.pending[host]
        task = queue.popleft()
        self.buffered -= 1
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        if self.interval:
            self.next_start[host] = max(now, self.next_start.get(host, 0.0)) + self.interval
        if queue:
            self.pending.move_to_end(host)
        else:
            del self.pending[host]
        return task

    def has_backlog(self, passthrough: list[FetchResult]) -> bool:
        return len(passthrough) >= PASSTHROUGH_MAX

    def release(self, tasks: Iterable[Task]) -> None:
        """These tasks are done: free their hosts' slots."""
        for task in tasks:
            self._release(host_of(task.url))

    def _release(self, host: tuple[str, int]) -> None:
        left = self.in_flight.get(host, 1) - 1
        if left:
            self.in_flight[host] = left
            return
        self.in_flight.pop(host, None)
        if host not in self.pending and self.next_start.get(host, 0.0) <= time.monotonic():
            self.next_start.pop(host, None)  # keep per-host state only for hosts still in play

    def wait_hint(self) -> float:
        """Seconds until a rate-limited host may start again (for the pool's wait timeout)."""
        waits = [self.next_start[host] for host in self.pending if host in self.next_start] if self.interval else []
        if not waits:  # nothing waits on --rate: a freed --per-host slot comes with a record, which wakes the pool
            return WAIT_HINT_S
        return max(MIN_WAIT_HINT_S, min(WAIT_HINT_S, min(waits) - time.monotonic()))

    def _fill(self, passthrough: list[FetchResult]) -> None:
        while not self.exhausted and self.buffered < LOOKAHEAD and len(passthrough) < PASSTHROUGH_MAX:
            item = next(self.source, None)
            if item is NOTHING_YET:
                return
            if item is None:
                self.exhausted = True
            elif isinstance(item, FetchResult):
                passthrough.append(item)
            else:
                self.pending.setdefault(host_of(item.url), deque()).append(item)
                self.buffered += 1
