"""Near neighbours among 64-bit perceptual hashes, fast and flat in memory at millions of images.

Multi-index hashing: each hash is split into BANDS bands of 21-22 bits. Two hashes at most D bits
apart differ in at most D // BANDS bits in some band (were every band further apart, the bands'
distances would add up to more than D), so a lookup probes, in each band, the buckets of every
value within D // BANDS bits of its own, and measures the few hashes found there exactly.

Buckets are linked lists in flat int arrays: a head per possible band value (anonymous memory,
so only the pages that hold a bucket ever cost RAM; 32 MiB at most) and a link per hash and
band: 8 + 12 bytes a hash.
"""
from __future__ import annotations

import itertools
import mmap
from array import array

HASH_BITS = 64
BANDS = 3
WIDTHS = (21, 21, 22)  # bits of each band, low bits first: 2**21 buckets suit a million hashes
_INT_BYTES = 4


def _masks(width: int, radius: int) -> list[int]:
    """Every XOR mask of ``width`` bits with at most ``radius`` bits set: the probes around a value."""
    return [sum(1 << bit for bit in chosen)
            for bits in range(radius + 1) for chosen in itertools.combinations(range(width), bits)]


class NearIndex:
    """Hashes added in order (ids 0, 1, ...); ``nearest`` finds the closest within ``distance`` bits."""

    def __init__(self, distance: int) -> None:
        assert 0 <= distance <= HASH_BITS
        self.distance = distance
        self.hashes = array("Q")
        self._shifts = tuple(itertools.accumulate((0, *WIDTHS[:-1])))
        self._band_masks = tuple((1 << width) - 1 for width in WIDTHS)
        self._probes = tuple(_masks(width, distance // BANDS) for width in WIDTHS)
        self._maps = [mmap.mmap(-1, _INT_BYTES << width) for width in WIDTHS]
        self._heads = [memoryview(m).cast("i") for m in self._maps]  # id + 1 of a bucket's newest hash; 0: empty
        self._links = [array("i") for _ in WIDTHS]  # per hash: id + 1 of the next in its bucket; 0: the end

    def __len__(self) -> int:
        return len(self.hashes)

    def add(self, value: int) -> int:
        """Add a hash; its id."""
        index = len(self.hashes)
        self.hashes.append(value)
        for band, shift in enumerate(self._shifts):
            bucket = (value >> shift) & self._band_masks[band]
            self._links[band].append(self._heads[band][bucket])
            self._heads[band][bucket] = index + 1
        return index

    def nearest(self, value: int) -> tuple[int, int] | None:
        """(id, distance) of the closest hash at most ``distance`` bits away (the earliest among equals), or None."""
        best: tuple[int, int] | None = None
        hashes, limit = self.hashes, self.distance
        for band, shift in enumerate(self._shifts):
            heads, links = self._heads[band], self._links[band]
            own = (value >> shift) & self._band_masks[band]
            for probe in self._probes[band]:
                link = heads[own ^ probe]
                while link:
                    index = link - 1
                    apart = (hashes[index] ^ value).bit_count()
                    if apart <= limit and (best is None or (apart, index) < (best[1], best[0])):
                        best = (index, apart)
                    link = links[index]
        return best

    def close(self) -> None:
        """Give the bucket heads' memory back now (it would be at garbage collection)."""
        for view in self._heads:
            view.release()
        for m in self._maps:
            m.close()
