"""``imgfetch.Downloader``: the engine as an executor of URLs, shaped like ``ProcessPoolExecutor`` and warm between
calls; it runs on the same driver as ``download()`` (engine/driver.py).
"""
from __future__ import annotations

import atexit
import collections
import functools
import itertools
import logging
import os
import threading
import time
import weakref
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from ..options import Options
from ..options.keywords import NOT_FOR_A_DOWNLOADER, keyword_signature, options_from_keywords
from ..records import FetchResult
from ..sources import entry_of
from .driver import Driver, Request
from .engine import ABORT_WAIT_S, STOP_GRACE_S
from .folder import OutputFolder, refuse_overwriting_the_list
from .guard import check_main_guard, refuse_in_worker
from .plan import Planned, Planner

if TYPE_CHECKING:  # Unpack is Python 3.11's; type checkers know typing_extensions' on 3.10 too
    from typing_extensions import Unpack

    from ..options.typed import DownloaderKeywords

log = logging.getLogger(__name__)
STOPPED_WORKERS_S = 5.0  # after a stop's grace and abort: for the workers to exit and the folder to be released
_live: weakref.WeakSet[Downloader] = weakref.WeakSet()  # shut down at interpreter exit, as the stdlib's executors are


class Downloader:
    """Fetch image URLs on warm worker processes; each ``submit`` returns a Future of the URL's record.

    >>> with Downloader("out", workers=2, threads=32) as d:      # doctest: +SKIP
    ...     future = d.submit("http://127.0.0.1:8000/img/0.jpg")
    ...     for record in d.map(urls):                          # in input order, a bounded window ahead
    ...         print(record.status, record.path)
    >>> future.result()
    <FetchResult ok line 1 '0-1b2c3d4e5f.jpg' 15.3 kB JPEG 320x240>

    The keyword arguments are download()'s (the same :class:`Options`), less ``progress`` (there is
    no bar) and those that read list files. The workers start here, once, and stay up until
    ``shutdown``; OUT and its manifest are locked until then, and every record is in the manifest
    before its Future is done. A failed URL is a record, never an exception: ``result()`` raises only
    what is not one URL's fault (the workers keep dying, the disk is full), and CancelledError.

    It takes URLs, not callables, so it is not a ``concurrent.futures.Executor``: do not hand it to
    code that gives an executor arbitrary functions (``loop.run_in_executor``). Its Futures are
    ``concurrent.futures.Future`` objects: ``as_completed``, ``wait``, ``add_done_callback`` and
    ``asyncio.wrap_future`` take them. Done-callbacks run in the Downloader's own thread, one at a
    time: keep them short, and never wait in one for another of its Futures.
    """

    def __init__(self, out_dir: str | os.PathLike[str], *, options: Options | None = None,
                 **kwargs: Unpack[DownloaderKeywords]) -> None:
        opts = options_from_keywords(Downloader.__init__, kwargs, options)
        if opts.output_format != "files":  # a shard is complete only when its worker ends: a run's, not a service's
            raise ValueError(f"a Downloader saves files; for output_format {opts.output_format} use download()")
        refuse_in_worker()
        check_main_guard(opts.start_method, opts.executor, opts.scheduler)
        self.options = opts
        self._folder = OutputFolder(out_dir, opts, remember=True)
        refuse_overwriting_the_list(None, self._folder.manifest_path, Path(opts.errors) if opts.errors else None)
        if opts.executor == "dask":
            from .dask_pool import require_dask

            require_dask()
        if opts.insecure:
            log.warning("insecure: TLS certificates are not checked for any URL of this Downloader")
        self._driver = Driver(self._folder, opts, name="imgfetch-downloader")
        self._driver.start()
        assert self._folder.done is not None
        self._planner = Planner(self._folder.done, self._folder.root, opts.retry_failed, duplicates=False,
                                repeat=False)
        self._lines = itertools.count(1)  # a URL's line is its place in the order of submits, from 1
        self._lock = threading.Lock()     # submits against shutdown: nothing is queued after it
        self._shut = False
        self._pending: set[Future[FetchResult]] = set()
        weakref.finalize(self, self._driver.close)  # dropped without shutdown: finish what was submitted, then free
        _live.add(self)
        _register_exit_hook()

    @property
    def manifest_path(self) -> Path:
        return self._folder.manifest_path

    def submit(self, url: str | Mapping[str, Any]) -> Future[FetchResult]:
        """Queue one URL (a string, or a mapping with the URL under ``url_key`` and the kept columns);
        the Future's result is its record, written to the manifest first.

        A URL this folder's manifest records as done, or as failed for good (see ``retry_failed``),
        is not fetched again: its record comes back at once, skipped, and nothing is appended. A URL
        submitted while it is being fetched shares that fetch: a copy of its record, skipped.
        Per-URL options are not taken: give them to the Downloader.
        Raises RuntimeError after ``shutdown``, or the failure that stopped the Downloader.
        """
        if not isinstance(url, (str, Mapping)):
            raise TypeError(f"a URL must be a str or a Mapping, not {type(url).__name__}")
        future: Future[FetchResult] = Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._pending.add(future)
            if not self._driver.put([Request(self._plan, (url, next(self._lines)), future)]):
                self._pending.discard(future)
                raise self._driver.failure or RuntimeError("cannot schedule new futures after the Downloader stopped")
        future.add_done_callback(self._pending.discard)
        return future

    def _plan(self, submitted: tuple[str | Mapping[str, Any], int]) -> Planned:
        """In the driver's thread: the URL's entry (normalised there, off the caller's thread), then its plan."""
        url, line = submitted
        return self._planner.plan(entry_of(url, line, self.options.url_key, self.options.keep_columns))

    def map(self, urls: Iterable[str | Mapping[str, Any]], timeout: float | None = None) -> Iterator[FetchResult]:
        """Records in the order of ``urls``, read lazily: a bounded window of URLs is in flight ahead.

        As ``Executor.map``: the first window is submitted now; ``timeout`` counts from this call, and
        the iterator raises TimeoutError when a record is not there in time; leaving the loop early
        cancels what has not started.
        """
        if isinstance(urls, (str, bytes, os.PathLike)):
            raise TypeError("map() takes an iterable of URLs; for a list file, use imgfetch.download()")
        deadline = None if timeout is None else time.monotonic() + timeout
        source = iter(urls)
        futures = collections.deque(self.submit(url) for url in itertools.islice(source, self._driver.window))
        return self._in_order(source, futures, deadline)

    def _in_order(self, source: Iterator[Any], futures: collections.deque[Future[FetchResult]],
                  deadline: float | None) -> Iterator[FetchResult]:
        try:
            while futures:
                future = futures.popleft()
                try:
                    record = future.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
                except BaseException:
                    future.cancel()
                    raise
                for url in itertools.islice(source, 1):
                    futures.append(self.submit(url))
                yield record
        finally:
            for future in futures:
                future.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more submits; with ``wait``, return once every Future is done, the workers have exited and
        OUT is released (only images and the manifest in it). ``cancel_futures``: cancel the URLs not
        handed to a worker yet (their records are not written; a later run fetches them). Ctrl-C while
        it waits cancels those too, gives downloads in flight the grace period, then raises."""
        with self._lock:
            self._shut = True
            if cancel_futures:
                self._cancel_queued()
            self._driver.close()
        if not wait or self._driver.is_current():  # from a done-callback: the driver cannot wait for itself
            return
        try:
            self._driver.join()
        except KeyboardInterrupt:
            self._cancel_queued()
            self._driver.stop()
            self._driver.join(STOP_GRACE_S + ABORT_WAIT_S + STOPPED_WORKERS_S)
            raise

    def _cancel_queued(self) -> None:
        for future in list(self._pending):
            future.cancel()  # only a Future not yet handed to a worker can be cancelled

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        state = "shut down" if self._shut else "running" if self._driver.running else "stopped"
        return f"<Downloader {str(self._folder.root)!r} {state}, {len(self._pending)} pending>"


@functools.cache
def _register_exit_hook() -> None:
    atexit.register(_shutdown_all)


def _shutdown_all() -> None:
    """At interpreter exit: finish what was submitted, stop the workers, release the folders."""
    for downloader in list(_live):
        downloader.shutdown(wait=True)


Downloader.__init__.__signature__ = keyword_signature(  # type: ignore[attr-defined]
    Downloader.__init__, leave_out=NOT_FOR_A_DOWNLOADER)
