"""The driver: one long-lived thread that owns the engine loop and its backend.

Every path through the library runs here: a Downloader's submits and a whole-list run alike.
Requests (an entry, the planner that decides what to do with it, and where its record goes) come
in from any thread through the inbox, which wakes the loop at once. In the driver's thread each
request is planned (a Task to fetch, or a ready record), tasks go to the engine, and every record
is written to the manifest before it is handed on: to a Future, or to a run's queue. Only this
thread touches the backend, the manifest and the index of what is done.

Two requests for one URL in flight at once share one fetch: the second gets a copy of the first's
record, marked skipped, and nothing more is written for it.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import multiprocessing
import os
import threading
from concurrent.futures import CancelledError, InvalidStateError
from typing import Any, Callable, Iterator, NamedTuple, Protocol

from ..errors import DiskFull
from ..logrelay import LogRelay
from ..options import Options
from ..records import FetchResult, Task
from .engine import Engine
from .folder import OutputFolder
from .plan import Planned
from .politeness import NOTHING_YET, lookahead

log = logging.getLogger(__name__)
WINDOW_SLACK = 4096  # requests a run keeps ahead of the engine, beyond twice what the workers hold
CUT_SHORT = "stopped before it finished: not recorded, so the next run into this folder fetches it"


class Route(Protocol):
    """Where a request's record goes: a ``concurrent.futures.Future``, or anything shaped like one."""

    def set_running_or_notify_cancel(self) -> bool: ...
    def set_result(self, result: Any) -> None: ...
    def set_exception(self, exception: BaseException | None) -> None: ...
    def cancel(self) -> bool: ...


class Request(NamedTuple):
    """What to do with ``item`` (an entry of a list; the Downloader's URL) is ``plan(item)``; its record goes to ``route``."""

    plan: Callable[[Any], Planned]
    item: Any
    route: Route


@dataclasses.dataclass
class _Fetch:
    """One task in the engine, and every request waiting for its record, each with its own task (line, columns)."""

    full_url: str | None
    append: bool
    creator: Route  # the request whose task is the one fetched
    routes: list[tuple[Route, Task]]
    running: bool = False  # handed to the backend: its routes can no longer be cancelled


class Driver:
    """The engine loop in a thread of its own; see the module docstring. ``start()`` opens the folder and starts
    the workers in the caller's thread (so what cannot start raises there), then the loop; ``on_end`` runs in
    the driver's thread once the folder is released."""

    def __init__(self, folder: OutputFolder, opts: Options, *, on_end: Callable[[], None] | None = None,
                 name: str = "imgfetch-driver") -> None:
        self.folder, self.opts, self.on_end, self.name = folder, opts, on_end, name
        self.engine: Engine | None = None
        self.failure: BaseException | None = None  # what ended the loop, if it did not end well
        self.stopped = False  # a stop was requested
        self.ended = threading.Event()
        self.window = WINDOW_SLACK
        self._inbox: collections.deque[list[Request]] = collections.deque()
        self._lock = threading.Lock()  # put() against the loop's end: no request is queued after it
        self._over = False
        self._closed = False
        self._fetches: dict[str, _Fetch] = {}
        self._relay: LogRelay | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.folder.open(self._capacity)
        try:
            self._relay = LogRelay(multiprocessing.get_context(self.opts.start_method))
            self.engine = Engine(self.opts, str(self.folder.root), str(self.folder.out.tmp), log_pipe=self._relay.writer,
                                 stop_requested=self._stop_requested, admit=self._admit)
            self.engine.start()
        except BaseException:
            if self.engine is not None and self.engine.backend is not None:
                self.engine.backend.close()
            if self._relay is not None:
                self._relay.stop()
            self.folder.finish(complete=False)
            raise
        self.window = 2 * self.engine.capacity + lookahead(self.opts.per_host, self.opts.rate) + WINDOW_SLACK
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def put(self, requests: list[Request]) -> bool:
        """Queue requests (from any thread); the loop looks at them at once. False once the loop has ended."""
        with self._lock:
            if self._over:
                return False
            self._inbox.append(requests)
        self._wake()
        return True

    def close(self) -> None:
        """No more requests: the loop ends once those queued are done."""
        self._closed = True
        self._wake()

    def stop(self, grace: bool = True) -> None:
        """Stop as on Ctrl-C: nothing new starts; downloads in flight get the grace period (or none)."""
        if not grace and self.engine is not None:
            self.engine.grace_s = 0.0
        self.stopped = True
        self._wake()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the loop to end and the folder to be released; False on timeout."""
        return self.ended.wait(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self.ended.is_set()

    def is_current(self) -> bool:
        """Whether the caller runs in the driver's thread (a Future's done-callback does)."""
        return threading.current_thread() is self._thread

    def _wake(self) -> None:
        if self.engine is not None:
            self.engine.wake()

    def _capacity(self) -> int:
        return self.engine.capacity if self.engine is not None else 0

    def _stop_requested(self) -> bool:
        return self.stopped or self.folder.disk_full

    # ------------------------------------------------------------------ the driver's thread

    def _main(self) -> None:
        assert self.engine is not None
        complete = False
        records = self.engine.run(self._source())
        try:
            for record in records:
                if not self._finished(record):
                    break  # not even the manifest's reserve is left: stop at once
            complete = not self.stopped and not self.folder.disk_full and self._closed and not self._inbox
        except BaseException as exc:  # a run-level failure: every request still waiting gets it
            self.failure = exc
        finally:
            records.close()  # the workers exit
            self._end(complete)

    def _end(self, complete: bool) -> None:
        with self._lock:
            self._over = True
        try:
            for record in self.folder.settle_shards():  # a shard's records the loop never read: they count too
                self._finished(record)
            self._resolve_the_rest()
            self.folder.finish(complete)
        except BaseException as exc:
            self.failure = self.failure or exc
        finally:
            if self._relay is not None:
                self._relay.stop()
            self.ended.set()
            if self.on_end is not None:
                self.on_end()

    def _source(self) -> Iterator[Any]:
        """The engine's plan: tasks as requests come in; NOTHING_YET while there are none; ends once closed."""
        while True:
            closed = self._closed  # read before the inbox: whatever was put before close() is seen
            try:
                requests = self._inbox.popleft()
            except IndexError:
                if closed:
                    return
                yield NOTHING_YET
                continue
            for request in requests:
                task = self._plan(request)
                if task is not None:
                    yield task

    def _plan(self, request: Request) -> Task | None:
        planned = request.plan(request.item)
        item = planned.item
        if isinstance(item, FetchResult):  # a ready record: invalid, duplicate, or done already
            if request.route.set_running_or_notify_cancel():
                if self.folder.write(item, planned.full_url, planned.append):
                    _settle(request.route, self._located(item))
                else:
                    _settle(request.route, failure=self._disk_full())
            return None
        fetch = self._fetches.get(item.key)
        if fetch is not None:  # the same URL is being fetched: its record serves this request too
            if not fetch.running or request.route.set_running_or_notify_cancel():
                fetch.routes.append((request.route, item))
            return None
        self._fetches[item.key] = _Fetch(planned.full_url, planned.append, request.route, [(request.route, item)])
        return item

    def _admit(self, tasks: list[Task]) -> list[Task]:
        """The tasks some request still wants, now handed out: their Futures are running, no longer cancellable."""
        admitted = []
        for task in tasks:
            fetch = self._fetches[task.key]
            fetch.routes = [(route, mine) for route, mine in fetch.routes if route.set_running_or_notify_cancel()]
            if fetch.routes:
                fetch.running = True
                admitted.append(task)
            else:
                del self._fetches[task.key]
        return admitted

    def _finished(self, record: FetchResult) -> bool:
        """Write a fetched record, then hand it to every request for its URL; False if it cannot be written."""
        fetch = self._fetches.pop(record.key, None)
        full_url, append = (fetch.full_url, fetch.append) if fetch is not None else (None, True)
        if not self.folder.write(record, full_url, append):
            if fetch is not None:
                self._fetches[record.key] = fetch  # its requests get the disk's failure
            return False
        self._located(record)
        for route, mine in fetch.routes if fetch is not None else ():
            _settle(route, record if route is fetch.creator else dataclasses.replace(
                record, line=mine.line, columns=mine.columns, skipped=True))
        return True

    def _disk_full(self) -> DiskFull:
        return DiskFull(f"the disk is full: {self.folder.manifest_path} holds every record written")

    def _located(self, record: FetchResult) -> FetchResult:
        if record.path:
            record.abspath = os.path.join(os.path.abspath(self.folder.root), record.path)
        return record

    def _resolve_the_rest(self) -> None:
        """Requests the loop ended without: queued ones are cancelled, cut-short ones get why (or the failure)."""
        if self.failure is None and self.folder.disk_full:
            self.failure = self._disk_full()
        failure = self.failure
        for fetch in self._fetches.values():
            for route, _task in fetch.routes:
                _settle(route, failure=failure or (CancelledError(CUT_SHORT) if fetch.running else None))
        self._fetches.clear()
        while self._inbox:
            for request in self._inbox.popleft():
                _settle(request.route, failure=failure)


def _settle(route: Route, record: FetchResult | None = None, failure: BaseException | None = None) -> None:
    """Hand the route its record, or else its failure; with neither, cancel it."""
    try:
        if record is not None:
            route.set_result(record)
        elif failure is not None:
            route.set_exception(failure)
        else:
            route.cancel()
    except InvalidStateError:
        pass  # cancelled meanwhile: nobody waits for it
    except BaseException:  # a done-callback that raised past the Future's own guard must not end the loop
        log.exception("a callback of %r raised", route)
