"""The time one URL may take: --max-time over all attempts, --deadline per attempt, and the waits
between attempts (backoff, or the server's Retry-After) that still fit in what is left."""
from __future__ import annotations

import email.utils
import random
import time

from ..options import Options
from ..records import ErrorKind
from .failures import Failure

BACKOFF_CAP = 30.0         # longest backoff between two attempts, in seconds
JITTER = (0.5, 1.5)        # each backoff is scaled by a random factor in this range, so retries spread out
MIN_ATTEMPT_S = 1.0        # a retry is started only if at least min(--timeout, this) of --max-time is left


class Budget:
    """The time one URL may take (--max-time), and the time the current attempt may take (--deadline)."""

    __slots__ = ("end", "attempt_end", "max_time", "deadline")

    def __init__(self, opts: Options) -> None:
        self.max_time, self.deadline = opts.max_time, opts.deadline
        self.end = time.monotonic() + opts.max_time
        self.attempt_end = self.end

    def start_attempt(self) -> None:
        """Start an attempt: it may last --deadline, within what is left of --max-time."""
        now = time.monotonic()
        self.attempt_end = min(self.end, now + self.deadline) if self.deadline else self.end

    def left(self) -> float:
        return self.end - time.monotonic()

    def overrun(self, url: str, status: int | None) -> Failure:
        """The failure of an attempt that ran past its end, naming the option that set it."""
        if self.attempt_end < self.end:
            message = f"timed out: download took longer than --deadline {self.deadline:g} s"
        else:
            message = f"timed out: download took longer than --max-time {self.max_time:g} s"
        return Failure(message, ErrorKind.TIMEOUT, transient=True, status=status, final_url=url)


def retry_wait(opts: Options, attempts: int, retry_after: float | None, left: float) -> tuple[float, str | None]:
    """(seconds to wait before the next attempt, or a reason not to make one) with ``left`` s of --max-time."""
    if retry_after is not None:
        if retry_after > opts.max_retry_after:
            return 0.0, f"Retry-After {retry_after:g} s is longer than --max-retry-after {opts.max_retry_after:g} s"
        if retry_after > left:
            return 0.0, (f"Retry-After {retry_after:g} s is longer than the {max(left, 0):.1f} s left of "
                         f"--max-time {opts.max_time:g} s")
        delay = retry_after
    else:
        delay = min(BACKOFF_CAP, opts.backoff * 2 ** (attempts - 1)) * random.uniform(*JITTER)
    if left - delay < min(opts.timeout, MIN_ATTEMPT_S):
        return 0.0, (f"gave up after {attempts} attempt{'s' if attempts > 1 else ''}: "
                     f"no time left in --max-time {opts.max_time:g} s")
    return delay, None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
