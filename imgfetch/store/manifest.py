"""The manifest, written: one JSON line per record, flushed at once; what earlier runs finished or failed; compaction."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import IO, Any

from ..errors import DiskFull, OutputError
from ..records import FAILED, OK, SKIPPED, FetchResult
from .keys import KeyMap
from .reading import MANIFEST_NAME, key_digest, line_at, manifest_lines, newest_offsets, read_manifest, record_at

__all__ = ["MANIFEST_NAME", "DoneIndex", "ManifestWriter", "compact", "read_manifest"]

log = logging.getLogger(__name__)
RESERVE_BYTES = 256 * 1024  # disk kept allocated past the manifest's end: room for ~500 records
RENEW_BYTES = RESERVE_BYTES // 2  # the reserve is renewed when less than this of it is left
_NO_RENEWAL = 1 << 62  # a reserve end no manifest reaches: where fallocate is missing there is nothing to renew
FALLOC_FL_KEEP_SIZE = 1  # from linux/falloc.h: allocate without changing the file's size
ERRORS_FILE_MODE = 0o600  # the errors file lists full URLs, credentials included: for the owner only


class DoneIndex:
    """What earlier runs did: for each URL key whose newest record is ok or failed, the byte offset
    of that record in the manifest (24 bytes a URL; the record is re-read on demand)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offsets = KeyMap()
        self._handle: IO[bytes] | None = None
        self.lines = 0  # records in the manifest when the run started
        if path.exists():
            self._load()

    def _load(self) -> None:
        for offset, number, record in manifest_lines(self.path):
            self.lines = number
            digest, status = key_digest(record), record.get("status")
            if digest is None:
                log.warning("%s:%d: record without a valid key ignored", self.path, number)
            elif status in (OK, SKIPPED) and isinstance(record.get("path"), str) or status == FAILED:
                self._offsets[digest] = offset

    def get(self, key: str) -> dict[str, Any] | None:
        """The key's newest ok or failed record (an older manifest's "skipped" read as ok), or None."""
        offset = self._offsets.get(bytes.fromhex(key))
        if offset is None:
            return None
        if self._handle is None:
            self._handle = open(self.path, "rb")
        return record_at(self._handle, offset)

    def __len__(self) -> int:
        """URLs that some run finished or failed (an estimate of the URL count, for compaction)."""
        return len(self._offsets)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class ManifestWriter:
    """Appends one JSON line per record and flushes it, so a crash never loses a finished record.

    It keeps RESERVE_BYTES of disk allocated past the end of the manifest (fallocate with
    KEEP_SIZE, where the filesystem has it), so when images fill the disk the records of the
    downloads still in flight can be written. ``low_space`` turns true when the reserve can no
    longer be renewed: the run should stop.
    """

    def __init__(self, path: Path, errors_path: Path | None = None) -> None:
        self.path = path
        self.written = 0  # lines appended
        self.records = 0  # records of this run, appended or not
        self.low_space = False
        self._reserved_to = 0
        self._handle: IO[str] | None = None
        self._errors: IO[str] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(path, "a", encoding="utf-8")
            if self._handle.tell() and not _ends_with_newline(path):
                self._handle.write("\n")  # finish a line a crash cut short
            self._reserve()
            if errors_path is not None:
                fd = os.open(errors_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, ERRORS_FILE_MODE)
                os.fchmod(fd, ERRORS_FILE_MODE)
                self._errors = os.fdopen(fd, "w", encoding="utf-8")
        except OSError as exc:
            self.close()
            name = exc.filename or path
            raise OutputError(f"cannot write {name}: {exc.strerror or exc}") from None

    def write(self, result: FetchResult, full_url: str | None = None, *, append: bool = True) -> None:
        """Append the record (unless ``append`` is False: the manifest says it already) and list a failure."""
        assert self._handle is not None
        self.records += 1
        try:
            if append:
                self._handle.write(json.dumps(result.to_json_dict(), ensure_ascii=False) + "\n")
                self._handle.flush()
                self.written += 1
            if self._handle.tell() > self._reserved_to - RENEW_BYTES:
                self._reserve()
            if self._errors is not None and result.status == FAILED and full_url:
                self._errors.write(full_url + "\n")
                self._errors.flush()
        except OSError as exc:  # a full disk: the run cannot keep its promise of a record per URL
            error = DiskFull if exc.errno in (errno.ENOSPC, errno.EDQUOT) else OutputError
            raise error(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def _reserve(self) -> None:
        assert self._handle is not None
        end = self._handle.tell()
        if reserve_space(self._handle.fileno(), end, RESERVE_BYTES):
            self._reserved_to = end + RESERVE_BYTES
        elif self._reserved_to:  # supported before, refused now: the disk is (nearly) full
            self.low_space = True
        else:
            self._reserved_to = _NO_RENEWAL

    def close(self) -> None:
        for handle in (self._handle, self._errors):
            if handle is not None:
                handle.close()
        self._handle = self._errors = None


def reserve_space(fd: int, offset: int, length: int) -> bool:
    """Allocate disk blocks past the end of a file without changing its size; False if refused."""
    libc = _libc()
    if libc is None:
        return False
    return libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, ctypes.c_longlong(offset), ctypes.c_longlong(length)) == 0


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


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
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
