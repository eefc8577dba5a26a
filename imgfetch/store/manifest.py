"""The manifest, written: one JSON line per record, flushed at once; what earlier runs finished or failed; compaction."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import json
import logging
import os
import stat
from pathlib import Path
from typing import IO, Any, Callable

from ..errors import DiskFull, OutputError
from ..records import DUPLICATE, FAILED, OK, SKIPPED, FetchResult
from .files import FileLock
from .keys import KeyMap
from .noreplace import libc
from .reading import key_digest, line_at, manifest_lines, newest_offsets, record_at
from .shardset import shard_number

log = logging.getLogger(__name__)
RESERVE_BYTES = 256 * 1024  # disk kept allocated past the manifest's end, at the least: room for ~500 records
RECORD_BYTES = 1024  # a record line, before longer ones are seen (a typical one is about 500 bytes)
_NO_RENEWAL = 1 << 62  # a reserve end no manifest reaches: where fallocate is missing there is nothing to renew
FALLOC_FL_KEEP_SIZE = 1  # from linux/falloc.h: allocate without changing the file's size


class DoneIndex:
    """What earlier runs did: for each URL key whose newest record is ok, failed or a copy of an earlier
    image (--dedup), the byte offset of that record in the manifest (24 bytes a URL; the record is
    re-read on demand)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offsets = KeyMap()
        self._handle: IO[bytes] | None = None
        self.lines = 0  # records in the manifest when the run started
        self.max_shard = -1  # the highest dataset shard number a record names: new shards are numbered after it
        self.shards: set[int] = set()  # every dataset shard number a record names
        if path.exists():
            self._load()

    def _load(self) -> None:
        for offset, number, record in manifest_lines(self.path):
            self.lines = number
            digest, status = key_digest(record), record.get("status")
            number = shard_number(record.get("shard"))
            if number >= 0:
                self.shards.add(number)
                self.max_shard = max(self.max_shard, number)
            saved = isinstance(record.get("path"), str) or isinstance(record.get("shard"), str)  # a file, or a sample
            if digest is None:
                log.warning("%s:%d: record without a valid key ignored", self.path, number)
            elif (status in (OK, SKIPPED) and saved or status == FAILED
                  or status == DUPLICATE and isinstance(record.get("dup_of"), str)):  # a copy (--dedup)
                self._offsets[digest] = offset

    def get(self, key: str) -> dict[str, Any] | None:
        """The key's newest ok, failed or copy record (an older manifest's "skipped" read as ok), or None."""
        offset = self._offsets.get(bytes.fromhex(key))
        if offset is None:
            return None
        if self._handle is None:
            self._handle = open(self.path, "rb")
        return record_at(self._handle, offset)

    def note(self, key: str, offset: int) -> None:
        """The key's newest ok or failed record is now the one at ``offset`` (written since the start)."""
        self._offsets[bytes.fromhex(key)] = offset

    def __len__(self) -> int:
        """URLs that some run finished or failed (an estimate of the URL count, for compaction)."""
        return len(self._offsets)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class ManifestWriter:
    """Appends one JSON line per record and flushes it, so a crash never loses a finished record.

    It keeps disk allocated past the manifest's end for the records of every download in flight (the README's
    "A full disk stops the run cleanly"); ``low_space`` turns true when that reserve can no longer be renewed.
    """

    def __init__(self, path: Path, in_flight: Callable[[], int] = lambda: 0) -> None:
        """``in_flight``: how many downloads may be going on; the reserve must hold all their records."""
        self.path = path
        self.written = 0  # lines appended
        self.records = 0  # records of this run, appended or not
        self.low_space = False
        self.offset = 0  # where the record last appended starts
        self._in_flight = in_flight
        self._longest = RECORD_BYTES  # the longest record line so far (at least a typical one)
        self._reserved_to = 0
        self._renew_at = 0  # renew the reserve once the manifest grows past this (half of it used)
        self._handle: IO[str] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(path, "a", encoding="utf-8")
            if self._handle.tell() and not _ends_with_newline(path):
                self._handle.write("\n")  # finish a line a crash cut short
            self._reserve()
            if self._renew_at != _NO_RENEWAL:
                self._renew_at = 0  # sized before any download was in flight: sized again at the first record
        except OSError as exc:
            self.close()
            name = exc.filename or path
            raise OutputError(f"cannot write {name}: {exc.strerror or exc}") from None

    def write(self, result: FetchResult, *, append: bool = True) -> None:
        """Append the record (unless ``append`` is False: the manifest says it already)."""
        assert self._handle is not None
        self.records += 1
        try:
            if append:
                line = json.dumps(result.to_json_dict(), ensure_ascii=False) + "\n"
                self.offset = self._handle.tell()
                self._handle.write(line)
                self._handle.flush()
                self.written += 1
                self._longest = max(self._longest, len(line.encode()))
            if self._handle.tell() > self._renew_at:  # sized at renewal, not per record: in_flight() is not free
                self._reserve()
        except OSError as exc:  # a full disk: the run cannot keep its promise of a record per URL
            raise write_error(self.path, exc) from None

    def _reserve_bytes(self) -> int:
        """Room for the records of every download in flight, twice over: the reserve is renewed
        at half, so when renewing fails, at least half of it (all those records) is left."""
        return max(RESERVE_BYTES, 2 * self._in_flight() * self._longest)

    def _reserve(self) -> None:
        assert self._handle is not None
        end, size = self._handle.tell(), self._reserve_bytes()
        if reserve_space(self._handle.fileno(), end, size):
            self._reserved_to, self._renew_at = end + size, end + size - size // 2
        elif self._reserved_to:  # supported before, refused now: the disk is (nearly) full
            self.low_space = True
        else:
            self._reserved_to = self._renew_at = _NO_RENEWAL

    def close(self) -> None:
        """Close the manifest; a failure to flush is the run's failure (DiskFull when the disk is full)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError as exc:
                raise write_error(self.path, exc) from None


def write_error(path: Path, exc: OSError) -> OutputError:
    """The run-level error for a failed write: DiskFull when the disk (or the quota) is full."""
    error = DiskFull if exc.errno in (errno.ENOSPC, errno.EDQUOT) else OutputError
    return error(f"cannot write {path}: {exc.strerror or exc}")


def lock_manifest(path: Path) -> FileLock:
    """Hold the manifest for this run (two runs into different folders may share one --manifest),
    and remove what a compaction killed midway left beside it."""
    lock = FileLock(path.with_name(f".{path.name}.lock"), f"{path}: another imgfetch run is using this manifest")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.compact"):
            leftover.unlink(missing_ok=True)
    except OSError as exc:
        lock.release()
        raise OutputError(f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None
    return lock


def reserve_space(fd: int, offset: int, length: int) -> bool:
    """Allocate disk blocks past the end of a file without changing its size; False if refused."""
    c = libc()
    if c is None:
        return False
    return c.fallocate(fd, FALLOC_FL_KEEP_SIZE, ctypes.c_longlong(offset), ctypes.c_longlong(length)) == 0


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def compact(path: Path) -> tuple[int, int]:
    """Rewrite the manifest as the newest record per URL, in input order: (records before, after).

    Crash-safe: the new manifest is written to a temporary file beside it, flushed to disk,
    and renamed over the old one, so a crash leaves one or the other, whole.
    """
    offsets, before = newest_offsets(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.compact")
    try:
        with open(path, "rb") as source, open(tmp, "wb") as target:
            os.chmod(tmp, stat.S_IMODE(os.fstat(source.fileno()).st_mode))
            for offset in offsets:
                line = line_at(source, offset)
                target.write(line if line.endswith(b"\n") else line + b"\n")
            target.flush()
            os.fsync(target.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return before, len(offsets)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening folders)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
