"""The ImageServer: its loopback socket, event-loop thread, start and bounded stop."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
from typing import Any

from .connection import Connections
from .netmodel import NetModel
from .routes import Routes
from .settings import ServerSettings
from .stats import ServerStats
from .synth import ImageSet

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0  # start() gives up if the loop is not listening by then
STOP_TIMEOUT_S = 5.0    # stop() waits this long for the loop to finish
JOIN_GRACE_S = 0.5      # then this long for its thread to exit
DRAIN_S = 2.0           # cancelled connection tasks get this long to end
LISTEN_BACKLOG = 1024   # benchmarks open hundreds of connections at once


class ImageServer:
    """Asyncio HTTP/1.1 image server on a loopback address; a context manager.

    Takes a :class:`ServerSettings`, or its fields as keyword arguments (a bad one raises OptionError, a
    ValueError naming it): their help texts say what each does, ``NetModel`` how latencies and faults are
    drawn per image, and ``faults.answer_fault`` how each fault kind answers on ``/img/``.
    """

    def __init__(self, settings: ServerSettings | None = None, /, **changes: Any) -> None:
        if settings is None:
            settings = ServerSettings(**changes)
        elif changes:
            settings = dataclasses.replace(settings, **changes)
        self.settings = settings
        self.model = NetModel(settings.latency_ms, settings.latency_spread, settings.faults, settings.seed)
        self.count, self.latency_ms, self.seed = settings.count, settings.latency_ms, settings.seed
        self.latency_spread, self.faults = settings.latency_spread, dict(self.model.faults)
        self.hang_s, self.drip_interval_s = float(settings.hang_s), float(settings.drip_interval_s)
        self.host, self.port = settings.host, settings.port
        self.stats = ServerStats()
        self.images = ImageSet(settings.count, settings.seed)
        routes = Routes(self.images, self.model, self.stats, self.url, self.hang_s, self.drip_interval_s)
        self._conns = Connections(routes, self.stats)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_evt: asyncio.Event | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None  # set by start()
        self._loop_thread: threading.Thread | None = None  # whichever thread runs the loop
        self._ready, self._done = threading.Event(), threading.Event()
        self._state_lock = threading.Lock()
        self._started = self._stopping = self._shut = False
        self._error: BaseException | None = None

    # ----- public API -------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://host:port`` of the listening socket (once started)."""
        if not self.port:
            raise RuntimeError("server not started (ephemeral port unknown)")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this server."""
        return self.base_url + path

    def image_urls(self) -> list[str]:
        """``/img/<i>.<ext>`` for every index, faulty ones included."""
        base = self.base_url
        return [base + self.images.path(i) for i in range(self.count)]

    def latency_s(self, i: int) -> float:
        """Seconds the server waits before answering for image ``i`` (deterministic)."""
        return self.model.latency_s(i)

    def fault(self, i: int) -> str | None:
        """The persistent fault of image ``i`` (a FAULT_KINDS entry) or None."""
        return self.model.fault(i)

    def image_bytes(self, i: int) -> bytes:
        """The exact bytes served for image ``i`` (generated once, cached)."""
        return self.images.image_bytes(i)

    def start(self) -> ImageServer:
        """Run the event loop in a daemon thread; return once listening."""
        self._claim()
        self._thread = threading.Thread(target=self._run, name="imgfetch-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"image server did not start within {START_TIMEOUT_S:.0f} s")
        if self._error is not None:
            self._thread.join(STOP_TIMEOUT_S)
            raise self._error
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until KeyboardInterrupt or stop()."""
        self._claim()
        self._run(foreground=True)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Close listener and connections, wait (bounded) for the loop; idempotent."""
        with self._state_lock:
            if not self._started or self._stopping:
                return
            self._stopping = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(self._request_stop)
        if threading.current_thread() is not self._loop_thread:
            if not self._done.wait(STOP_TIMEOUT_S):
                log.warning("image server did not stop within %.0f s", STOP_TIMEOUT_S)
            if self._thread is not None:
                self._thread.join(JOIN_GRACE_S)

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- event loop ---------------------------------------------------
    def _claim(self) -> None:
        with self._state_lock:
            if self._started:
                raise RuntimeError("ImageServer can only be started once")
            self._started = True

    def _request_stop(self) -> None:
        if self._stop_evt is not None:
            self._stop_evt.set()

    def _run(self, foreground: bool = False) -> None:
        """Run the loop until stopped; any error is kept for the starter to raise."""
        self._loop_thread = threading.current_thread()
        loop = self._loop = asyncio.new_event_loop()
        try:
            main = loop.create_task(self._main())
            try:
                loop.run_until_complete(main)
            except KeyboardInterrupt:
                if not foreground:
                    raise
                log.info("interrupted, shutting down")
                self._request_stop()
                loop.run_until_complete(main if not main.done() else self._shutdown())
        except BaseException as exc:  # noqa: BLE001 - reported to the starter
            self._error = self._error or exc
        finally:
            try:
                self._close_loop(loop)
            finally:
                self._ready.set()
                self._done.set()

    @staticmethod
    def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
        """Cancel what still runs (bounded), then close the loop."""
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=DRAIN_S))
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    async def _main(self) -> None:
        self._stop_evt = asyncio.Event()
        if self._stopping:
            return
        try:
            server = await asyncio.start_server(self._conns.handle, self.host, self.port,
                                                backlog=LISTEN_BACKLOG, reuse_address=True)
        except OSError as exc:  # asyncio's words ("error while attempting to bind ...") would say "error" twice
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            self._error = OSError(exc.errno, f"cannot listen on {self.host}:{self.port}: {reason}")
            return
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        log.info("image server listening on %s (%d images; %s)", self.base_url, self.count,
                 self.model.describe())
        self._ready.set()
        await self._stop_evt.wait()
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        if self._server is not None:
            self._server.close()
        tasks = self._conns.abort_all()
        if tasks:
            await asyncio.wait(tasks, timeout=DRAIN_S)
        log.info("image server on port %d stopped", self.port)
