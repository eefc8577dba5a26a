"""Client connections: the keep-alive loop that reads requests and writes the routes' answers."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Optional

from .routes import Routes
from .stats import ServerStats
from .wire import BadRequest, Request, parse_request, text, write

log = logging.getLogger(__name__)

MAX_BODY_DISCARD = 1 << 20  # a larger request body is not read: the connection closes instead
HEAD_END = b"\r\n\r\n"


async def _skip_body(req: Request, reader: asyncio.StreamReader) -> Optional[bool]:
    """Read and drop a request body; whether the connection may be reused, None if the length is bad."""
    keep = req.keep_alive
    length = req.headers.get("content-length")
    if "transfer-encoding" in req.headers:
        keep = False  # chunked bodies are not parsed, so nothing after this request can be
    elif length is not None:
        if not length.isdigit():
            return None
        if int(length) > MAX_BODY_DISCARD:
            keep = False
        elif int(length):
            await reader.readexactly(int(length))
    return keep


class Connections:
    """The server's open connections, each served by its own task until it closes."""

    def __init__(self, routes: Routes, stats: ServerStats) -> None:
        self.routes, self.stats = routes, stats
        self._open: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    def abort_all(self) -> list[asyncio.Task[Any]]:
        """Abort every open connection and cancel its task; the tasks, to wait for."""
        tasks = list(self._open)
        for task, writer in list(self._open.items()):
            writer.transport.abort()
            task.cancel()
        return tasks

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection (the ``asyncio.start_server`` callback)."""
        task = asyncio.current_task()
        assert task is not None
        self._open[task] = writer
        self.stats.connected()
        try:  # CancelledError: the shutdown; ending normally avoids 3.11's stream-callback noise
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, OSError, asyncio.CancelledError):
                await self._serve(reader, writer)
        finally:
            self._open.pop(task, None)
            if not writer.is_closing():
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests one after another until one cannot keep the connection."""
        while True:
            try:
                head = await reader.readuntil(HEAD_END)
            except asyncio.IncompleteReadError:
                return  # client closed (possibly mid-request)
            except asyncio.LimitOverrunError:
                await write(writer, "GET", text(431), False)
                return
            try:
                req = parse_request(head)
            except BadRequest as exc:
                log.debug("bad request: %s", exc)
                await write(writer, "GET", text(400), False)
                return
            if not await self._dispatch(req, reader, writer):
                return

    async def _dispatch(self, req: Request, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        """Answer one request; True if the connection may be reused."""
        keep = await _skip_body(req, reader)
        if keep is None:
            await write(writer, req.method, text(400), False)
            return False
        self.stats.begin(req.path, req.headers.get("user-agent"))
        try:
            response = await self.routes.answer(req, writer)
            if response is None:
                return False  # the route handled (and ended) the connection itself
            log.debug("%s %s -> %d", req.method, req.path, response.status)
            await write(writer, req.method, response, keep)
            return keep
        finally:
            self.stats.end()
