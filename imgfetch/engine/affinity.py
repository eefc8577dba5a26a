"""Host -> worker affinity: a host's URLs go to a worker process that holds an idle connection to it.

Each worker process keeps its own idle keep-alive connections (net/pools.py), so a host whose URLs
go to every worker is connected to from every worker. The pool therefore keeps, per host and
worker, how many of the host's URLs are in flight there and how many connections the worker has
opened to it (at least its most URLs in flight at once). A URL goes to a worker with room that
has an idle connection to its host; when none has, to the emptiest worker (a new connection is
needed wherever it goes). The scheduler asks ``fits`` first, so it can start another host's URL
while a host's idle connections are all in full workers. A URL never waits for a busy worker:
room anywhere is used. At most ``limit`` hosts are remembered (the least recent forgotten), so a
list over millions of hosts keeps bounded state; each placement is O(workers).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Protocol, TypeVar

from ..records import Task
from .politeness import Host, host_of


class Slot(Protocol):
    """A worker as placement sees it."""

    gone: bool

    @property
    def room(self) -> int: ...


W = TypeVar("W", bound=Slot)


class Affinity(Generic[W]):
    """Per recent host: {worker: [connections opened there, URLs in flight there]}."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._hosts: OrderedDict[Host, dict[W, list[int]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hosts)

    def idle(self, host: Host, worker: W) -> int:
        """Connections to ``host`` that ``worker`` holds idle (an estimate: it may have closed some since)."""
        conns, flying = self._hosts.get(host, {}).get(worker, (0, 0))
        return conns - flying

    def fits(self) -> Callable[[Host], bool]:
        """For one take: False for a host whose idle connections are all in workers without room left
        (counting the URLs this take has already promised them); True otherwise."""
        promised: dict[tuple[Host, W] | W, int] = {}

        def fits(host: Host) -> bool:
            held = [w for w, (conns, flying) in self._hosts.get(host, {}).items()
                    if not w.gone and conns - flying - promised.get((host, w), 0) > 0]
            for worker in held:
                if worker.room - promised.get(worker, 0) > 0:
                    promised[worker] = promised.get(worker, 0) + 1
                    promised[(host, worker)] = promised.get((host, worker), 0) + 1
                    return True
            return not held  # none idle anywhere: it needs a new connection wherever it goes
        return fits

    def place(self, tasks: list[Task], workers: list[W]) -> list[tuple[W, list[Task]]]:
        """Share tasks among workers: each to a worker with room and an idle connection to its host,
        else to the emptiest. The caller has made sure the workers have room for them all."""
        room = {worker: worker.room for worker in workers}
        given: dict[W, list[Task]] = {}
        for task in tasks:
            host = host_of(task.url)
            with_room = [w for w in workers if room[w] > 0]
            if not with_room:
                raise RuntimeError("placed beyond the workers' room")  # the engine never does this
            worker = max(with_room, key=lambda w: (self.idle(host, w) > 0, room[w]))
            room[worker] -= 1
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
