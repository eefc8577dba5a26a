"""Result records -> JSON Lines, what earlier runs finished, and the run summary."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

from .errors import OutputError
from .keys import KeyMap
from .records import DUPLICATE, FAILED, INVALID, OK, SKIPPED, FetchResult

log = logging.getLogger(__name__)
MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class Done:
    """What the newest manifest record says about a URL that finished."""

    path: str
    bytes: int | None
    sha256: str | None


class DoneIndex:
    """What earlier runs finished: for each URL key whose newest record is ok or skipped, the
    byte offset of that record in the manifest (24 bytes a URL; the record is re-read on demand)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offsets = KeyMap()
        self._handle: IO[bytes] | None = None
        if path.exists():
            self._load()

    def _load(self) -> None:
        for offset, number, record in _records(self.path):
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
        record = json.loads(self._handle.readline())
        return Done(record["path"], record.get("bytes"), record.get("sha256"))

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
    """Appends one JSON line per record and flushes it, so a crash never loses a finished record."""

    def __init__(self, path: Path, errors_path: Path | None = None) -> None:
        self.path = path
        self._handle: IO[str] | None = None
        self._errors: IO[str] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(path, "a", encoding="utf-8")
            if self._handle.tell() and not _ends_with_newline(path):
                self._handle.write("\n")  # finish a line a crash cut short
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
            if self._errors is not None and result.status == FAILED and full_url:
                self._errors.write(full_url + "\n")
                self._errors.flush()
        except OSError as exc:  # a full disk: the run cannot keep its promise of a record per URL
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        for handle in (self._handle, self._errors):
            if handle is not None:
                handle.close()
        self._handle = self._errors = None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


@dataclass
class Summary:
    """Counts for the one-line summary at the end of a run."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((OK, FAILED, INVALID, DUPLICATE, SKIPPED), 0))
    bytes: int = 0
    seconds: float = 0.0

    def add(self, result: FetchResult) -> None:
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        if result.status == OK and result.bytes:
            self.bytes += result.bytes

    @property
    def all_ok(self) -> bool:
        return not (self.counts[FAILED] or self.counts[INVALID])

    def line(self) -> str:
        c = self.counts
        rate = c[OK] / self.seconds if self.seconds > 0 else 0.0
        return (f"ok {c[OK]}, failed {c[FAILED]}, invalid {c[INVALID]}, duplicate {c[DUPLICATE]}, "
                f"skipped {c[SKIPPED]}; {self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s ({rate:.1f} images/s)")
