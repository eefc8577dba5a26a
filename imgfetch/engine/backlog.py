"""The backlog between a process's download threads and its keeper threads (the image step).

A download thread that has a body puts it here and starts its next download at once; a few keeper threads
(one per CPU) take the bodies in order and check, resize and store them. The backlog is bounded in bodies and
bytes, so a process busy with images holds a bounded amount of memory while its downloads go on.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")
BACKLOG_PER_THREAD = 8  # bodies waiting for the image step, per download thread, at most
BACKLOG_BYTES = 64 * 1024**2  # and their bytes in all (one body larger than this still goes in, alone)


class Backlog(Generic[T]):
    """Items waiting for the image step, first in first out, at most ``count`` of them and ``size``
    bytes of bodies: ``put`` waits while it is full (an item larger than ``size`` goes in alone).

    ``announce`` is called with each item as it enters, in the backlog's order (a local worker tells the
    parent its key), and ``taken`` (a shared counter the parent reads should the process die) counts the
    items keepers have taken: a body the counter has not reached never met the image step, so it cannot
    have killed the process (pool.py)."""

    def __init__(self, count: int, size: int, announce: Callable[[T], None] = lambda item: None,
                 taken: Any = None) -> None:
        self.count, self.size = count, size
        self.announce, self.taken = announce, taken
        self.items: deque[tuple[T | None, int]] = deque()
        self.bytes = 0
        lock = threading.Lock()
        self.not_full, self.not_empty = threading.Condition(lock), threading.Condition(lock)
        self.keepers: list[threading.Thread] = []

    def start_keepers(self, keep: Callable[[T], None], threads: int) -> None:
        """Start the keeper threads, one per CPU (at most ``threads``): each hands item after item to ``keep``
        until ``stop_keepers``."""
        def loop() -> None:
            while (item := self.get()) is not None:
                keep(item)
        self.keepers = [threading.Thread(target=loop, name=f"imgfetch-keep-{n}", daemon=True)
                        for n in range(min(threads, os.cpu_count() or 1))]
        for keeper in self.keepers:
            keeper.start()

    def stop_keepers(self, wait_s: float | None = None) -> None:
        """Each keeper ends once what is ahead of its end signal is kept; ``wait_s``: wait that long for each."""
        for _ in self.keepers:
            self.put(None, 0)
        if wait_s is not None:
            for keeper in self.keepers:
                keeper.join(timeout=wait_s)

    def put(self, item: T | None, size: int) -> None:
        """Add ``item`` (None: a keeper's signal to end, never refused)."""
        with self.not_full:
            while item is not None and self.items and (len(self.items) >= self.count or self.bytes + size > self.size):
                self.not_full.wait()
            self.items.append((item, size))
            self.bytes += size
            if item is not None:
                self.announce(item)  # under the lock: in this order
            self.not_empty.notify()

    def get(self) -> T | None:
        with self.not_empty:
            while not self.items:
                self.not_empty.wait()
            item, size = self.items.popleft()
            self.bytes -= size
            if item is not None and self.taken is not None:
                self.taken.value += 1  # before its image step starts
            self.not_full.notify()  # one waiting download thread (once empty, any of them fits)
            return item

    def take_all(self) -> list[T]:
        """Empty it (the process is aborting): what it held; end signals stay."""
        with self.not_full:
            taken = [item for item, _ in self.items if item is not None]
            self.items = deque(entry for entry in self.items if entry[0] is None)
            self.bytes = 0
            self.not_full.notify_all()
            return taken
