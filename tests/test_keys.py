"""keys.KeySet / KeyMap: exact, compact, and growing past their first table."""
from __future__ import annotations

import hashlib
import tracemalloc

import pytest

from imgfetch.store.keys import KeyMap, KeySet


def digests(n: int, salt: str = "") -> list[bytes]:
    return [hashlib.sha256(f"{salt}{i}".encode()).digest()[:16] for i in range(n)]


def test_keyset_is_exact_across_growth():
    keys = digests(5000)
    s = KeySet()
    assert all(s.add(k) for k in keys)
    assert not any(s.add(k) for k in keys[::7])  # repeats are reported as such
    assert len(s) == 5000 and all(k in s for k in keys)
    assert not any(k in s for k in digests(2000, "other"))
    assert s.add(bytes(16)) and bytes(16) in s and not s.add(bytes(16)) and len(s) == 5001


def test_keymap_stores_offsets_and_forgets():
    keys = digests(3000)
    m = KeyMap()
    for i, k in enumerate(keys):
        m[k] = i * 1000
    m[keys[5]] = 7  # the newest value wins
    assert m.get(keys[5]) == 7 and m.get(keys[2999]) == 2_999_000
    m.discard(keys[10])
    assert m.get(keys[10]) is None and m.get(digests(1, "x")[0]) is None
    m[keys[10]] = 3
    assert m.get(keys[10]) == 3


def held_and_peak(cls, n: int) -> tuple[float, float]:
    """Bytes a key the table holds after n inserts, and at its peak on the way."""
    keys = digests(n)
    tracemalloc.start()
    try:
        table = cls()
        for i, k in enumerate(keys):
            if isinstance(table, KeyMap):
                table[k] = i
            else:
                table.add(k)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(table) == n
    return held / n, peak / n


@pytest.mark.parametrize("cls, slot", [(KeySet, 16), (KeyMap, 24)])
def test_bytes_per_key_are_two_to_four_slots_and_six_while_doubling(cls, slot):
    # Half full (2 slots a key) until one more key doubles the table (4 slots a key); the
    # doubling holds the old table and the new one at once (6 slots a key).
    held, _ = held_and_peak(cls, 2048)
    assert held == pytest.approx(2 * slot, rel=0.03)
    held, peak = held_and_peak(cls, 2049)
    assert held == pytest.approx(4 * slot, rel=0.03) and peak == pytest.approx(6 * slot, rel=0.03)
