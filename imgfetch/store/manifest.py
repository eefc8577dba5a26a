"""Result records -> JSON Lines, what earlier runs finished, compaction, and reading it back."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import json
import logging
import os
import stat
import sys
from array import array
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, Iterator

from ..errors import DiskFull, OutputError
from .keys import KeyMap
from ..records import DUPLICATE, FAILED, OK, SKIPPED, FetchResult
from ..report.summary import Summary

__all__ = ["MANIFEST_NAME", "Done", "DoneIndex", "ManifestWriter", "Summary", "compact", "read_manifest"]

log = logging.getLogger(__name__)
MANIFEST_NAME = "manifest.jsonl"
_NO_LINE = 1 << 62  # records without a line number (from fetch()) sort last
RESERVE_BYTES = 256 * 1024  # disk kept allocated past the manifest's end: room for ~500 records
FALLOC_FL_KEEP_SIZE = 1


@dataclass(frozen=True)
class Done:
    """What the newest manifest record says about a URL that finished: the facts a skipped record repeats."""

    path: str
    bytes: int | None
    sha256: str | None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    http_status: int | None = None
    final_url: str | None = None
    fetched_at: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Done":
        return cls(**{f.name: record.get(f.name) for f in fields(cls)})


class DoneIndex:
    """What earlier runs finished: for each URL key whose newest record is ok or skipped, the
    byte offset of that record in the manifest (24 bytes a URL; the record is re-read on demand)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offsets = KeyMap()
        self._handle: IO[bytes] | None = None
        self.lines = 0  # records in the manifest when the run started
        if path.exists():
            self._load()

    def _load(self) -> None:
        for offset, number, record in _records(self.path):
            self.lines = number
            key, status = record.get("key"), record.get("status")
            try:
                digest = bytes.fromhex(key) if isinstance(key, str) else b""
            except ValueError:
                digest = b""
            if len(digest) != 16:
                log.warning("%s:%d: record without a valid key ignored", self.path, number)
            elif status in (OK, SKIPPED) and isinstance(record.get("path"), str):
                self._offsets[digest] = offset
            elif status == FAILED:
                self._offsets.discard(digest)

    def get(self, key: str) -> Done | None:
        offset = self._offsets.get(bytes.fromhex(key))
        if offset is None:
            return None
        if self._handle is None:
            self._handle = open(self.path, "rb")
        self._handle.seek(offset)
        return Done.from_record(json.loads(self._handle.readline()))

    def __len__(self) -> int:
        """URLs that some run finished (an estimate of the URL count, for compaction)."""
        return len(self._offsets)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _records(path: Path) -> Iterator[tuple[int, int, dict]]:
    """(byte offset, line number, record) for each readable manifest line."""
    try:
        with open(path, "rb") as handle:
            offset = 0
            for number, line in enumerate(handle, 1):
                start, offset = offset, offset + len(line)
                try:
                    record = json.loads(line)
                except ValueError:
                    # A crash mid-line (power loss) leaves one broken last line; everything else stands.
                    log.warning("%s:%d: unreadable manifest line ignored", path, number)
                    continue
                if isinstance(record, dict):
                    yield start, number, record
    except OSError as exc:
        raise OutputError(f"cannot read manifest {path}: {exc.strerror or exc}") from None


class ManifestWriter:
    """Appends one JSON line per record and flushes it, so a crash never loses a finished record.

    It keeps RESERVE_BYTES of disk allocated past the end of the manifest (fallocate with
    KEEP_SIZE, where the filesystem has it), so when images fill the disk the records of the
    downloads still in flight can be written. ``low_space`` turns true when the reserve can no
    longer be renewed: the run should stop.
    """

    def __init__(self, path: Path, errors_path: Path | None = None) -> None:
        self.path = path
        self.written = 0
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
                fd = os.open(errors_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.fchmod(fd, 0o600)
                self._errors = os.fdopen(fd, "w", encoding="utf-8")
        except OSError as exc:
            self.close()
            name = exc.filename or path
            raise OutputError(f"cannot write {name}: {exc.strerror or exc}") from None

    def write(self, result: FetchResult, full_url: str | None = None) -> None:
        assert self._handle is not None
        try:
            self._handle.write(json.dumps(result.to_json_dict(), ensure_ascii=False) + "\n")
            self._handle.flush()
            self.written += 1
            if self._handle.tell() > self._reserved_to - RESERVE_BYTES // 2:
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
            self._reserved_to = 1 << 62  # no fallocate here: nothing to renew

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


def _group(record: dict[str, Any]) -> bytes | None:
    """What makes records 'the same URL': the key; a duplicate line is its own (key, line)."""
    key = record.get("key")
    try:
        digest = bytes.fromhex(key) if isinstance(key, str) else b""
    except ValueError:
        return None
    if len(digest) != 16:
        return None
    if record.get("status") == DUPLICATE:
        return hashlib.blake2b(digest + str(record.get("line")).encode(), digest_size=16).digest()
    return digest


def _newest_offsets(path: Path) -> tuple[list[int], int]:
    """(byte offsets of the newest record per URL, in input order; records read).

    Flat arrays, 32 bytes a record, so a manifest of millions of lines compacts in little memory.
    """
    newest = KeyMap()
    groups, lines, offsets = bytearray(), array("q"), array("q")
    count = 0
    for offset, _number, record in _records(path):
        count += 1
        group = _group(record)
        if group is None:
            continue
        newest[group] = offset
        line = record.get("line")
        groups += group
        lines.append(line if isinstance(line, int) and 0 <= line < _NO_LINE else _NO_LINE)
        offsets.append(offset)
    kept = [i for i in range(len(offsets)) if newest.get(bytes(groups[16 * i:16 * i + 16])) == offsets[i]]
    kept.sort(key=lines.__getitem__)  # stable: equal lines stay in file order
    return [offsets[i] for i in kept], count


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The newest record per URL, in input order, as dicts (a folder means its manifest.jsonl).

    >>> import pandas as pd                                      # doctest: +SKIP
    >>> df = pd.DataFrame(imgfetch.read_manifest("out"))         # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise OutputError(f"{path}: no such manifest")
    offsets, _count = _newest_offsets(path)
    with open(path, "rb") as handle:
        return [json.loads(_line_at(handle, offset)) for offset in offsets]


def compact(path: Path) -> tuple[int, int]:
    """Rewrite the manifest as the newest record per URL, in input order: (records before, after).

    Crash-safe: the new manifest is written to a temporary file beside it, flushed to disk,
    and renamed over the old one, so a crash leaves one or the other, whole.
    """
    offsets, before = _newest_offsets(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.compact")
    try:
        with open(path, "rb") as source, open(tmp, "wb") as target:
            os.chmod(tmp, stat.S_IMODE(os.fstat(source.fileno()).st_mode))
            for offset in offsets:
                line = _line_at(source, offset)
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


def _line_at(handle: IO[bytes], offset: int) -> bytes:
    handle.seek(offset)
    return handle.readline()


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
