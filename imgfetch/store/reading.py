"""Reading a manifest back: each readable line, and the newest record per URL in input order."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from array import array
from pathlib import Path
from typing import IO, Any, Iterator

from ..errors import OutputError
from ..records import DUPLICATE, OK, SKIPPED
from .keys import DIGEST_BYTES, KeyMap

__all__ = ["MANIFEST_NAME", "key_digest", "line_at", "manifest_lines", "newest_offsets", "read_manifest",
           "record_at"]

log = logging.getLogger(__name__)
MANIFEST_NAME = "manifest.jsonl"
_NO_LINE = 1 << 62  # records without a line number (from fetch()) sort last


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


def newest_offsets(path: Path) -> tuple[list[int], int]:
    """(byte offsets of the newest record per URL, in input order; records read).

    Flat arrays, 32 bytes a record, so a manifest of millions of lines compacts in little memory.
    """
    newest = KeyMap()
    groups, lines, offsets = bytearray(), array("q"), array("q")
    count = 0
    for offset, _number, record in manifest_lines(path):
        count += 1
        group = _group(record)
        if group is None:
            continue
        newest[group] = offset
        line = record.get("line")
        groups += group
        lines.append(line if isinstance(line, int) and 0 <= line < _NO_LINE else _NO_LINE)
        offsets.append(offset)
    kept = [i for i in range(len(offsets))
            if newest.get(bytes(groups[DIGEST_BYTES * i:DIGEST_BYTES * (i + 1)])) == offsets[i]]
    kept.sort(key=lines.__getitem__)  # stable: equal lines stay in file order
    return [offsets[i] for i in kept], count


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The newest record per URL, in input order, as dicts (a folder means its manifest.jsonl).

    A URL that some run saved is ``ok``, whichever run did it; ``skipped`` is True when the record's own
    run found it done (or, failed, did not retry it) and repeated the earlier record's facts.

    >>> import pandas as pd                                      # doctest: +SKIP
    >>> df = pd.DataFrame(imgfetch.read_manifest("out"))         # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise OutputError(f"{path}: no such manifest")
    offsets, _count = newest_offsets(path)
    with open(path, "rb") as handle:
        return [record_at(handle, offset) for offset in offsets]
