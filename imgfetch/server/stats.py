"""Request counters of the loopback server, served on ``/stats`` and read by tests."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class ServerStats:
    """Thread-safe request counters.

    ``by_path`` excludes the query string; ``by_fault`` counts answers of the
    fault mix by kind (a request for a faulty image = one count); ``by_auth`` counts
    the credentials ``/basic-auth/`` received: ``right``, ``wrong`` or ``none``; ``by_agent`` counts
    requests by their User-Agent header.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero the counters (``in_flight`` stays: it is a current value)."""
        with self._lock:
            self.requests = 0
            self.connections = 0
            self.by_path: Counter[str] = Counter()
            self.by_fault: Counter[str] = Counter()
            self.by_auth: Counter[str] = Counter()
            self.by_agent: Counter[str] = Counter()
            self.max_in_flight = self.in_flight

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of all counters, JSON-serialisable."""
        with self._lock:
            return {"requests": self.requests, "connections": self.connections,
                    "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                    "by_path": dict(self.by_path), "by_fault": dict(self.by_fault),
                    "by_auth": dict(self.by_auth), "by_agent": dict(self.by_agent)}

    def connected(self) -> None:
        """Count a new connection."""
        with self._lock:
            self.connections += 1

    def begin(self, path: str, agent: str | None = None) -> None:
        """Count a request to ``path`` (from User-Agent ``agent``) that is now being answered."""
        with self._lock:
            self.requests += 1
            self.by_path[path] += 1
            if agent is not None:
                self.by_agent[agent] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def tally(self, counter: str, key: str) -> None:
        """Count ``key`` in the counter named: ``by_fault`` (a fault kind) or ``by_auth`` (right, wrong or none)."""
        with self._lock:
            getattr(self, counter)[key] += 1

    def end(self) -> None:
        """A request begun with ``begin`` has been answered."""
        with self._lock:
            self.in_flight -= 1
