"""The last-seen compressibility of every region of a disk, and what one write does to it.

One byte per region: 0 never written since the detector started, else 1 + the lz4
ratio (frame bytes / data bytes) x :data:`QUANT`, capped at 255. A write blends its
ratio into each region it covers by the share of the region it covers, so a region
encrypted 4 KiB at a time (intermittent encryption) climbs step by step and each step
still counts as a rise. A region at or below :data:`EMPTY_RATIO` (zeros, free space)
counts as empty, like one never seen: filling free space is not an overwrite.
"""

from __future__ import annotations

REGION_BYTES = 64 * 2**10
"""Granularity of the map on small disks."""
MAX_REGIONS_PER_DISK = 2**22
"""At most this many bytes of map per disk (4 MiB): larger disks get larger regions."""
QUANT = 200
"""Map steps per unit of ratio (a ratio of 1.27 or more is stored as 255)."""
INCOMPRESSIBLE_RATIO = 0.9
"""A frame at least this big relative to its data did not compress: encrypted or packed."""
EMPTY_RATIO = 0.05
"""A region whose data compresses below this is empty (zeros) for the detector."""
RISE_MIN = 0.2
"""An incompressible write over data whose ratio is at least this much lower is a rise."""
_EMPTY_Q = 1 + int(EMPTY_RATIO * QUANT)


Touch = tuple[int, float]
"""What one write did: (bytes written over regions that held non-empty data, its rise:
those bytes x (new ratio - old ratio) when an incompressible write covered data that
compressed; 0.0 otherwise)."""


class RegionMap:
    """The last-seen compressibility of each region of one disk."""

    def __init__(self, capacity_bytes: int) -> None:
        shift = REGION_BYTES.bit_length() - 1
        while (capacity_bytes >> shift) + 1 > MAX_REGIONS_PER_DISK:
            shift += 1
        self.shift = shift
        """log2 of the region size in bytes."""
        self.region_bytes = 1 << shift
        self._q = bytearray((capacity_bytes >> shift) + 1)

    def write(self, offset: int, length: int, ratio: float) -> Touch:
        """Record a write of ``length`` bytes at ``offset`` whose lz4 ratio is ``ratio``."""
        q = 1 + min(254, int(ratio * QUANT))
        shift, regions = self.shift, self._q
        first, last = offset >> shift, (offset + length - 1) >> shift
        if first == last:
            old = regions[first]
            regions[first] = _blend(old, q, length, self.region_bytes)
            known = length if old > _EMPTY_Q else 0
            return _touch(known, old * known, ratio)
        known, weighted, end = 0, 0, offset + length
        for i in range(first, last + 1):
            cover = min(end, (i + 1) << shift) - max(offset, i << shift)
            old = regions[i]
            regions[i] = _blend(old, q, cover, self.region_bytes)
            if old > _EMPTY_Q:
                known += cover
                weighted += old * cover
        return _touch(known, weighted, ratio)

    def ratio_at(self, offset: int) -> float:
        """The last-seen ratio of the region holding ``offset`` (0.0: never seen)."""
        q = self._q[offset >> self.shift]
        return (q - 1) / QUANT if q else 0.0


def _blend(old: int, q: int, cover: int, region_bytes: int) -> int:
    """The region's new value after ``cover`` of its bytes were written with value ``q``."""
    if not old or cover >= region_bytes:
        return q
    return int(old + (q - old) * cover / region_bytes + 0.5)


def _touch(known: int, weighted: int, ratio: float) -> Touch:
    """The rise of a write of ``ratio`` over ``known`` bytes whose summed value is ``weighted``."""
    if not known:
        return 0, 0.0
    old_ratio = (weighted / known - 1) / QUANT
    gain = min(ratio, 1.0) - old_ratio
    if ratio >= INCOMPRESSIBLE_RATIO and gain >= RISE_MIN:
        return known, known * gain
    return known, 0.0
