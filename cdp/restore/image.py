"""Point-in-time images: a disk as it was at a restore point, built on demand.

An image is the base replica extent overlaid with the journal records of that disk
between the base and the point, in seq order. It is produced as a stream of (offset,
bytes) chunks in offset order, skipping holes: only regions where the base holds data
(found with SEEK_DATA) or a record wrote are read. The cost therefore grows with the
data actually present and changed, not with the disk's virtual size. The caller keeps
apply paused while it reads, so the base does not move underneath.

The base is read through a :class:`BaseExtent`, which checks every region it returns
against the replica's checksums and raises
:class:`cdp.errors.ReplicaCorruptError` on damage: a damaged base is never exported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from cdp import codec
from cdp.errors import JournalCorruptError, ReplicaCorruptError
from cdp.group import SECTOR
from cdp.journal.index import IndexEntry, Point
from cdp.journal.journal import Journal
from cdp.record import KIND_WRITE

CHUNK = 4 * 2**20
"""Bytes per image chunk; chunks are aligned to this."""


class BaseExtent(Protocol):
    """A base replica extent, read region-checked."""

    def data_regions(self, offset: int, end: int) -> list[tuple[int, int]]:
        """[lo, hi) spans in [offset, end) that may hold data, sorted, disjoint."""

    def read(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop), verified; raises ReplicaCorruptError on damage."""


DAMAGED_REGION_HASH = 0
"""What :func:`region_hashes` answers for a region over a damaged base: it never equals
a source's hash (XXH3 of real bytes is 0 with chance 2**-64), so the source re-sends it."""


@dataclass(frozen=True)
class ImagePlan:
    """What an image read will do."""

    point: Point
    base_seq: int
    disk: int
    """Disk number in the group."""
    capacity_bytes: int
    entries: list[IndexEntry]
    """Write records of the disk between the base and the point, in seq order."""

    @property
    def record_bytes(self) -> int:
        """Bytes the records write."""
        return sum(e.length for e in self.entries)


class PlanCache:
    """The journal's write entries between a base and a point, split by disk.

    One slot: images of several disks at the same point (a failover of many VMs) scan
    the index once instead of once per disk. Valid while the base does not move, which
    is what the key (base, point) says.
    """

    def __init__(self) -> None:
        self._key: tuple[int, int] = (-1, -1)
        self._by_disk: dict[int, list[IndexEntry]] = {}
        self._lock = threading.Lock()  # image plans run in worker threads

    def entries(
        self, journal: Journal, base_seq: int, upto_seq: int, disk: int
    ) -> list[IndexEntry]:
        """Write entries of ``disk`` with base_seq < seq <= upto_seq, in seq order."""
        with self._lock:
            if self._key != (base_seq, upto_seq):
                by_disk: dict[int, list[IndexEntry]] = {}
                for e in journal.index_entries(base_seq + 1, upto_seq):
                    if e.kind == KIND_WRITE:
                        by_disk.setdefault(e.disk, []).append(e)
                self._key, self._by_disk = (base_seq, upto_seq), by_disk
            return self._by_disk.get(disk, [])


def plan_image(
    journal: Journal, point: Point, base_seq: int, disk: int, capacity_bytes: int,
    cache: PlanCache | None = None,
) -> ImagePlan:  # fmt: skip
    """The records an image of ``disk`` at ``point`` needs on top of the base."""
    entries = (cache or PlanCache()).entries(journal, base_seq, point.seq, disk)
    return ImagePlan(point, base_seq, disk, capacity_bytes, entries)


def read_image(
    journal: Journal, base: BaseExtent, plan: ImagePlan, offset: int, length: int,
    tail_only: bool = False,
) -> Iterator[tuple[int, bytes]]:  # fmt: skip
    """Yield (offset, data) pieces of the image within [offset, offset + length).

    Only regions that hold data are produced: the base extent's data regions and the
    records' extents, merged, cut into pieces of at most CHUNK bytes. With ``tail_only``
    only the records' extents (rounded out to whole 512-byte sectors) are produced: what
    a delta over the base at ``plan.base_seq`` needs to show the point.
    """
    end = min(offset + length, plan.capacity_bytes)
    entries = [e for e in plan.entries if e.disk_offset < end and e.disk_offset + e.length > offset]
    by_chunk = _bucket(entries, CHUNK)
    spans = [(max(e.disk_offset, offset), min(e.disk_offset + e.length, end)) for e in entries]
    if tail_only:
        regions = _merge(
            [(lo - lo % SECTOR, min(-(-hi // SECTOR) * SECTOR, end)) for lo, hi in spans]
        )
    else:
        regions = _merge([*spans, *base.data_regions(offset, end)])
    cache: dict[int, bytes] = {}
    for lo, hi in regions:
        start = lo
        while start < hi:
            stop = min((start // CHUNK + 1) * CHUNK, hi)  # pieces never cross a chunk edge
            buf = bytearray(base.read(start, stop).ljust(stop - start, b"\0"))
            for e in by_chunk.get(start // CHUNK, []):
                if e.disk_offset < stop and e.disk_offset + e.length > start:
                    _overlay(buf, start, stop, e, _record_data(journal, e, cache))
            yield start, bytes(buf)
            start = stop


def _bucket(entries: list[IndexEntry], size: int) -> dict[int, list[IndexEntry]]:
    """Entries by the ``size``-byte slots of the disk they touch, seq order kept per slot."""
    out: dict[int, list[IndexEntry]] = {}
    for e in entries:
        for slot in range(e.disk_offset // size, (e.disk_offset + e.length - 1) // size + 1):
            out.setdefault(slot, []).append(e)
    return out


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of [lo, hi) spans, sorted, adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _record_data(journal: Journal, e: IndexEntry, cache: dict[int, bytes]) -> bytes:
    """A record's data, verified; the last few are cached (records span pieces)."""
    if e.seq in cache:
        return cache[e.seq]
    rec = journal.read_entry(e)
    data = codec.decompress(rec.frame, rec.length)
    if codec.checksum(data) != rec.data_xxh3:
        raise JournalCorruptError(journal.dir, e.position, "payload checksum mismatch", e.seq)
    if len(cache) > 8:
        cache.clear()
    cache[e.seq] = data
    return data


def _overlay(buf: bytearray, start: int, stop: int, e: IndexEntry, data: bytes) -> None:
    lo, hi = max(start, e.disk_offset), min(stop, e.disk_offset + e.length)
    buf[lo - start : hi - start] = data[lo - e.disk_offset : hi - e.disk_offset]


def region_hashes(
    journal: Journal, base: BaseExtent, plan: ImagePlan, offsets: list[int], region_bytes: int
) -> list[int]:
    """XXH3-64 of each region ``[offset, offset + region_bytes)`` of the image.

    Regions are clipped at the capacity. One pass: records are bucketed by region. A
    region over a damaged base answers :data:`DAMAGED_REGION_HASH`, so that a resync
    sends it again (which is how a damaged base is repaired).
    """
    by_region = _bucket(plan.entries, region_bytes)
    cache: dict[int, bytes] = {}
    out = []
    for offset in offsets:
        stop = min(offset + region_bytes, plan.capacity_bytes)
        try:
            buf = bytearray(base.read(offset, stop).ljust(stop - offset, b"\0"))
        except ReplicaCorruptError:
            out.append(DAMAGED_REGION_HASH)
            continue
        for e in by_region.get(offset // region_bytes, []):
            _overlay(buf, offset, stop, e, _record_data(journal, e, cache))
        out.append(codec.checksum(buf))
    return out
