"""How many downloads run at once: enough to cover the network's latency, no more than the CPUs need.

Python threads share one interpreter lock per process. While downloads mostly wait on the
network, hundreds of threads cost nothing; once the CPUs are busy, every extra runnable thread
adds lock hand-offs (futex calls and context switches) and no throughput: on 2 cores at 0 ms
latency, 4 x 128 busy threads spent more than half their CPU in the kernel. So the pool starts
with a modest limit and, every PERIOD_S, looks at the machine's idle CPU time (Linux
/proc/stat): idle time while the limit is reached means the downloads wait on the network, so
the limit grows; no idle time means they wait on the CPUs, so it shrinks. Downloads running
longer than STRAGGLER_S (slow hosts, hangs, drips) sleep in the kernel and do not count
against it, so a list full of dead hosts still keeps every fast URL moving.

Where /proc/stat is missing, the limit stays at its maximum (workers x threads).
"""
from __future__ import annotations

import logging
import math
import time

log = logging.getLogger(__name__)

PERIOD_S = 0.25        # how often the limit is reconsidered
STRAGGLER_S = 2.0      # a download running longer than this stops counting against the limit
GROW, SHRINK = 1.5, 0.75
IDLE_GROW = 0.08       # more than this share of the CPUs idle: grow (if the limit is what holds us)
IDLE_SHRINK = 0.03     # less than this: shrink
MIN_PER_WORKER = 2     # each worker keeps one download starting while one finishes


def _cpu_ticks() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs since boot, or None where /proc/stat does not exist."""
    try:
        with open("/proc/stat", "rb") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


class Governor:
    """The pool-wide limit on downloads in flight, adapted to the machine's idle CPU time."""

    def __init__(self, workers: int, threads: int, *, adaptive: bool = True) -> None:
        self.workers, self.threads = workers, threads
        self.high = workers * threads
        self.low = min(self.high, workers * MIN_PER_WORKER)
        self._ticks = _cpu_ticks() if adaptive else None
        self.limit = self.high if self._ticks is None else max(self.low, min(self.high, workers * 4))
        self._next = time.monotonic() + PERIOD_S

    def per_worker(self, workers: int) -> int:
        return max(MIN_PER_WORKER, math.ceil(self.limit / max(1, workers)))

    def due(self) -> bool:
        return self._ticks is not None and time.monotonic() >= self._next

    def tick(self, busy: int) -> None:
        """Every PERIOD_S: ``busy`` is the number of downloads counting against the limit now."""
        if not self.due():
            return
        self._next = time.monotonic() + PERIOD_S
        ticks = _cpu_ticks()
        if ticks is None:
            return
        idle = (ticks[0] - self._ticks[0]) / max(1, ticks[1] - self._ticks[1])
        self._ticks = ticks
        before = self.limit
        if idle > IDLE_GROW and busy >= 0.9 * self.limit:
            self.limit = min(self.high, math.ceil(self.limit * GROW))
        elif idle < IDLE_SHRINK:
            self.limit = max(self.low, math.floor(self.limit * SHRINK))
        log.debug("governor: idle %.0f %%, %d busy, limit %d -> %d", idle * 100, busy, before, self.limit)
