"""The progress bar: one per run, in the parent, fed one record at a time.

- The bar counts URLs. Skipped records (done by an earlier run, or failed in one and not retried) are
  not counted as progress: they come off the bar's total instead, so the rate and the ETA are about real downloads.
- Its postfix shows the run summary's own counts, updated with every record.
- For a list file, a background thread counts the list's entries, so the bar gets a total
  (and so a percentage and an ETA) soon after the start; gzip files too. For standard input
  and generators the bar goes without a total.
- A ticker thread redraws the bar every TICK_S, so the elapsed time moves while URLs are slow.
- In Jupyter the bar is a widget when ipywidgets is installed (``pip install 'imgfetch[notebook]'``),
  and otherwise, quietly, a text bar.
"""
from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from ..records import FetchResult
from .summary import Summary

log = logging.getLogger(__name__)
TICK_S = 0.5  # seconds between redraws while no record arrives
REDRAW_S = 0.1  # seconds: tqdm redraws for records at most this often (its mininterval)
RATE_SMOOTHING = 0.1  # tqdm's smoothing: the rate shown is mostly the recent one


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (notebook, lab, VS Code), not in a terminal IPython or a qtconsole."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "qt" not in type(shell).__name__.lower()


def _bar_class() -> Any:
    """tqdm's notebook widget when it can be drawn, else the text bar; never tqdm's ipywidgets warning."""
    if in_jupyter():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: forking a threaded parent invites deadlocks
    return tqdm


class Progress:
    """The bar of one run. ``add`` every record; ``close(complete)`` at the end."""

    def __init__(self, summary: Summary, counter: Any | None, label: str | None = None) -> None:
        """``counter``: anything with a ``total`` (None until known) and a ``stop()``, such as a ListCounter."""
        self.summary, self.counter = summary, counter
        self.skipped = 0
        self._lock = threading.Lock()
        bar_class = _bar_class()
        self._notebook = bar_class.__module__.startswith("tqdm.notebook")
        options: dict[str, Any] = dict(desc=label, unit="img", mininterval=REDRAW_S, miniters=1,
                                       smoothing=RATE_SMOOTHING)
        if not self._notebook:
            options["dynamic_ncols"] = True
        self.bar = bar_class(total=self._total(0), **options)
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
        with self._lock:
            self.bar.set_postfix_str(self.summary.postfix(), refresh=False)
            if record.skipped:
                self.skipped += 1
                self._set_total(self._total(self.bar.n))
            else:
                self._set_total(self._total(self.bar.n))
                self.bar.update(1)

    def _tick(self) -> None:
        while not self._ticking.wait(TICK_S):
            with self._lock:
                self._set_total(self._total(self.bar.n))
                self.bar.refresh()

    def close(self, complete: bool) -> None:
        """Stop the ticker and draw the final counts; a complete run ends at 100%."""
        self._ticking.set()
        self._ticker.join()
        if self.counter is not None:
            self.counter.stop()
        with self._lock:
            if complete:
                self._set_total(self.bar.n)
            self.bar.set_postfix_str(self.summary.postfix(), refresh=False)
            self.bar.refresh()
            self.bar.close()
