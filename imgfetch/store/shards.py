"""Dataset shards in the worker process that fills them (--output-format webdataset or parquet).

Each worker process owns the one shard it is filling, so image bytes never leave it. A download thread
hands its image over with ``hold_sample`` (kept per thread) and then puts its record in the worker's
outbox; ``ShardOutbox.put`` writes the sample and the record's row into the open shard and passes the
record on, all under one lock. So records leave the worker in the order their samples were written,
and when a shard has ``shard_size`` images it is closed (tar end, parquet footer, stats written last)
before its last record leaves: once the parent has written every record of a shard to the manifest,
its files are complete, and the parent puts them in place (shardset.py). Everything is written under
temporary names in the run's temporary folder, so a killed run leaves nothing a reader could choke on.

Shard numbers are claimed from the run's temporary folder (an ``O_EXCL`` file per number, from the
first number the parent wrote there), so they are unique across the worker processes of a run,
replacements and quarantine processes included, without a message to the parent.
"""
from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from ..records import CANCELLED, FAILED, OK, ErrorKind, FetchResult
from .shardfiles import IMAGE_COLUMN, WARM_IMPORTS, RowsFile, ShardStats, TarFile, json_bytes, row_of, row_schema, warm_up

log = logging.getLogger(__name__)
BASE_FILE = "shard-base"  # in the run's temporary folder: the first shard number this run may use
DATA_SUFFIX = {"webdataset": ".tar", "parquet": ".parquet"}
_held = threading.local()


def shard_name(number: int, suffix: str) -> str:
    return f"{number:05d}{suffix}"


def hold_sample(result: FetchResult, body: bytes, facts: Any, digest: str) -> None:
    """A validated image for a dataset: fill in its record, and keep the bytes (for this thread) until the
    record is put in the worker's outbox, where the shard writer takes them."""
    result.status, result.bytes, result.sha256 = OK, len(body), digest
    result.format, result.width, result.height = facts.format, facts.width, facts.height
    _held.sample = (body, facts.extension)


def take_held() -> tuple[bytes, str] | None:
    sample = getattr(_held, "sample", None)
    _held.sample = None
    return sample


def worker_imports(output_format: str) -> tuple[str, ...]:
    """Modules a dataset's worker processes import as they start (for a fork server to import once)."""
    return () if output_format == "files" else WARM_IMPORTS


def shard_outbox(outbox: Any, opts: Any, tmp: Path, quarantine: bool = False) -> Any:
    """The worker's outbox: the queue itself for files, or a ShardOutbox around it for a dataset.
    ``opts``: the run's Options (output_format, shard_size, caption_column). A quarantine process's
    samples go to the shard they all share (sharedshard.py; a parquet shard cannot be shared: one of its own)."""
    if opts.output_format == "files":
        return outbox
    if quarantine and opts.output_format == "webdataset":  # no parquet to write here: no pyarrow to warm up
        from .sharedshard import SharedShardWriter  # here: it builds on this module

        return ShardOutbox(outbox, SharedShardWriter(opts.shard_size, opts.caption_column, tmp))
    warm_up()  # as the worker starts, not as it ends and closes its shard
    return ShardOutbox(outbox, ShardWriter(opts.output_format, opts.shard_size, opts.caption_column, tmp))


class ShardOutbox:
    """A worker's outbox that files each record in the open shard as it is put; ``put(None)`` (the worker
    ending) closes the shard first. See the module docstring."""

    def __init__(self, outbox: "queue.SimpleQueue[FetchResult | str | None]", writer: Any) -> None:
        self.outbox, self.writer = outbox, writer
        self.lock = threading.Lock()
        self.closed = False

    def put(self, record: FetchResult | str | None) -> None:
        if isinstance(record, str):  # a URL's key: its body waits for the image step (engine/worker.py)
            return self.outbox.put(record)
        held = take_held()
        with self.lock:
            if record is None:
                self._close()
            elif self.closed:
                _mark_cancelled(record)  # the shard is closed: this URL is not recorded, the next run fetches it
            elif record.status != CANCELLED:
                self.writer.add(record, held)
            self.outbox.put(record)

    def close_shard(self) -> None:
        """Close the open shard now, with what it holds (the run is stopping): every record it holds has
        been put in the outbox already, and a download still going is cut short."""
        with self.lock:
            self._close()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()

    def get(self) -> FetchResult | str | None:
        return self.outbox.get()

    def get_nowait(self) -> FetchResult | str | None:
        return self.outbox.get_nowait()


class _Shard:
    """The shard a worker is filling."""

    def __init__(self, number: int, output_format: str, tmp: Path, columns: list[str], caption: bool) -> None:
        self.number, self.ok, self.broken = number, 0, False
        self.name = shard_name(number, DATA_SUFFIX[output_format])
        self.tmp = tmp
        webdataset = output_format == "webdataset"
        self.tar = TarFile(self.temporary(".tar")) if webdataset else None
        self.rows = RowsFile(self.temporary(".parquet"), row_schema(columns, caption, image=not webdataset))
        self.stats = ShardStats(self.name, output_format, time.monotonic(), time.time())

    def temporary(self, suffix: str) -> str:
        return str(self.tmp / (shard_name(self.number, suffix) + ".tmp"))

    def close(self) -> None:
        """Close the tar and the parquet, then write the stats: the sign, for the parent, that all is there."""
        try:
            if self.tar is not None:
                self.tar.close()
            self.rows.close()
            if not self.broken:
                self.stats.write(self.temporary("_stats.json"), time.monotonic(), time.time())
        except Exception as exc:  # noqa: BLE001 - without its stats file the parent never puts it in place
            log.warning("cannot finish shard %s (%s): its URLs are fetched again next run", self.name, exc)


class ShardWriter:
    """Fills one shard at a time with this worker process's records (called under ShardOutbox's lock)."""

    def __init__(self, output_format: str, shard_size: int, caption_column: str | None, tmp: Path,
                 number: int | None = None) -> None:
        """``number``: the one shard to fill (a sharded run's slice), instead of numbers claimed in ``tmp``."""
        self.output_format, self.shard_size, self.caption = output_format, shard_size, caption_column
        self.tmp, self.number = Path(tmp), number
        self.digits = len(str(shard_size - 1))  # sample keys: shard number, then the index in the shard
        self.last = -1
        self.shard: _Shard | None = None

    def add(self, record: FetchResult, held: tuple[bytes, str] | None) -> None:
        """File the record (and its image) in the open shard; a failure to write makes it a failed record."""
        try:
            shard = self.shard or self.begin(list(record.columns))
            record.shard = shard.name
            image = row = None
            if record.status == OK and held is not None:
                try:
                    image, row = self._sample(shard, record, held)
                except OSError as exc:  # the sample was cut back out of the tar: this URL fails, the shard goes on
                    as_failed(record, shard.name, exc)
            row = row or row_of(record, self.caption)  # a sample's json is its row
            if image is not None and shard.tar is None:
                row[IMAGE_COLUMN] = image
            shard.rows.add(row)
            shard.stats.add(record)
        except Exception as exc:  # noqa: BLE001 - the parquet cannot be written (or a bug): never a dead thread
            if self.shard is not None:
                self.shard.broken = True  # never put in place: the URLs recorded in it are fetched again next run
                self.close()
            as_failed(record, record.shard or "a new shard", exc)
            return
        if shard.ok >= self.shard_size:
            self.close()

    def _sample(self, shard: _Shard, record: FetchResult, held: tuple[bytes, str]) -> tuple[bytes, dict[str, Any]]:
        """(the image, the record's row) once the sample is in the shard."""
        body, extension = held
        record.sample = f"{shard.number:05d}{shard.ok:0{self.digits}d}"
        row = row_of(record, self.caption)
        if shard.tar is not None:
            mtime = int(time.time())
            shard.tar.begin()
            try:
                shard.tar.add(record.sample + extension, body, mtime)
                shard.tar.add(record.sample + ".json", json_bytes(row), mtime)
                if self.caption is not None:
                    shard.tar.add(record.sample + ".txt", record.columns.get(self.caption, "").encode("utf-8"), mtime)
                shard.tar.flush()
            except OSError:
                shard.tar.rollback()
                raise
        shard.ok += 1
        return body, row

    def begin(self, columns: list[str]) -> _Shard:
        """Open the next shard now (a sharded run's shard exists even when none of its URLs is an image)."""
        if self.shard is None:
            self.shard = _Shard(self._claim(), self.output_format, self.tmp, columns, self.caption is not None)
        return self.shard

    def _claim(self) -> int:
        """The next free shard number of the run (a Dask shard task's number is given)."""
        if self.number is not None:
            return self.number
        self.last = claim_number(self.tmp, self.last + 1)
        return self.last

    def close(self) -> None:
        shard, self.shard = self.shard, None
        if shard is not None:
            shard.close()


def claim_number(tmp: Path, least: int) -> int:
    """The next free shard number of the run, from ``least`` on: O_EXCL makes each number one process's."""
    try:
        number = max(least, int((tmp / BASE_FILE).read_text()))
    except (OSError, ValueError):
        number = max(least, 0)
    while True:
        try:
            os.close(os.open(tmp / shard_name(number, ".claim"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            number += 1
            continue
        return number


def close_shard(outbox: Any) -> None:
    """The run is stopping: close the worker's open shard now (nothing to do for files)."""
    if isinstance(outbox, ShardOutbox):
        outbox.close_shard()


def _mark_cancelled(record: FetchResult) -> None:
    """A download that ended after its worker's shard was closed: cancelled, so never recorded."""
    record.status, record.error, record.error_kind = CANCELLED, "cancelled", None
    record.sample = record.shard = record.bytes = record.sha256 = record.format = record.width = record.height = None


def as_failed(record: FetchResult, where: str, exc: Exception) -> None:
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    record.status, record.sample, record.bytes, record.sha256 = FAILED, None, None, None
    record.format = record.width = record.height = None
    record.error = f"cannot save to {where}: {getattr(exc, 'strerror', None) or exc}"
    record.error_kind = ErrorKind.DISK_FULL if full else ErrorKind.DISK if isinstance(exc, OSError) else ErrorKind.INTERNAL
    if not isinstance(exc, OSError):
        log.warning("internal error writing %s: %s: %s", where, type(exc).__name__, exc, exc_info=True)
