"""The progress bar: one per run, in the parent, fed one record at a time (the README's "What you see" says
what it shows). A ticker thread redraws it every TICK_S, so the elapsed time moves while URLs are slow."""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from typing import IO, Any, Callable

from ..records import FetchResult
from .summary import Summary

TICK_S = 0.5  # seconds between redraws while no record arrives
REDRAW_S = 0.1  # seconds: tqdm redraws for records at most this often (its mininterval)
RATE_SMOOTHING = 0  # tqdm's smoothing: 0 is the rate over the run, which cannot freeze at a burst's value
STALL_S = 2.0  # the oldest URL in flight has waited this long, with nothing back for as long: say so
FALLBACK_SIZE = (80, 24)  # columns, rows: for a terminal that reports none (script, some CI runners, docker exec -t)
# (URLs in flight, when the oldest was handed out, when the newest was), times from time.monotonic()
InFlightProbe = Callable[[], "tuple[int, float | None, float | None]"]


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (notebook, lab, VS Code), not in a terminal IPython or a qtconsole."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "qt" not in type(shell).__name__.lower()


def wanted(progress: bool | None, file: IO[str] | None = None) -> bool:
    """Whether to draw a bar: as asked, or (None) on a terminal (``file``, stderr by default) or in Jupyter,
    never into a log file."""
    if progress is not None:
        return progress
    return in_jupyter() or is_terminal(file or sys.stderr)


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is on a terminal; False for a file, a closed stream or none at all (pythonw)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def terminal_size(stream: IO[str]) -> tuple[int, int]:
    """(columns, rows) of the terminal ``stream`` is on, each FALLBACK_SIZE's where it reports 0 or is no terminal."""
    if not is_terminal(stream):  # a file, or a notebook's stream (whose fileno may be the server's terminal)
        return FALLBACK_SIZE
    try:
        columns, rows = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return FALLBACK_SIZE
    return columns or FALLBACK_SIZE[0], rows or FALLBACK_SIZE[1]


def _bar_class() -> Any:
    """tqdm's notebook widget when it can be drawn, else the text bar; never tqdm's ipywidgets warning."""
    if in_jupyter():
        with contextlib.suppress(ImportError):
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm
    from tqdm.std import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: forking a threaded parent invites deadlocks
    return tqdm


class Progress:
    """The bar of one run. ``add`` every record; ``close(complete)`` at the end."""

    def __init__(self, summary: Summary, counter: Any | None, label: str | None = None, *,
                 in_flight: InFlightProbe | None = None, budget_s: float | None = None,
                 file: IO[str] | None = None) -> None:
        """``counter``: anything with a ``total`` (None until known) and a ``stop()``, such as a ListCounter.

        ``in_flight`` says what the workers hold (see InFlightProbe); ``budget_s`` is one URL's --max-time;
        ``file`` is where a text bar is drawn (stderr by default).
        """
        self.summary, self.counter = summary, counter
        self.skipped = 0
        self._lock = threading.Lock()
        self._in_flight, self._budget_s = in_flight, budget_s
        self._last_record = time.monotonic()
        self._last_waiting = float("-inf")  # when the bar last had slow URLs to wait on
        self._waiting = ""  # ", 14 waiting, longest 22 s" while the bar waits on slow URLs
        bar_class = _bar_class()
        self._notebook = bar_class.__module__.startswith("tqdm.notebook")
        options: dict[str, Any] = dict(desc=label, unit="img", mininterval=REDRAW_S, miniters=1,
                                       smoothing=RATE_SMOOTHING)
        if self._notebook:
            options["display"] = False  # displayed here, with a handle to store its final text at the end
        else:
            options["file"] = file or sys.stderr
            options["ncols"], options["nrows"] = terminal_size(options["file"])  # the ticker follows resizes
        self.bar = bar_class(total=self._total(0), **options)
        self._shown = _display(self.bar.container) if self._notebook else None
        self._ticking = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="imgfetch-progress", daemon=True)
        self._ticker.start()

    def _total(self, done: int) -> int | None:
        """The list's entries less the skipped ones (never below what is done), or None if not known yet."""
        counted = self.counter.total if self.counter is not None else None
        return None if counted is None else max(counted - self.skipped, done)

    def _set_total(self, total: int | None) -> None:
        if total is None or total == self.bar.total:
            return
        if self._notebook:  # the widget keeps its own maximum
            _, widget, _ = self.bar.container.children
            if not self.bar.total:
                widget.bar_style, widget.layout.width = "", None
            widget.max = total
        self.bar.total = total

    def add(self, record: FetchResult) -> None:
        """Count one record: skipped ones come off the total; the counts are the summary's."""
        self.add_counts(1, skipped=int(record.skipped))

    def add_counts(self, done: int, skipped: int = 0) -> None:
        """Count a batch of records at once (a sharded run's finished shard): ``skipped`` of them come off the total."""
        with self._lock:
            self._last_record = time.monotonic()
            self.bar.set_postfix_str(self.summary.postfix() + self._waiting, refresh=False)
            self.skipped += skipped
            self._set_total(self._total(self.bar.n + max(0, done - skipped)))
            self.bar.update(max(0, done - skipped))  # a shard run again after a crash may have shown more already

    def _tick(self) -> None:
        while not self._ticking.wait(TICK_S):
            with self._lock:
                self._set_total(self._total(self.bar.n))
                if not self._notebook:
                    self.bar.ncols, self.bar.nrows = terminal_size(self.bar.fp)
                self._say_what_it_waits_on(time.monotonic())
                self.bar.refresh()

    def _say_what_it_waits_on(self, now: float) -> None:
        """While slow URLs hold the bar up: their count and the longest wait in the postfix, and an ETA
        bounded by their budgets. Shown STALL_S after it applies and kept STALL_S after, so it does not flicker."""
        count, oldest, newest = self._in_flight() if self._in_flight is not None else (0, None, None)
        left = self.bar.total - self.bar.n if self.bar.total else None
        tail = left is not None and left <= count  # every URL left is in flight
        if oldest is not None and now - oldest >= STALL_S and (tail or now - self._last_record >= STALL_S):
            self._last_waiting = now
        if oldest is None or newest is None or now - self._last_waiting >= STALL_S:
            waiting, self.bar.bar_format = "", None
        else:
            waiting = f", {count:,} waiting, longest {now - oldest:.0f} s"
            self.bar.bar_format = self._eta_format(newest + self._budget_s - now) if tail and self._budget_s else None
        if waiting != self._waiting:  # records set the postfix themselves as they come
            self._waiting = waiting
            self.bar.set_postfix_str(self.summary.postfix() + waiting, refresh=False)

    def _eta_format(self, seconds: float) -> str:
        """tqdm's own layout with the ETA given ('?' once past the budgets: a worker may be slow to report)."""
        eta = self.bar.format_interval(math.ceil(seconds)) if seconds > 0 else "?"  # never 00:00 while waiting
        return "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<" + eta + ", {rate_fmt}{postfix}]"

    def close(self, complete: bool) -> None:
        """Stop the ticker and draw the final counts; a complete run ends at 100%."""
        self._ticking.set()
        self._ticker.join()
        if self.counter is not None:
            self.counter.stop()
        with self._lock:
            if complete:
                self._set_total(self.bar.n)
            self.bar.bar_format = None
            self.bar.set_postfix_str(self.summary.postfix(), refresh=False)
            self.bar.refresh()
            self.bar.close()
            if self._shown is not None:
                self._shown.update(self.bar.container)  # a saved notebook's text/plain: the final bar, not 0%


def _display(widget: Any) -> Any:
    """Show the widget in the cell's output; the handle updates that same output later."""
    from IPython.display import display

    return display(widget, display_id=True)
