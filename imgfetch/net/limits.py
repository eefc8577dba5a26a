"""Open-file limits: a list spread over thousands of hosts must not run out of descriptors.

Only a process of our own (a pool worker) raises its soft limit, at start (``raise_open_files_limit``);
an in-process ``fetch()`` lives in someone else's process and leaves its limits alone
(``idle_budget`` only reads them).
"""
from __future__ import annotations

import contextlib
import logging

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
RESERVED_FDS = 64   # pipes, log relay, the manifest, Python's own files
FDS_PER_THREAD = 2  # a socket and the file being written
UNLIMITED_TARGET = 1 << 20  # the soft limit asked for when the hard limit is unlimited
MAX_IDLE = 1024     # idle keep-alive connections a process keeps at most, whatever the limit allows


def raise_open_files_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; return the soft limit (None if unknown).

    Process-wide: call it only in a process that is ours alone.
    """
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, UNLIMITED_TARGET)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return None if soft == resource.RLIM_INFINITY else soft


def open_files_limit() -> int | None:
    """The soft RLIMIT_NOFILE as it is (None if unknown or unlimited)."""
    if resource is None:
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def idle_budget(threads: int, limit: int | None = None, most: int = MAX_IDLE) -> int:
    """How many idle keep-alive connections, over all hosts, a process with ``threads`` download threads
    may keep: what the open-files limit (``limit``, else this process's) leaves spare, at most ``most``."""
    limit = open_files_limit() if limit is None else limit
    if limit is None:
        return most
    spare = limit - RESERVED_FDS - FDS_PER_THREAD * threads
    if spare < threads:
        log.warning("the open-files limit (%d) is low for %d download threads; raise it with `ulimit -n`",
                    limit, threads)
    return max(1, min(most, spare))
