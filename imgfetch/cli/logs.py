"""The CLI's logging: one handler that writes above the progress bar, at the level -q/-v ask for."""
from __future__ import annotations

import argparse
import contextlib
import logging
from typing import IO, Iterator

log = logging.getLogger("imgfetch")


class _BarSafeHandler(logging.Handler):
    """Writes log lines to ``stream``, above the progress bar instead of through it; a warning or an error
    reads 'imgfetch: warning: ...'."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"imgfetch: {record.levelname.lower()}: {message}"
        return message

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def logging_to(stream: IO[str], args: argparse.Namespace) -> Iterator[None]:
    """imgfetch's log lines on ``stream`` while a command runs, at the level -q/-v ask for; as before after it."""
    handlers, propagate, level = log.handlers[:], log.propagate, log.level
    log.handlers[:], log.propagate = [_BarSafeHandler(stream)], False
    quiet = getattr(args, "quiet", False)
    log.setLevel(logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else
                 logging.ERROR if quiet else logging.WARNING)
    if args.verbose > 1 or args.traceback:
        from ..logrelay import show_tracebacks

        show_tracebacks()
    if args.verbose or getattr(args, "log_pids", False):
        logging.getLogger("imgfetch.pids").setLevel(logging.INFO)
    try:
        yield
    finally:
        log.handlers[:], log.propagate = handlers, propagate
        log.setLevel(level)
