"""Host -> worker affinity: a host's URLs go to a worker process that holds an idle connection to it.

Each worker process keeps its own idle keep-alive connections (net/pools.py), so a host whose URLs go to
every worker is connected to from every worker. The pool therefore keeps, per host and worker, how many of
the host's URLs are in flight there and how many connections the worker has opened to it (its most URLs in
flight there at once; an estimate, as a worker may close idle ones).

Where a URL goes (``_Plan.choose``): among the workers with a free thread if any has one, else among those
with room in their queue: one holding an idle connection to its host, else the emptiest. The scheduler asks
``fits`` first, so that when a host's idle connections are all in workers that cannot take it now, it starts
another host's URL instead. At most ``limit`` hosts are remembered (the least recent forgotten), so state
stays bounded on millions of hosts; a placement costs O(workers).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Protocol, TypeVar

from ..records import Task
from ..urls import Host, host_of


class Slot(Protocol):
    """A worker as placement sees it."""

    gone: bool

    @property
    def room(self) -> int: ...

    @property
    def free_threads(self) -> int: ...


W = TypeVar("W", bound=Slot)


class Affinity(Generic[W]):
    """Per recent host: {worker: [connections opened there, URLs in flight there]}."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._hosts: OrderedDict[Host, dict[W, list[int]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hosts)

    def idle(self, host: Host, worker: W) -> int:
        """Connections to ``host`` that ``worker`` holds idle, as far as the pool knows."""
        conns, flying = self._hosts.get(host, {}).get(worker, (0, 0))
        return conns - flying

    def fits(self, workers: list[W]) -> Callable[[Host], bool]:
        """For one take: whether a host's URL would go to a worker holding an idle connection to it (or it
        has none anywhere, so any worker will do). Each True counts as placed for the rest of the take."""
        plan = _Plan(self, workers)

        def fits(host: Host) -> bool:
            worker = plan.choose(host)
            if worker is None:
                return False
            if plan.idle(host, worker) > 0 or not any(plan.idle(host, w) > 0 for w in workers):
                plan.commit(host, worker)
                return True
            return False
        return fits

    def place(self, tasks: list[Task], workers: list[W]) -> list[tuple[W, list[Task]]]:
        """Share tasks among the workers (see the module docstring). The caller has made sure they have room."""
        plan = _Plan(self, workers)
        given: dict[W, list[Task]] = {}
        for task in tasks:
            host = host_of(task.url)
            worker = plan.choose(host)
            if worker is None:
                raise RuntimeError("placed beyond the workers' room")  # the engine never does this
            plan.commit(host, worker)
            given.setdefault(worker, []).append(task)
            self._started(host, worker)
        return list(given.items())

    def _started(self, host: Host, worker: W) -> None:
        here = self._hosts.setdefault(host, {})
        self._hosts.move_to_end(host)
        counts = here.setdefault(worker, [0, 0])
        counts[1] += 1
        counts[0] = max(counts[0], counts[1])  # more in flight than ever: it opened a connection
        if len(self._hosts) > self.limit:
            self._hosts.popitem(last=False)

    def done(self, task: Task, worker: W) -> None:
        """A task's record came back from ``worker``: its connection is idle again."""
        counts = self._hosts.get(host_of(task.url), {}).get(worker)
        if counts is not None and counts[1] > 0:
            counts[1] -= 1


class _Plan(Generic[W]):
    """The workers' room, free threads and idle connections as the URLs of one take or submit use them."""

    def __init__(self, affinity: Affinity[W], workers: list[W]) -> None:
        self.affinity, self.workers = affinity, workers
        self.room = {w: w.room for w in workers}
        self.free = {w: w.free_threads for w in workers}
        self.used: dict[tuple[Host, W], int] = {}  # idle connections already given to a URL of this plan

    def idle(self, host: Host, worker: W) -> int:
        return 0 if worker.gone else self.affinity.idle(host, worker) - self.used.get((host, worker), 0)

    def choose(self, host: Host) -> W | None:
        """The worker a URL of ``host`` would go to now; None if no worker has room."""
        free = [w for w in self.workers if self.free[w] > 0 and self.room[w] > 0]
        candidates = free or [w for w in self.workers if self.room[w] > 0]
        if not candidates:
            return None
        return max(candidates, key=lambda w: (self.idle(host, w) > 0, self.room[w]))

    def commit(self, host: Host, worker: W) -> None:
        self.room[worker] -= 1
        self.free[worker] -= 1
        self.used[(host, worker)] = self.used.get((host, worker), 0) + 1
