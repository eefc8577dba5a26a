"""Compact exact sets and maps of 128-bit URL keys, flat in memory on million-URL lists.

A Python set of strings costs about 100 bytes a URL; these open-addressing tables in one bytearray cost
16 (set) or 24 (map to an int) bytes a slot, kept between a quarter and half full (the README's "Very
long lists" has the bytes a key).
"""
from __future__ import annotations

DIGEST_BYTES = 16  # a url_key is 128 bits
VALUE_BYTES = 8  # a KeyMap value: a 64-bit int beside its digest
INITIAL_SLOTS = 1024  # a power of two: slot numbers are a hash masked by slots - 1
_PROBE_BYTES = 8  # the digest's first 64 bits pick its first slot
_EMPTY = bytes(DIGEST_BYTES)
_ZERO_STANDIN = b"\x00" * 15 + b"\x01"  # where the (astronomically unlikely) all-zero digest is kept


class KeySet:
    """An exact set of 16-byte digests (bytes.fromhex of a url_key)."""

    _width = DIGEST_BYTES

    def __init__(self) -> None:
        self._slots = INITIAL_SLOTS
        self._table = bytearray(self._slots * self._width)
        self._count = 0
        self._zero: KeySet | None = None  # digests equal to the empty marker live here instead

    def __len__(self) -> int:
        return self._count + (len(self._zero) if self._zero else 0)

    def _locate(self, digest: bytes) -> tuple[int, bool]:
        """(byte offset of its slot, present?) by linear probing."""
        mask, width, table = self._slots - 1, self._width, self._table
        slot = int.from_bytes(digest[:_PROBE_BYTES], "little") & mask
        while True:
            start = slot * width
            stored = table[start:start + DIGEST_BYTES]
            if stored == digest:
                return start, True
            if stored == _EMPTY:
                return start, False
            slot = (slot + 1) & mask

    def __contains__(self, digest: bytes) -> bool:
        if digest == _EMPTY:
            return self._zero is not None and _ZERO_STANDIN in self._zero
        return self._locate(digest)[1]

    def add(self, digest: bytes) -> bool:
        """Add a digest; False if it was there already."""
        if digest == _EMPTY:
            if self._zero is None:
                self._zero = type(self)()
            return self._zero.add(_ZERO_STANDIN)
        start, present = self._locate(digest)
        if present:
            return False
        self._table[start:start + DIGEST_BYTES] = digest
        self._count += 1
        if self._count * 2 > self._slots:
            self._grow()
        return True

    def _grow(self) -> None:
        old, width = self._table, self._width
        self._slots *= 2
        self._table = bytearray(self._slots * width)
        mask = self._slots - 1
        for start in range(0, len(old), width):
            digest = old[start:start + DIGEST_BYTES]
            if digest == _EMPTY:
                continue
            slot = int.from_bytes(digest[:_PROBE_BYTES], "little") & mask
            while self._table[slot * width:slot * width + DIGEST_BYTES] != _EMPTY:
                slot = (slot + 1) & mask
            self._table[slot * width:slot * width + width] = old[start:start + width]


class KeyMap(KeySet):
    """An exact map of 16-byte digests to ints in [0, 2**63 - 1) (file offsets, say)."""

    _width = DIGEST_BYTES + VALUE_BYTES
    _NONE = 2**63 - 1  # the value of a key that was deleted (slots are never freed)

    def __setitem__(self, digest: bytes, value: int) -> None:
        if not 0 <= value < self._NONE:
            raise ValueError("KeyMap values are ints in [0, 2**63 - 1)")
        self._set(digest, value)

    def _set(self, digest: bytes, value: int) -> None:
        if digest == _EMPTY:
            if self._zero is None:
                self._zero = KeyMap()
            self._zero._set(_ZERO_STANDIN, value)
            return
        self.add(digest)
        start, _ = self._locate(digest)
        self._table[start + DIGEST_BYTES:start + self._width] = value.to_bytes(VALUE_BYTES, "little")

    def get(self, digest: bytes) -> int | None:
        if digest == _EMPTY:
            return self._zero.get(_ZERO_STANDIN) if isinstance(self._zero, KeyMap) else None
        start, present = self._locate(digest)
        if not present:
            return None
        value = int.from_bytes(self._table[start + DIGEST_BYTES:start + self._width], "little")
        return None if value == self._NONE else value

    def discard(self, digest: bytes) -> None:
        if self.get(digest) is not None:
            self._set(digest, self._NONE)
