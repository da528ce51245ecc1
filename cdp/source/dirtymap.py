"""Dirty map: a bitmap over fixed-size regions of each disk (like VMware's CBT).

Records which regions were written while writes could not be journaled. Pure data; the
resync reads it in disk order and clears a region before it reads the region's data, so
a write that lands meanwhile marks it dirty again.
"""

from __future__ import annotations

from collections.abc import Iterator

DEFAULT_REGION_BYTES = 64 * 1024
"""Bytes one bit stands for; configurable per source."""


class DirtyMap:
    """One bit per region per disk."""

    def __init__(self, capacities: list[int], region_bytes: int = DEFAULT_REGION_BYTES) -> None:
        if region_bytes <= 0 or region_bytes % 512:
            raise ValueError("region_bytes must be a positive multiple of 512")
        self.region_bytes = region_bytes
        self.capacities = capacities
        self._bits = [bytearray((self.regions(c) + 7) // 8) for c in capacities]
        self._count = 0

    def regions(self, capacity: int) -> int:
        """Number of regions of a disk."""
        return (capacity + self.region_bytes - 1) // self.region_bytes

    def mark(self, disk: int, offset: int, length: int) -> None:
        """A write of ``length`` bytes at ``offset`` happened."""
        bits = self._bits[disk]
        for r in range(offset // self.region_bytes, (offset + length - 1) // self.region_bytes + 1):
            byte, mask = r >> 3, 1 << (r & 7)
            if not bits[byte] & mask:
                bits[byte] |= mask
                self._count += 1

    def mark_all(self) -> None:
        """Every region of every disk (initial sync)."""
        for disk, cap in enumerate(self.capacities):
            self.mark(disk, 0, cap)

    def take(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` dirty regions as (disk, offset), in disk order, and clear them."""
        out: list[tuple[int, int]] = []
        for disk, r in self._iter():
            self._bits[disk][r >> 3] &= ~(1 << (r & 7)) & 0xFF
            self._count -= 1
            out.append((disk, r * self.region_bytes))
            if len(out) == limit:
                break
        return out

    def _iter(self) -> Iterator[tuple[int, int]]:
        for disk, bits in enumerate(self._bits):
            for i, b in enumerate(bits):
                if b:
                    for k in range(8):
                        if b & (1 << k):
                            yield disk, i * 8 + k

    def __len__(self) -> int:
        return self._count

    def dirty_bytes(self) -> int:
        """Bytes the dirty regions cover (at most the disks' sizes)."""
        return self._count * self.region_bytes
