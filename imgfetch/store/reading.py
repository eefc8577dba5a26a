"""Reading a manifest back: each readable line, and the newest record per URL in input order."""
from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
from array import array
from itertools import chain, compress
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from ..errors import OutputError
from ..records import DUPLICATE, OK, SKIPPED
from .keys import DIGEST_BYTES, KeyMap
from .parts import PARTS_DIR, part_files, parts_on
from .remote import Destination, is_remote, work_folder

log = logging.getLogger(__name__)
MANIFEST_NAME = "manifest.jsonl"
_NO_LINE = 1 << 62  # records without a line number (from fetch()) sort last
COLUMN_BLOCK = 1 << 16  # items in a block of a _Column (512 KiB)
SORT_CHUNK = 1 << 13  # records sorted at once as Python tuples (about 1 MB); the sorted runs are merged


def manifest_lines(path: Path) -> Iterator[tuple[int, int, dict]]:
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


def key_digest(record: dict[str, Any]) -> bytes | None:
    """The record's URL key as a 16-byte digest, or None if it has no valid key."""
    key = record.get("key")
    try:
        digest = bytes.fromhex(key) if isinstance(key, str) else b""
    except ValueError:
        return None
    return digest if len(digest) == DIGEST_BYTES else None


def line_at(handle: IO[bytes], offset: int) -> bytes:
    handle.seek(offset)
    return handle.readline()


def record_at(handle: IO[bytes], offset: int) -> dict[str, Any]:
    """The record at ``offset``, in today's form: an older manifest's status "skipped" is ok with skipped=True."""
    record = json.loads(line_at(handle, offset))
    if record.get("status") == SKIPPED:
        record.update(status=OK, skipped=True)
    record.setdefault("skipped", False)
    return record


def _group(record: dict[str, Any]) -> bytes | None:
    """What makes records 'the same URL': the key; a duplicate line is its own (key, line). A copy of an
    earlier image (--dedup, with dup_of) is its URL's outcome, so it goes by the key."""
    digest = key_digest(record)
    if digest is not None and record.get("status") == DUPLICATE and not record.get("dup_of"):
        return hashlib.blake2b(digest + str(record.get("line")).encode(), digest_size=DIGEST_BYTES).digest()
    return digest


def newest_offsets(path: Path) -> tuple[array[int], int]:
    """(byte offsets of the newest record per URL, in input order; records read).

    Flat arrays, so a manifest of millions of lines compacts in little memory: 17 bytes a record
    read, plus a KeyMap of the URLs while reading (48-144 bytes a URL); 24 a record kept to sort.
    """
    newest = KeyMap()  # URL group -> index of its newest record so far
    lines, offsets = _Column(), _Column()
    fresh = bytearray()  # fresh[i] is 1 while record i is the newest of its URL
    count = 0
    for offset, _number, record in manifest_lines(path):
        count += 1
        group = _group(record)
        if group is None:
            continue
        older = newest.get(group)
        if older is not None:
            fresh[older] = 0
        newest[group] = len(fresh)
        fresh.append(1)
        line = record.get("line")
        lines.append(line if isinstance(line, int) and 0 <= line < _NO_LINE else _NO_LINE)
        offsets.append(offset)
    del newest
    return _in_line_order(lines.where(fresh), offsets.where(fresh)), count


class _Column:
    """64-bit ints appended in fixed blocks. One array grown to millions of items is copied as it
    grows, and the holes its old copies leave in the heap cost a quarter more peak memory."""

    def __init__(self) -> None:
        self.blocks = [array("q")]

    def append(self, value: int) -> None:
        if len(self.blocks[-1]) >= COLUMN_BLOCK:
            self.blocks.append(array("q"))
        self.blocks[-1].append(value)

    def where(self, mask: bytearray) -> array[int]:
        """The items whose byte in mask is 1, as one array; the column is emptied."""
        kept = array("q", compress(chain.from_iterable(self.blocks), mask))
        self.blocks.clear()
        return kept


def _in_line_order(lines: array[int], offsets: array[int]) -> array[int]:
    """The offsets sorted by (line, offset): input order, and file order among equal lines.

    A list of (line, offset) tuples costs about 130 bytes a record, so only SORT_CHUNK of them
    exist at a time: each chunk is sorted and written back into the arrays, then the sorted
    runs are merged.
    """
    runs = []
    for start in range(0, len(offsets), SORT_CHUNK):
        end = start + SORT_CHUNK
        pairs = sorted(zip(lines[start:end], offsets[start:end]))
        lines[start:end] = array("q", [line for line, _ in pairs])
        offsets[start:end] = array("q", [offset for _, offset in pairs])
        runs.append(zip(memoryview(lines)[start:end], memoryview(offsets)[start:end]))
    return array("q", (offset for _line, offset in heapq.merge(*runs)))


def read_manifest(path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
                  ) -> list[dict[str, Any]]:
    """The newest record per URL, in input order, as dicts (a folder means its manifest.jsonl, and the
    manifest parts of a run on Dask, ``manifest.parts/*.jsonl``, read as one table with it). An OUT on
    object storage (``s3://BUCKET/PREFIX``, with ``storage_options``) means the parts a run on Dask put
    there, or else the manifest in its local work folder (a run on the local pool).

    A URL that some run saved is ``ok``, whichever run did it; ``skipped`` is True when the record's own
    run found it done (or, failed, did not retry it) and repeated the earlier record's facts.

    >>> import pandas as pd                                      # doctest: +SKIP
    >>> df = pd.DataFrame(imgfetch.read_manifest("out"))         # doctest: +SKIP
    """
    if is_remote(path):
        return _read_remote(str(path), storage_options or {})
    path = Path(path)
    parts = part_files(path) if path.is_dir() else []  # a sharded run's (--executor dask): one table with the rest
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not parts:
        if not path.exists():
            raise OutputError(f"{path}: no such manifest")
        return newest_records(path)
    newest: dict[Any, dict[str, Any]] = {}
    for file in [path, *parts] if path.exists() else parts:
        for record in newest_records(file):  # a part's record is newer than the main manifest's
            newest[record.get("key")] = record
    return _in_input_order(newest.values())


def _in_input_order(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: r["line"] if isinstance(r.get("line"), int) else _NO_LINE)


def newest_records(path: Path) -> list[dict[str, Any]]:
    """The newest record per URL of one manifest file, in input order."""
    offsets, _count = newest_offsets(path)
    with open(path, "rb") as handle:
        return [record_at(handle, offset) for offset in offsets]


def _read_remote(url: str, storage_options: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts = parts_on(Destination(url, storage_options))
    names = [name for name in parts.list() if name.endswith(".jsonl")]
    if not names:
        local = work_folder(url) / MANIFEST_NAME
        if local.exists():
            return newest_records(local)
        raise OutputError(f"{url}: no manifest ({PARTS_DIR}/ is empty, and no run on this machine wrote there)")
    newest: dict[Any, dict[str, Any]] = {}
    for name in names:
        for record in part_records(parts, name):
            newest.pop(record.get("key"), None)
            newest[record.get("key")] = record
    return _in_input_order(newest.values())


def part_records(destination: Destination, name: str) -> list[dict[str, Any]]:
    """The newest record per URL of the manifest part ``name`` on object storage, in the order they were
    written; [] when there is no such part."""
    try:
        with destination.open(name, "rb") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    newest: dict[Any, dict[str, Any]] = {}
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            log.warning("%s/%s:%d: unreadable manifest line ignored", destination.url, name, number)
            continue
        if isinstance(record, dict):
            newest.pop(record.get("key"), None)
            newest[record.get("key")] = record
    return list(newest.values())
