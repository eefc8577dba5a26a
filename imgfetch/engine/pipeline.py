"""The per-URL pipeline: one Task in, one plain FetchResult out, whatever happens.

``process_task`` is the one place a URL is fetched and kept; every way of running a URL calls it:
``fetch()`` in the caller's process (api.py), the local pool's download threads (worker.py), a shard's
download threads on Dask (shard_task.py) and the Downloader's per-URL Dask tasks (dask_pool.py). Its steps:

1. Fetch (net/fetcher.py): the run's budget of connections, retries with backoff, redirects, the
   watchdog's deadlines; a failure becomes the record's error and error_kind. A stop cuts it short:
   the record is cancelled (never recorded; the next run fetches the URL again).
2. Inspect and transform (shaping.py over images/): check the bytes are an image the options accept,
   filter, resize, re-encode; the reason a body is refused becomes the record's error.
3. Store: for a dataset, the image stays with its record for the process's shard writer
   (store/shards.py); for files, a name (store/files.py), a note in the run's journal first
   (store/journal.py), then an atomic write. ``cancel_save`` may still make the URL cancelled here.
4. Record: status, file, size, hash, image facts, attempts, elapsed time, the process's PID.

``fetch_task`` (step 1) and ``keep_fetched`` (steps 2-4) are the same steps in two halves, for a worker
whose download threads hand bodies to other threads for the image step (worker.py).
It never raises: a bug in one URL is that URL's ``internal`` failure, not the end of a worker or a run.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from PIL import Image
from urllib3.exceptions import InsecureRequestWarning

from ..images import NotAnImage
from ..net.fetcher import CANCELLED_ERROR, Fetcher
from ..net.limits import raise_open_files_limit
from ..options import Options
from ..records import CANCELLED, FAILED, OK, ErrorKind, FetchResult, Task, failed_record
from ..store.files import target_name, write_atomic
from ..store.journal import save_notes
from ..store.shards import hold_sample
from ..urls import mask_url
from .shaping import shape

log = logging.getLogger(__name__)
pid_log = logging.getLogger("imgfetch.pids")
PID_LINE = "[Process ID]:%d Downloading %s"
ELAPSED_DIGITS = 4    # decimals of a record's elapsed_s (a tenth of a millisecond)


def own_process(opts: Options) -> None:
    """Settings for a process that runs the pipeline and is ours alone (a pool worker, a Dask worker's
    run state): global state may be set. fetch() runs in the caller's process and does not call it."""
    # Our own --max-pixels check decides; Pillow's global limit (which some decoders check on their own, e.g.
    # WebP and TIFF) must not pre-empt a larger --max-pixels. It stays as a backstop.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, opts.max_pixels)
    raise_open_files_limit()  # room for idle connections to many hosts; before the Fetcher sizes its budget
    if opts.insecure:  # the parent warns once for the run, not once per URL
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)


@dataclass
class Fetched:
    """A URL between step 1 and steps 2-4: its record so far and, if the download succeeded, the body.
    A worker's download thread hands it to the image step's threads and starts its next download."""

    task: Task
    result: FetchResult
    started: float
    body: bytes | None = None
    content_type: str | None = None


def process_task(task: Task, opts: Options, fetcher: Fetcher, root: Path, tmp: Path, *,
                 cancel_save: Callable[[], bool] | None = None, notes: bool = True) -> FetchResult:
    """Fetch, inspect, transform and store one URL (steps 1-4 above); every problem becomes a failed record.

    ``cancel_save`` is asked just before the image is saved: True makes the URL cancelled. ``notes``: note
    each save in the run's temporary folder first (store/journal.py); a run's workers do, fetch() need not."""
    return keep_fetched(fetch_task(task, opts, fetcher), opts, root, tmp, cancel_save=cancel_save, notes=notes)


def fetch_task(task: Task, opts: Options, fetcher: Fetcher) -> Fetched:
    """Step 1 alone: the download, or its failure in the record (a cancelled one if a stop cut it short)."""
    fetched = Fetched(task, failed_record(task, pid=os.getpid()), time.monotonic())  # failed until a step says otherwise
    result = fetched.result
    if opts.log_pids:
        pid_log.info(PID_LINE, result.pid, result.url)
    try:
        download = fetcher.fetch(task.url)
        result.attempts, result.http_status = download.attempts, download.http_status
        result.final_url = mask_url(download.final_url) if download.final_url else None
        if download.body is None:
            result.error, result.error_kind = download.error, download.error_kind
            if download.error == CANCELLED_ERROR:
                result.status, result.error_kind = CANCELLED, None
        fetched.body, fetched.content_type = download.body, download.content_type
    except Exception as exc:  # a bug must not take the worker or the run down with it
        _internal_error(result, exc)
    return fetched


def keep_fetched(fetched: Fetched, opts: Options, root: Path, tmp: Path, *,
                 cancel_save: Callable[[], bool] | None = None, notes: bool = True) -> FetchResult:
    """Steps 2-4 for a fetched URL (just the record's times for one whose download failed)."""
    result = fetched.result
    if fetched.body is not None:
        try:
            _keep(result, fetched.task, fetched.body, fetched.content_type, opts, root, tmp, cancel_save, notes)
        except Exception as exc:  # a bug must not take the worker or the run down with it
            _internal_error(result, exc)
    fetched.body = None  # the image is saved (or refused): its bytes need not live as long as the record
    result.elapsed_s = round(time.monotonic() - fetched.started, ELAPSED_DIGITS)
    result.fetched_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return result


def _internal_error(result: FetchResult, exc: Exception) -> None:
    log.warning("internal error on %s: %s: %s", result.url, type(exc).__name__, exc, exc_info=True)
    result.status, result.error = FAILED, f"internal error: {type(exc).__name__}: {exc}"
    result.error_kind = ErrorKind.INTERNAL


def _keep(result: FetchResult, task: Task, body: bytes, content_type: str | None, opts: Options, root: Path,
          tmp: Path, cancel_save: Callable[[], bool] | None, notes: bool) -> None:
    """Steps 2 and 3, filling in ``result``; a step that fails leaves it failed (or cancelled) and returns."""
    try:  # check, filter, resize, re-encode (engine/shaping.py): body and facts are what is saved
        body, facts = shape(result, body, opts, content_type)
    except NotAnImage as exc:
        result.error, result.error_kind = str(exc), exc.kind
        return
    digest = hashlib.sha256(body).hexdigest()
    if opts.output_format != "files":  # a dataset: the worker's shard writer takes the image with its record
        return hold_sample(result, body, facts, digest)
    relpath = target_name(opts.naming, url=task.url, key=task.key, line=task.line, sha256=digest,
                          extension=facts.extension, columns=task.columns, subdirs=opts.subdirs)
    if cancel_save is not None and cancel_save():
        result.status, result.error = CANCELLED, CANCELLED_ERROR
        return
    try:
        if notes:  # see store/journal.py: a kill between this save and its record
            save_notes(tmp).note(task.key, digest, len(body), relpath)
        write_atomic(root, tmp, relpath, body, replace=opts.overwrite or relpath == task.owned_path)
    except OSError as exc:
        result.error = f"cannot save {relpath}: {exc.strerror or exc}"
        result.error_kind = ErrorKind.DISK_FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ErrorKind.DISK
        return
    result.status, result.path, result.bytes, result.sha256 = OK, relpath, len(body), digest
    result.format, result.width, result.height = facts.format, facts.width, facts.height
