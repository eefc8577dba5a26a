"""Worker log lines to the parent over a pipe, robust to workers killed mid-line.

Each record is one os.write() of at most PIPE_BUF bytes, which POSIX makes atomic: a worker
killed by SIGKILL can lose its own line but never corrupt another's (a multiprocessing.Queue
can be left locked or half-written, and then the parent hangs).
"""
from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import traceback
from typing import Any

MAX_LINE = 4000  # below PIPE_BUF (4096 on Linux), so each write is atomic
POLL_S = 0.1  # how often the relay thread looks whether it should stop
READ_BYTES = 1 << 16  # read at most this much of the pipe at a time
TRACEBACK_MARK = "\x00traceback\x00"
_show_tracebacks = False


class PipeHandler(logging.Handler):
    """Worker side: one atomic write per record."""

    def __init__(self, connection: Any) -> None:
        super().__init__()
        self.connection = connection  # keeps the descriptor alive
        self.fd = connection.fileno()

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # logging must never take a worker down
            message = record.getMessage()
            if record.exc_info:  # the parent shows it with --traceback or -vv
                message += TRACEBACK_MARK + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            message = message.replace("\\", "\\\\").replace("\n", "\\n")
            line = f"{record.levelno}\t{record.name}\t{message}".encode("utf-8", "replace")[:MAX_LINE - 1]
            os.write(self.fd, line + b"\n")


class LogRelay:
    """Parent side: a pipe workers write to, and a thread re-emitting its lines through logging."""

    def __init__(self, ctx: Any) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="imgfetch-log-relay", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        fd, pending = self.reader.fileno(), b""
        while True:
            ready, _, _ = select.select([fd], [], [], POLL_S)
            if not ready:
                if self._stop.is_set():
                    return
                continue
            chunk = os.read(fd, READ_BYTES)
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                _emit(line)

    def stop(self) -> None:
        """Re-emit what has arrived, then stop (never waits on a worker)."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.writer.close()
        self.reader.close()


def _emit(line: bytes) -> None:
    with contextlib.suppress(ValueError):  # not a line a PipeHandler wrote whole
        level, name, message = line.decode("utf-8", "replace").split("\t", 2)
        message = message.replace("\\n", "\n").replace("\\\\", "\\")
        message, _, stack = message.partition(TRACEBACK_MARK)
        if stack and _show_tracebacks:
            message += "\n" + stack
        logging.getLogger(name).log(int(level), "%s", message)


def show_tracebacks(show: bool = True) -> None:
    """Re-emit workers' tracebacks with their log lines (the CLI's --traceback and -vv)."""
    global _show_tracebacks
    _show_tracebacks = show


def install_in_worker(connection: Any, level: int) -> None:
    """Route this worker's 'imgfetch' logging to the parent."""
    root = logging.getLogger("imgfetch")
    root.handlers[:] = [PipeHandler(connection)]
    root.setLevel(level)
    root.propagate = False
