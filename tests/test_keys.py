"""keys.KeySet / KeyMap: exact, compact, and growing past their first table."""
from __future__ import annotations

import hashlib

from imgfetch.keys import KeyMap, KeySet


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


def test_a_million_keys_cost_tens_of_megabytes_not_hundreds():
    s = KeySet()
    for k in digests(200_000):
        s.add(k)
    assert len(s._table) <= 200_000 * 16 * 4  # at most 4 slots' worth of bytes a key
