"""Reading a disk the way a guest sees it: through its VMDK descriptor and parent chain.

A recovered disk is either flat (``createType="vmfs"``: one raw extent) or a copy-free
chain (see :mod:`cdp.failover.chain`): ``vmfsSparse`` (COWD) deltas over the base
replica's flat extent, each naming its parent with ``parentFileNameHint``. A grain a
delta holds hides its parent's; a grain it does not hold (its grain table entry is 0,
or its whole table is missing) reads through to the parent; below the bottom flat
extent's end the disk reads as zeros. Whoever wrote the deltas (cdp, qemu, ESXi), only
the COWD header, grain directory and grain tables are followed.

Failback streams recovered disks through this reader and promotion consolidates a chain
with it. Read-only: nothing here writes, and no file is kept open past ``close``.
"""

from __future__ import annotations

import array
import errno
import os
import re
import struct
from typing import Protocol

from cdp.errors import InvalidInputError
from cdp.group import SECTOR

GT_ENTRIES = 4096
"""Grain table entries per table in a COWD extent (ESXi's and qemu's fixed size)."""
MAX_DEPTH = 32
"""Longest parent chain followed; a longer one is refused (a loop of hints, most likely)."""
DESCRIPTOR_MAGIC = b"# Disk DescriptorFile"
COWD_MAGIC = b"COWD"
_EXTENT = re.compile(
    r'^(?:RW|RDONLY)\s+(\d+)\s+(VMFS|FLAT|VMFSSPARSE)\s+"([^"]+)"(?:\s+(\d+))?\s*$',
    re.MULTILINE,
)
_ANY_EXTENT = re.compile(r"^(?:RW|RDONLY|NOACCESS)\s+\d+\s+\w+", re.MULTILINE)
_PARENT = re.compile(r'^parentFileNameHint="([^"]+)"\s*$', re.MULTILINE)


class Image(Protocol):
    """A disk readable at any byte range (what :func:`open_image` returns)."""

    capacity_bytes: int

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` as the guest sees them (zeros past the data)."""
        ...

    def data_ranges(self) -> list[tuple[int, int]]:
        """(offset, length) ranges, sorted and disjoint, outside which the disk reads zeros."""
        ...

    def close(self) -> None:
        """Close every file of the chain."""
        ...


class FlatImage:
    """A raw extent (``VMFS``/``FLAT``), starting ``start`` bytes into its file."""

    def __init__(self, path: str, capacity_bytes: int, start: int = 0) -> None:
        self.capacity_bytes = capacity_bytes
        self.start = start
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self, offset: int, length: int) -> bytes:
        """Bytes of the extent; a file shorter than the disk reads as zeros past its end."""
        data = os.pread(self.fd, length, self.start + offset)
        return data if len(data) == length else data.ljust(length, b"\0")

    def data_ranges(self) -> list[tuple[int, int]]:
        """The extent's data regions (``SEEK_DATA``/``SEEK_HOLE``), within the capacity."""
        size = min(self.capacity_bytes, os.fstat(self.fd).st_size - self.start)
        out, pos = [], 0
        while pos < size:
            try:
                data = os.lseek(self.fd, self.start + pos, os.SEEK_DATA) - self.start
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            if data >= size:
                break
            hole = min(os.lseek(self.fd, self.start + data, os.SEEK_HOLE) - self.start, size)
            out.append((data, hole - data))
            pos = hole
        return out

    def close(self) -> None:
        """Close the extent."""
        os.close(self.fd)


class SparseImage:
    """A vmfsSparse (COWD) delta over ``parent``."""

    def __init__(self, path: str, capacity_bytes: int, parent: Image) -> None:
        self.capacity_bytes = capacity_bytes
        self.parent = parent
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            head = os.pread(self.fd, 32, 0)
            if len(head) < 32 or head[:4] != COWD_MAGIC:
                raise InvalidInputError(path, "not a vmfsSparse (COWD) extent")
            _, _, _, grain, gd_at, entries, _ = struct.unpack("<7I", head[4:32])
            if grain == 0:
                raise InvalidInputError(path, "COWD header with a grain size of 0")
            self.grain_bytes = grain * SECTOR
            directory = array.array("I", os.pread(self.fd, entries * 4, gd_at * SECTOR))
        except BaseException:
            os.close(self.fd)
            raise
        self.directory = directory
        self.tables: dict[int, array.array[int] | None] = {}

    def read(self, offset: int, length: int) -> bytes:
        """The delta's grains where it holds them, the parent's bytes elsewhere."""
        out = bytearray()
        pos, end = offset, offset + length
        while pos < end:
            g = pos // self.grain_bytes
            table = self._table(g // GT_ENTRIES)
            if table is None:  # the whole table's span reads through to the parent
                span_end = min(end, (g // GT_ENTRIES + 1) * GT_ENTRIES * self.grain_bytes)
                out += self.parent.read(pos, span_end - pos)
                pos = span_end
                continue
            n, at = self._run(table, pos, end)
            if at >= 0:
                out += os.pread(self.fd, n, at).ljust(n, b"\0")
            else:
                out += self.parent.read(pos, n)
            pos += n
        return bytes(out)

    def _run(self, table: array.array[int], pos: int, end: int) -> tuple[int, int]:
        """(bytes, file offset or -1) of the longest run from ``pos`` within one table.

        A run is held contiguously in this delta's file, or not held by it at all.
        """
        gb = self.grain_bytes
        g = pos // gb
        first, within = table[g % GT_ENTRIES], pos - g * gb
        stop = min(end, (g // GT_ENTRIES + 1) * GT_ENTRIES * gb)
        run_end = min(stop, (g + 1) * gb)
        step = gb // SECTOR
        while run_end < stop:
            nxt = table[(run_end // gb) % GT_ENTRIES]
            expect = first + (run_end // gb - g) * step if first else 0
            if nxt != expect:
                break
            run_end = min(stop, run_end + gb)
        return run_end - pos, (first * SECTOR + within) if first else -1

    def _table(self, n: int) -> array.array[int] | None:
        """Grain table ``n`` (None: it maps no grain of this delta)."""
        if n not in self.tables:
            at = self.directory[n] if n < len(self.directory) else 0
            if at and self._hole(at * SECTOR, GT_ENTRIES * 4):
                at = 0  # a table never written (a file hole): it maps nothing
            raw = os.pread(self.fd, GT_ENTRIES * 4, at * SECTOR) if at else b""
            table = array.array("I", raw.ljust(GT_ENTRIES * 4, b"\0"))
            self.tables[n] = table if any(table) else None
        return self.tables[n]

    def data_ranges(self) -> list[tuple[int, int]]:
        """The parent's data ranges joined with the grains this delta holds."""
        own = []
        for n in range(len(self.directory)):
            table = self._table(n)
            if table is None:
                continue
            base = n * GT_ENTRIES
            for i, sector in enumerate(table):
                if sector:
                    own.append(((base + i) * self.grain_bytes, self.grain_bytes))
        return merge_ranges(self.parent.data_ranges() + own)

    def _hole(self, offset: int, length: int) -> bool:
        """True if ``length`` bytes at ``offset`` are a hole of the file (they read zeros)."""
        try:
            return os.lseek(self.fd, offset, os.SEEK_DATA) >= offset + length
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after offset
                return True
            raise

    def close(self) -> None:
        """Close this delta and its parents."""
        os.close(self.fd)
        self.parent.close()


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint (offset, length) ranges covering the same bytes as ``ranges``."""
    out: list[tuple[int, int]] = []
    for at, n in sorted(ranges):
        if out and at <= out[-1][0] + out[-1][1]:
            start, length = out[-1]
            out[-1] = (start, max(length, at + n - start))
        else:
            out.append((at, n))
    return out


def open_image(path: str) -> Image:
    """The disk ``path`` names: a VMDK descriptor (chains followed) or a raw flat file."""
    with open(path, "rb") as f:
        head = f.read(len(DESCRIPTOR_MAGIC))
    if head != DESCRIPTOR_MAGIC:
        return FlatImage(path, os.stat(path).st_size)
    return _open_descriptor(path, 0)


def _open_descriptor(path: str, depth: int) -> Image:
    if depth > MAX_DEPTH:
        raise InvalidInputError(path, f"parent chain longer than {MAX_DEPTH} (a loop of hints?)")
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(64 * 1024)
    extents = _EXTENT.findall(text)
    if len(extents) != 1 or len(_ANY_EXTENT.findall(text)) != 1:
        raise InvalidInputError(path, "expected one VMFS, FLAT or VMFSSPARSE extent")
    sectors, kind, name, start = extents[0]
    folder = os.path.dirname(path)
    extent, capacity = os.path.join(folder, name), int(sectors) * SECTOR
    if kind != "VMFSSPARSE":
        return FlatImage(extent, capacity, int(start or 0) * SECTOR)
    hint = _PARENT.search(text)
    if hint is None:
        raise InvalidInputError(path, "vmfsSparse delta without a parentFileNameHint")
    parent = _open_descriptor(os.path.join(folder, hint.group(1)), depth + 1)
    try:
        return SparseImage(extent, capacity, parent)
    except BaseException:
        parent.close()
        raise


def is_chain(path: str) -> bool:
    """True if the descriptor at ``path`` is a delta (its data lives partly in parents)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(64 * 1024)
    return any(kind == "VMFSSPARSE" for _, kind, _, _ in _EXTENT.findall(text))
