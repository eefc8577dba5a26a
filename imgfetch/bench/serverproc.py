"""The built-in image server in a process of its own, for ``imgfetch bench``.

In its own process the server does not share a GIL with the benchmark's parent, just as
``imgfetch serve`` and ``imgfetch get`` do not: the rows are timed as a user would see them.
The process listens on 127.0.0.1 only, and stops when the benchmark ends or its parent dies.

Its URLs come in a mixed order (``mixed_order``), so that a row that gets through 10 images in a run and one
that gets through 800 see the same latencies: the natural order could give the first 10 a mean 40 % off.
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
from typing import Any, Sequence

from ..errors import ImgFetchError
from ..server import ImageServer, NetModel, ServerSettings

READY_TIMEOUT_S = 300.0  # rendering thousands of images on a busy machine takes a while
STOP_TIMEOUT_S = 5.0     # for the server to stop when asked, before it is killed
KILLED_TIMEOUT_S = 1.0   # for the killed process to be reaped
FIRST_QUANTILE = 0.5     # the mixed order starts with the median latency


class ServerProcess:
    """``with ServerProcess(ServerSettings(count=100, latency_ms=60)) as server: server.urls``."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.urls: list[str] = []
        self.model = NetModel(settings.latency_ms, settings.latency_spread, seed=settings.seed)  # the server's own
        self._conn: Any = None
        self._process: Any = None

    def __enter__(self) -> "ServerProcess":
        # spawn: a fresh interpreter, whatever threads this process runs, and the fork server
        # (if the pool uses one) is left to start with the pool's own preloads.
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve, name="imgfetch-bench-server", daemon=True,
                                        args=(child, self.settings))
        self._process.start()
        child.close()
        urls = self._wait_ready()
        self.urls = mixed_order(urls, [self.model.latency_s(i) for i in range(len(urls))])
        return self

    def _wait_ready(self) -> list[str]:
        """The server's image URLs once every image is rendered; else stop it and raise ImgFetchError."""
        try:
            if not self._conn.poll(READY_TIMEOUT_S):
                raise ImgFetchError(f"the built-in server did not start within {READY_TIMEOUT_S:g} s")
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(STOP_TIMEOUT_S)
            kind, payload = "error", f"its process exited with code {self._process.exitcode}"
        except BaseException:
            self.__exit__()
            raise
        if kind != "ready":
            self.__exit__()
            raise ImgFetchError(f"the built-in server could not start: {payload}")
        return payload

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send("stop")
        self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(KILLED_TIMEOUT_S)
        self._conn.close()


def serve(conn: Any, settings: ServerSettings) -> None:
    """The server process: render every image, say where it listens, serve until told to stop."""
    try:
        with ImageServer(settings) as server:
            for i in range(settings.count):  # render every image before anything is timed
                server.image_bytes(i)
            conn.send(("ready", server.image_urls()))
            with contextlib.suppress(EOFError, OSError):  # the parent is gone
                conn.recv()
    except Exception as exc:  # reported to the parent, which ends the benchmark with one line
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def mixed_order(items: Sequence[str], latencies: Sequence[float]) -> list[str]:
    """``items`` reordered so that every prefix samples the latency distribution evenly.

    Ranks by latency, then visits the quantiles in a golden-ratio sequence (0.5, 0.118, 0.736,
    ...), which spreads any number of first picks evenly over the distribution.
    """
    n = len(items)
    ranked = sorted(range(n), key=lambda i: latencies[i])
    step = (math.sqrt(5) - 1) / 2
    taken = [False] * n
    order = []
    for j in range(n):
        rank = min(int(((FIRST_QUANTILE + j * step) % 1.0) * n), n - 1)
        while taken[rank]:  # two quantiles fell on one rank: the next free one
            rank = (rank + 1) % n
        taken[rank] = True
        order.append(items[ranked[rank]])
    return order
