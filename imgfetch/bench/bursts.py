"""The bench's note on bursts, as a program that needs images over time (a notebook, a web service) sends
them: 10 URLs at a time through a warm ``imgfetch.Downloader``, or through a fresh ``download()`` that starts
and stops its worker processes every time. The two alternate, so drift hits both alike, and each burst's URLs
are new to its folder, so every URL is fetched.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..options import Options

BURST = 10    # URLs in a burst
BURSTS = 5    # bursts of each kind, at the most (fewer when the list is short)
BURST_MAX_TIME_S = 2.0  # --max-time in a burst: a URL that hangs must not hold the bench for get's 30 s


@dataclass(frozen=True)
class BurstNote:
    """Seconds each burst took, warm and fresh, with get's pool size."""

    warm_s: tuple[float, ...]
    fresh_s: tuple[float, ...]
    workers: int
    threads: int

    @property
    def warm(self) -> float:
        return statistics.median(self.warm_s)

    @property
    def fresh(self) -> float:
        return statistics.median(self.fresh_s)


def measure_bursts(urls: Sequence[str], opts: Options, folder: Path) -> BurstNote | None:
    """Time the bursts; None when the list has fewer than BURST URLs."""
    from ..api import Downloader, download

    count = min(BURSTS, len(urls) // BURST)
    if not count:
        return None
    slices = [list(urls[n * BURST:(n + 1) * BURST]) for n in range(count)]
    options = opts.replace(progress=None, log_pids=False, max_time=min(opts.max_time, BURST_MAX_TIME_S))
    warm, fresh = [], []
    with Downloader(folder / "warm", options=options) as downloader:
        for n, burst in enumerate(slices):
            started = time.monotonic()
            list(downloader.map(burst))
            warm.append(time.monotonic() - started)
            started = time.monotonic()
            download(burst, folder / f"fresh-{n}", options=options.replace(progress=False))
            fresh.append(time.monotonic() - started)
    return BurstNote(tuple(warm), tuple(fresh), opts.workers, opts.threads)


def format_bursts(note: BurstNote) -> str:
    """Two lines, as the advice's: the medians side by side, the ratio, and why."""
    return (f"Bursts of {BURST} URLs ({len(note.warm_s)} each way, {note.workers} x {note.threads}): a warm "
            f"imgfetch.Downloader took {note.warm * 1000:.0f} ms a burst,\n  a fresh download() "
            f"{note.fresh * 1000:.0f} ms ({note.fresh / note.warm:.1f}x): the Downloader's processes start once and "
            f"wait between bursts.")
