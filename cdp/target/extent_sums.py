"""Per-region checksums of a base replica extent, kept in a file beside it.

Every replica extent ``<vm>_<n>-flat.vmdk`` has a sums file
``<data_dir>/replica-sums/<vm>/<vm>_<n>-flat.vmdk.sums``:
a 24-byte header (magic, region size, capacity) and one little-endian u64 per
:data:`REGION_BYTES` region of the disk. A stored 0 means "this region is all zeros"
(a new disk's sums file is sparse, so it costs nothing until written); any other value
is the region's XXH3-64 (a real XXH3 of 0 is stored as 1).

The applier keeps the sums in step with the extent (see :class:`cdp.target.replica.
ReplicaSet`); image reads and the scrub verify every base region they read against
them. This module only reads, computes and writes sums; it never decides what a
mismatch means.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Iterable

from cdp import codec, fsutil
from cdp.errors import ReplicaCorruptError

REGION_BYTES = 64 * 2**10
"""Bytes per checksummed region (64 KiB, the source's dirty-map region): a read verifies
whole regions, an apply verifies each region it partly overwrites and re-reads each region
it touched, and the sums cost 8 bytes per 64 KiB of disk (128 KiB per GiB). Sums files of
an earlier layout (1 MiB regions) are converted at open, verified first
(:func:`convert_layout`)."""
SUMS_SUFFIX = ".sums"
"""Appended to the extent's path to name its sums file."""
DAMAGED = 2**64 - 1
"""Stored for a region found damaged: every read of it is refused until a write covers
it whole (a resync from the source); a real XXH3 of this value is stored as 2**64 - 2."""
MAGIC = b"CDPSUMS1"
_HEADER = struct.Struct("<8sQQ")
_U64 = struct.Struct("<Q")


SUMS_FOLDER = "replica-sums"
"""Folder beside the replica root (``<data_dir>/replica-sums/<vm>/``): the sums stay out
of the recovery datastore, whose layout DESIGN.md fixes."""


def sums_path(replica_root: str, vm_id: str, extent_name: str) -> str:
    """Path of the sums file of a replica extent (its folder made as needed)."""
    top = os.path.join(os.path.dirname(os.path.abspath(replica_root)), SUMS_FOLDER)
    folder = os.path.join(top, vm_id)
    fsutil.make_dirs(folder)
    return os.path.join(folder, extent_name + SUMS_SUFFIX)


@functools.lru_cache(maxsize=8)
def _zero_sum(length: int) -> int:
    return codec.checksum(bytes(length))


def region_sum(data: bytes | bytearray | memoryview) -> int:
    """The stored form of a region's checksum: 0 for all zeros, else XXH3-64 (0 -> 1)."""
    h = codec.checksum(data)
    if h == _zero_sum(len(data)):
        return 0
    return min(h or 1, DAMAGED - 1)


def region_count(capacity_bytes: int) -> int:
    """How many regions a disk of this capacity has."""
    return (capacity_bytes + REGION_BYTES - 1) // REGION_BYTES


def regions_of(offset: int, length: int) -> range:
    """Region numbers that the bytes [offset, offset + length) touch."""
    if length <= 0:
        return range(0)
    return range(offset // REGION_BYTES, (offset + length - 1) // REGION_BYTES + 1)


class ExtentSums:
    """The sums file of one extent, open for reading and in-place updates."""

    def __init__(self, path: str, capacity_bytes: int, label: tuple[str, int]) -> None:
        self.path = path
        self.capacity_bytes = capacity_bytes
        self.vm_id, self.disk = label
        self.regions = region_count(capacity_bytes)
        self._fd = -1

    @property
    def is_open(self) -> bool:
        """Whether the sums file is open (it was found usable)."""
        return self._fd >= 0

    @property
    def file_bytes(self) -> int:
        """The size a complete sums file has."""
        return _HEADER.size + 8 * self.regions

    def create(self) -> None:
        """Write a new sums file of a blank disk (all regions zero), durably."""
        fd = fsutil.create_file(self.path, os.O_RDWR | os.O_TRUNC)
        os.pwrite(fd, _HEADER.pack(MAGIC, REGION_BYTES, self.capacity_bytes), 0)
        os.ftruncate(fd, self.file_bytes)
        os.fsync(fd)
        self._fd = fd

    def open(self) -> str:
        """Open an existing sums file; return why it cannot be used ("" if it can)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        head = os.pread(fd, _HEADER.size, 0)
        size = os.fstat(fd).st_size
        problem = ""
        if len(head) < _HEADER.size or _HEADER.unpack(head) != (
            MAGIC, REGION_BYTES, self.capacity_bytes
        ):  # fmt: skip
            problem = f"sums file {self.path}: bad header"
        elif size != self.file_bytes:
            problem = f"sums file {self.path}: {size} bytes, expected {self.file_bytes}"
        if problem:
            os.close(fd)
            return problem
        self._fd = fd
        return ""

    def expected(self, first: int, count: int) -> list[int]:
        """Stored sums of regions first .. first + count - 1."""
        raw = os.pread(self._fd, 8 * count, _HEADER.size + 8 * first)
        return [v for (v,) in struct.iter_unpack("<Q", raw.ljust(8 * count, b"\0"))]

    def store(self, sums: dict[int, int]) -> None:
        """Write new sums of some regions in place (durable after :meth:`sync`)."""
        for region, value in sorted(sums.items()):
            os.pwrite(self._fd, _U64.pack(value), _HEADER.size + 8 * region)

    def sync(self) -> None:
        """Make stored sums durable."""
        os.fdatasync(self._fd)

    def damaged_regions(self) -> list[int]:
        """Regions marked :data:`DAMAGED`."""
        out: list[int] = []
        step = 65536
        for lo in range(0, self.regions, step):
            values = self.expected(lo, min(step, self.regions - lo))
            out.extend(lo + i for i, v in enumerate(values) if v == DAMAGED)
        return out

    def nonzero_regions(self, first: int, last: int) -> Iterable[int]:
        """Regions in [first, last] whose stored sum says they hold data."""
        step = 65536
        for lo in range(first, last + 1, step):
            n = min(step, last + 1 - lo)
            for i, v in enumerate(self.expected(lo, n)):
                if v:
                    yield lo + i

    def region_span(self, region: int) -> tuple[int, int]:
        """[lo, hi) bytes of a region, clipped at the capacity."""
        lo = region * REGION_BYTES
        return lo, min(lo + REGION_BYTES, self.capacity_bytes)

    def read_verified(self, extent_fd: int, region: int) -> bytes:
        """Read one whole region of the extent and check it; raise if it is damaged."""
        lo, hi = self.region_span(region)
        data = os.pread(extent_fd, hi - lo, lo)
        if len(data) != hi - lo:
            raise self.damaged(region, f"extent ends at byte {lo + len(data)}")
        expected = self.expected(region, 1)[0]
        if expected == DAMAGED:
            raise self.damaged(region, "marked damaged; a resync from the source repairs it")
        if region_sum(data) != expected:
            raise self.damaged(region, "checksum mismatch")
        return data

    def damaged(self, region: int, detail: str) -> ReplicaCorruptError:
        """The error naming a damaged region of this disk."""
        return ReplicaCorruptError(self.vm_id, self.disk, region, REGION_BYTES, detail)

    def damaged_file(self, detail: str) -> ReplicaCorruptError:
        """The error naming a whole damaged file of this disk."""
        return ReplicaCorruptError(self.vm_id, self.disk, None, REGION_BYTES, detail)

    def close(self) -> None:
        """Close the sums file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def compute_all(extent_fd: int, sums: ExtentSums) -> dict[int, int]:
    """Sums of every region of an extent that holds data (holes are zero regions)."""
    out: dict[int, int] = {}
    pos = 0
    while pos < sums.capacity_bytes:
        try:
            data = os.lseek(extent_fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            break
        hole = os.lseek(extent_fd, data, os.SEEK_HOLE)
        for region in regions_of(data, min(hole, sums.capacity_bytes) - data):
            lo, hi = sums.region_span(region)
            out[region] = region_sum(os.pread(extent_fd, hi - lo, lo).ljust(hi - lo, b"\0"))
        pos = max(hole, (regions_of(data, hole - data).stop) * REGION_BYTES)
    return out


def stored_region_bytes(path: str, capacity_bytes: int) -> int:
    """The region size a sums file of this capacity was written with (0: not a sums file)."""
    with open(path, "rb") as f:
        head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return 0
    magic, region, capacity = _HEADER.unpack(head)
    return region if magic == MAGIC and capacity == capacity_bytes and region > 0 else 0


def convert_layout(extent_fd: int, sums: ExtentSums, old_region: int, pending: set[int]) -> int:
    """Rewrite a sums file of region size ``old_region`` in this layout; return damage.

    The count returned is of regions (new units) marked damaged. Each old region that
    holds data is read once and checked against its old sum first (damage found before
    the conversion is kept: every new region inside a bad old one is marked
    :data:`DAMAGED`), then split into new sums. ``pending``: old regions an interrupted
    apply round was writing, whose old sums are stale (recomputed, as at any open after
    a crash).
    """
    count = (sums.capacity_bytes + old_region - 1) // old_region
    with open(sums.path, "rb") as f:
        f.seek(_HEADER.size)
        raw = f.read(8 * count).ljust(8 * count, b"\0")
    old = [v for (v,) in struct.iter_unpack("<Q", raw)]
    holding = {i for i, v in enumerate(old) if v} | pending
    pos = 0
    while pos < sums.capacity_bytes:  # regions with data whose old sum says "zeros"
        try:
            start = os.lseek(extent_fd, pos, os.SEEK_DATA)
        except OSError:
            break
        hole = min(os.lseek(extent_fd, start, os.SEEK_HOLE), sums.capacity_bytes)
        holding.update(range(start // old_region, (max(hole, start + 1) - 1) // old_region + 1))
        pos = hole
    new: dict[int, int] = {}
    damaged = 0
    for i in sorted(holding):
        lo = i * old_region
        hi = min(lo + old_region, sums.capacity_bytes)
        data = os.pread(extent_fd, hi - lo, lo).ljust(hi - lo, b"\0")
        bad = i not in pending and (old[i] == DAMAGED or region_sum(data) != old[i])
        for region in regions_of(lo, hi - lo):
            a, b = sums.region_span(region)
            new[region] = DAMAGED if bad else region_sum(data[a - lo : b - lo])
            damaged += bad
    fresh = ExtentSums(sums.path + ".convert", sums.capacity_bytes, (sums.vm_id, sums.disk))
    fresh.create()
    fresh.store(new)
    fresh.sync()
    fresh.close()
    sums.close()
    os.replace(fresh.path, sums.path)  # a crash leaves the old file or the new one whole
    fsutil.fsync_dir(os.path.dirname(sums.path))
    return damaged
