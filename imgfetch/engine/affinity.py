"""Host -> worker affinity: a host's URLs go to the worker process that holds its idle connections.

Each worker process keeps its own idle keep-alive connections (net/pools.py), so a host whose URLs
go to every worker is connected to from every worker. The pool therefore remembers, per host, the
worker it last gave one of the host's URLs to (its *home*) and sends the next one there when that
worker has room; otherwise to whichever worker has the most room, which becomes the new home. A URL
never waits for its home: room anywhere is used. ``Homes`` is bounded (least recently used
forgotten first), so a list over millions of hosts keeps state only for recent ones; each lookup
is O(1).
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


class Homes(Generic[W]):
    """The worker each recent host's URLs last went to; at most ``limit`` hosts, the least recent forgotten."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._home: OrderedDict[Host, W] = OrderedDict()

    def __len__(self) -> int:
        return len(self._home)

    def get(self, host: Host) -> W | None:
        return self._home.get(host)

    def set(self, host: Host, worker: W) -> None:
        self._home[host] = worker
        self._home.move_to_end(host)
        if len(self._home) > self.limit:
            self._home.popitem(last=False)

    def fits(self) -> Callable[[Host], bool]:
        """For one take: whether a host's next URL would go home (its home has room left, counting the
        URLs this take has already promised it), or has no home (it goes anywhere)."""
        promised: dict[int, int] = {}

        def fits(host: Host) -> bool:
            home = self._home.get(host)
            if home is None or home.gone:
                return True  # it goes anywhere: no worker holds its connections
            taken = promised.get(id(home), 0)
            if taken >= home.room:
                return False
            promised[id(home)] = taken + 1
            return True
        return fits

    def place(self, tasks: list[Task], workers: list[W]) -> list[tuple[W, list[Task]]]:
        """Share tasks among workers with room: each to its host's home if it has room, else to the
        emptiest worker. The caller has made sure the workers have room for them all."""
        room = {id(worker): worker.room for worker in workers}
        given: dict[int, tuple[W, list[Task]]] = {}
        homeless: list[tuple[Host, Task]] = []
        for task in tasks:  # first those going home, so the others do not take their room
            host = host_of(task.url)
            home = self._home.get(host)
            if home is not None and room.get(id(home), 0) > 0:
                room[id(home)] -= 1
                given.setdefault(id(home), (home, []))[1].append(task)
                self.set(host, home)
            else:
                homeless.append((host, task))
        for host, task in homeless:
            worker = max(workers, key=lambda w: room[id(w)])
            if room[id(worker)] <= 0:
                raise RuntimeError("placed beyond the workers' room")  # the engine never does this
            room[id(worker)] -= 1
            given.setdefault(id(worker), (worker, []))[1].append(task)
            self.set(host, worker)
        return list(given.values())
