"""--dedup: the first image of each content is kept; later ones become duplicate records, their files removed.

The decision is the parent's, made as records arrive, before each is written (the README's "Dedup" says
what a user sees, and why a crash between removing a copy's file and writing its record costs nothing).
Memory: about 170 bytes an image kept, at the peak while tables double (measured at 300,000).
"""
from __future__ import annotations

import hashlib
import logging
from array import array
from pathlib import Path

from ..records import DUPLICATE, OK, SKIPPED, FetchResult
from .keys import DIGEST_BYTES, KeyMap
from .nearhash import NearIndex
from .reading import manifest_lines

log = logging.getLogger(__name__)
PATH_DIGEST_BYTES = 8  # enough to tell whether a duplicate's file is the first's own (naming=hash)
_NO_LINE = -1


def _path_digest(path: str) -> bytes:
    return hashlib.blake2b(path.encode(), digest_size=PATH_DIGEST_BYTES).digest()


class Dedup:
    """The images kept so far, by content; ``judge`` turns a record of a later copy into a duplicate."""

    def __init__(self, mode: str, root: Path) -> None:
        """``mode``: exact, or phash:D."""
        self.root = root
        self.near = NearIndex(int(mode.partition(":")[2])) if mode.startswith("phash:") else None
        self._by_sha = KeyMap()  # the first 16 bytes of a sha256 -> the id of the first image with it
        self._keys = bytearray()  # per id: the URL key's 16 bytes
        self._paths = bytearray()  # per id: its path's digest
        self._lines = array("q")  # per id: its line, or _NO_LINE
        self._phash_ids = array("q")  # per NearIndex id: our id

    def __len__(self) -> int:
        return len(self._lines)

    def load(self, manifest: Path) -> int:
        """Learn every image the manifest records as kept, oldest first; how many."""
        if not manifest.exists():
            return 0
        for _offset, _number, record in manifest_lines(manifest):
            if record.get("status") in (OK, SKIPPED) and isinstance(record.get("path"), str):
                self._learn(record.get("key"), record.get("sha256"), record.get("phash"), record["path"],
                            record.get("line"))
        return len(self)

    def judge(self, result: FetchResult) -> None:
        """Record a new image as kept, or, when an earlier one has its content, make this record its duplicate."""
        if result.status != OK or result.skipped or not result.sha256 or not result.path:
            return
        first = self._first(result.sha256, result.phash, result.key)
        if first is None:
            self._learn(result.key, result.sha256, result.phash, result.path, result.line)
            return
        index, apart = first
        if self._paths[index * PATH_DIGEST_BYTES:(index + 1) * PATH_DIGEST_BYTES] != _path_digest(result.path):
            try:
                (self.root / result.path).unlink(missing_ok=True)
            except OSError as exc:  # keep it, recorded: better a duplicate file than a file without a record
                log.warning("cannot remove %s, a duplicate of an earlier image (it stays): %s", result.path,
                            exc.strerror or exc)
                self._learn(result.key, result.sha256, result.phash, result.path, result.line)
                return
        line = self._lines[index]
        where = f"line {line}" if line != _NO_LINE else "an earlier URL"
        result.error = f"same image as {where}" if apart == 0 else f"near-duplicate of {where} (phash distance {apart})"
        result.status, result.path = DUPLICATE, None
        result.dup_of = self._keys[index * DIGEST_BYTES:(index + 1) * DIGEST_BYTES].hex()

    def _first(self, sha256: str, phash: str | None, key: str) -> tuple[int, int] | None:
        """(id, phash distance) of the kept image this one copies, or None (also when it is this URL's own)."""
        index = self._by_sha.get(bytes.fromhex(sha256)[:DIGEST_BYTES])
        found = (index, 0) if index is not None else None
        if found is None and self.near is not None and phash:
            near = self.near.nearest(int(phash, 16))
            found = (self._phash_ids[near[0]], near[1]) if near is not None else None
        if found is None or self._keys[found[0] * DIGEST_BYTES:(found[0] + 1) * DIGEST_BYTES] == bytes.fromhex(key):
            return None
        return found

    def _learn(self, key: object, sha256: object, phash: object, path: str, line: object) -> None:
        """Keep an image's facts (a sha256 seen before adds nothing: the first stays the first)."""
        if not isinstance(key, str) or not isinstance(sha256, str) or len(key) != 2 * DIGEST_BYTES:
            return
        try:
            digest, key_bytes = bytes.fromhex(sha256)[:DIGEST_BYTES], bytes.fromhex(key)
        except ValueError:
            return
        if len(digest) != DIGEST_BYTES or self._by_sha.get(digest) is not None:
            return
        index = len(self._lines)
        self._by_sha[digest] = index
        self._keys += key_bytes
        self._paths += _path_digest(path)
        self._lines.append(line if isinstance(line, int) and line >= 0 else _NO_LINE)
        if self.near is not None and isinstance(phash, str):
            try:
                value = int(phash, 16)
            except ValueError:
                return
            self.near.add(value)
            self._phash_ids.append(index)

    def close(self) -> None:
        if self.near is not None:
            self.near.close()
