"""Open-file limits: a list spread over thousands of hosts must not run out of descriptors."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)
RESERVED_FDS = 64   # pipes, log relay, the manifest, Python's own files
FDS_PER_THREAD = 2  # a socket and the file being written
UNLIMITED_TARGET = 1 << 20  # the soft limit asked for when the hard limit is unlimited


def raise_open_files_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; return the soft limit (None if unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, UNLIMITED_TARGET)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else soft


def idle_pools(threads: int, wanted: int) -> int:
    """How many hosts' idle keep-alive connections (up to ``threads`` each) a process may keep."""
    limit = raise_open_files_limit()
    if limit is None:
        return wanted
    spare = limit - RESERVED_FDS - FDS_PER_THREAD * threads
    if spare < threads:
        log.warning("the open-files limit (%d) is low for %d download threads; raise it with `ulimit -n`",
                    limit, threads)
    return max(1, min(wanted, spare // max(1, threads)))
