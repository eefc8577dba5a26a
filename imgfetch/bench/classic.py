"""The classic example, as textbooks write it: a sequential ``requests.get`` loop, and
``ProcessPoolExecutor(3).map(download_image, urls, chunksize=1)``: ``imgfetch bench``'s baseline rows.

``download_image`` differs from the textbook only where the benchmark needs it to: its PID line goes
through logging (``imgfetch.pids``), not print; it keeps to its run's time box (a hanging or trickling
URL cannot hold the run) and to a per-host start rate when asked; and it returns what happened, so
the parent can count images per process.
"""
from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

import requests
import urllib3

pid_log = logging.getLogger("imgfetch.pids")
CLASSIC_LINE = "[Process ID]:%d Downloading.."
DEFAULT_TIMEOUT_S = 10.0  # the textbook passes none; a dead host must not stall a time-boxed run
NAME_CHARS = 20           # hex digits of the URL's SHA-1 that name its file: no clash in any real list
PIECE = 64 * 1024         # most bytes of a body read at once; each piece read is followed by a look at the clock
MIN_WAIT_S = 0.01         # a download started just before the deadline still gets this long to connect
_next_start: dict[str, float] = {}  # per process: host -> earliest next start (only with a rate)


@dataclass(frozen=True)
class Outcome:
    """One URL in the classic code: which process, whether an image was saved, and when it ended."""

    pid: int
    ok: bool
    bytes: int
    finished: float  # time.monotonic(): CLOCK_MONOTONIC, the same clock in every process of the machine
    skipped: bool = False  # after the deadline: not downloaded


@dataclass(frozen=True)
class Box:
    """One run's time box: downloads start at ``start``; the images saved between ``opens`` and
    ``closes`` are counted. The time before ``opens`` lets the processes and connections start."""

    start: float
    opens: float
    closes: float

    @classmethod
    def from_now(cls, ramp: float, seconds: float) -> "Box":
        now = time.monotonic()
        return cls(now, now + ramp, now + ramp + seconds)


@dataclass
class RunStats:
    """One time-boxed run of one row of the table."""

    seconds: float          # how long the box was open (less when the list ran out first)
    images: int             # images saved while it was open
    failures: int           # downloads that failed while it was open
    bytes: int
    first_s: float | None   # from the start of the run to the first saved image
    pid_counts: dict[int, int] = field(default_factory=dict)  # URLs each process handled in the whole run

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def download_image(url: str, out_dir: str, timeout: float = DEFAULT_TIMEOUT_S, deadline: float = math.inf,
                   min_interval: float = 0.0) -> Outcome:
    """The textbook's download_image, module-level so that spawn and forkserver workers import it by name:
    log the PID line, requests.get the URL, write the file."""
    if time.monotonic() >= deadline or not _pace(url, min_interval, deadline):
        return Outcome(os.getpid(), False, 0, time.monotonic(), skipped=True)
    pid_log.info(CLASSIC_LINE, os.getpid())
    try:
        content = _get(url, timeout, deadline)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
        content = None
    if not content:
        return Outcome(os.getpid(), False, 0, time.monotonic())
    # A hash of the URL rather than its last path segment, which may be empty, '..' or repeated.
    name = os.path.join(out_dir, hashlib.sha1(url.encode()).hexdigest()[:NAME_CHARS])
    with open(name, "wb") as handle:
        handle.write(content)
    return Outcome(os.getpid(), True, len(content), time.monotonic())


def _get(url: str, timeout: float, deadline: float) -> bytes | None:
    """``requests.get(url, timeout=timeout).content`` of a 200 answer, or None; cut at the deadline."""
    # The timeout bounds the wait for each piece of data; the deadline check after each piece
    # stops a body that trickles in.
    wait = min(timeout, max(deadline - time.monotonic(), MIN_WAIT_S))
    with requests.get(url, timeout=wait, stream=True) as response:
        if response.status_code != HTTPStatus.OK:
            return None
        body = bytearray()
        while piece := response.raw.read1(PIECE, decode_content=True):  # what has arrived, up to PIECE
            body += piece
            if time.monotonic() > deadline:
                return None
        return bytes(body)


def _pace(url: str, min_interval: float, deadline: float) -> bool:
    """Wait for this host's next start under --rate; False if that falls after the deadline."""
    if min_interval <= 0:
        return True
    host = urlsplit(url).netloc
    now = time.monotonic()
    start = max(now, _next_start.get(host, 0.0))
    if start >= deadline:
        return False
    _next_start[host] = start + min_interval
    time.sleep(start - now)
    return True


def sequential_loop(urls: Sequence[str], out_dir: str, *, box: Box, timeout: float,
                    rate: float | None = None) -> RunStats:
    """``for url in urls: download_image(url)`` in this process, until the box closes."""
    outcomes = []
    for url in urls:
        outcome = download_image(url, out_dir, timeout, box.closes, 1.0 / rate if rate else 0.0)
        if outcome.skipped:
            break
        outcomes.append(outcome)
    return run_stats(outcomes, box, ran_out=len(outcomes) == len(urls))


def classic_pool(urls: Sequence[str], out_dir: str, *, box: Box, workers: int, chunksize: int, start_method: str,
                 timeout: float, rate: float | None = None, log_pipe: Any = None,
                 log_level: int = logging.WARNING, log_pids: bool = False) -> RunStats:
    """``ProcessPoolExecutor(workers).map(download_image, urls, chunksize=chunksize)``, time-boxed.

    The pool starts inside the box, as it does in the textbook script. With ``rate``, each of the
    ``workers`` processes starts at most rate / workers downloads per second per host.
    """
    job = partial(download_image, out_dir=out_dir, timeout=timeout, deadline=box.closes,
                  min_interval=workers / rate if rate else 0.0)
    context = multiprocessing.get_context(start_method)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(log_pipe, log_level, log_pids)) as executor:
        outcomes = list(executor.map(job, urls, chunksize=chunksize))
    return run_stats(outcomes, box, ran_out=not any(o.skipped for o in outcomes))


def _start_worker(log_pipe: Any, level: int, log_pids: bool) -> None:
    """Route a classic worker's log lines to the parent, as the engine's workers do."""
    if log_pipe is not None:
        from ..logrelay import install_in_worker

        install_in_worker(log_pipe, level)
    if log_pids:
        pid_log.setLevel(logging.INFO)


def run_stats(outcomes: Iterable[Outcome], box: Box, *, ran_out: bool) -> RunStats:
    """Count the images saved while the box was open.

    A run whose list ran out before the box closed is timed to its last image (from the start of
    the run if it ran out before the box even opened).
    """
    done = [o for o in outcomes if not o.skipped]
    opens, end = box.opens, box.closes
    if ran_out and done and max(o.finished for o in done) <= box.closes:
        end = max(o.finished for o in done)
        if end <= opens:
            opens = box.start
    within = [o for o in done if o.finished <= end]
    counted = [o for o in within if o.finished > opens or opens == box.start]
    saved = [o for o in counted if o.ok]
    first = [o.finished for o in within if o.ok]
    return RunStats(seconds=end - opens, images=len(saved), failures=len(counted) - len(saved),
                    bytes=sum(o.bytes for o in saved), first_s=min(first) - box.start if first else None,
                    pid_counts=dict(Counter(o.pid for o in within)))
