"""Replica VMs on the recovery datastore: folder layout and the flat extents' bytes.

One folder per VM (DESIGN.md)::

    <vm>/<vm>.vmx  <vm>/<vm>.nvram  <vm>/vmware.log
    <vm>/<vm>_<n>.vmdk (descriptor)  <vm>/<vm>_<n>-flat.vmdk (extent, sparse)

Writes go to the extents with pwrite; :meth:`ReplicaSet.sync` makes them durable and
drops them from the page cache (random 4 KiB writes into cached large files cost
whole-folio write-back on this kernel, see DESIGN.md).

Each extent has per-region checksums beside it (:mod:`cdp.target.extent_sums`). An
apply round is: :meth:`ReplicaSet.begin` (verify the regions the round will touch, then
note them durably as pending), writes, :meth:`ReplicaSet.sync` (new sums of the touched
regions, then extents and sums made durable), the caller stores its applied seq,
:meth:`ReplicaSet.finish` (the pending note goes). After a crash anywhere in a round the
pending regions' sums are recomputed from the extent at open, and the caller's re-apply
of the same records recomputes them again. Files are created 0600, folders 0700.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator

from cdp import fsutil, naming
from cdp.errors import ReplicaCorruptError, StorageFullError
from cdp.fsutil import write_atomic
from cdp.group import GroupSpec, VmSpec
from cdp.target.extent_sums import (
    DAMAGED,
    REGION_BYTES,
    ExtentSums,
    compute_all,
    convert_layout,
    region_sum,
    regions_of,
    stored_region_bytes,
    sums_path,
)
from cdp.vmdk import format_descriptor
from cdp.vmx import format_vmx

log = logging.getLogger("cdp.target")

MAX_IMAGED_REGIONS = 512
"""Regions per apply round whose verified bytes are kept to sum them after the writes
(32 MiB at 64 KiB); a round touching more re-reads the rest from the extent."""
PENDING_SUFFIX = ".pending"
"""Appended to a sums file's path to name the note of regions an apply round touches."""


def vm_folder(root: str, vm_id: str) -> str:
    """Folder of a replica VM under the replica root."""
    return os.path.join(root, vm_id)


def extent_path(root: str, vm_id: str, n: int) -> str:
    """Path of disk ``n``'s flat extent."""
    return os.path.join(root, vm_id, naming.format_disk_extent(vm_id, n))


def descriptor_path(root: str, vm_id: str, n: int) -> str:
    """Path of disk ``n``'s VMDK descriptor."""
    return os.path.join(root, vm_id, naming.format_disk_descriptor(vm_id, n))


def create_vm_layout(root: str, vm: VmSpec, blank_disks: bool = True) -> None:
    """Create a VM folder with blank (sparse) disks; files already there are kept.

    With ``blank_disks`` False (the group already had data) a missing extent is left
    missing, for :class:`ReplicaSet` to report, never recreated blank.
    """
    folder = vm_folder(root, vm.vm_id)
    fsutil.make_dirs(folder)
    names = [naming.format_disk_descriptor(vm.vm_id, n) for n in range(len(vm.disks))]
    for n, disk in enumerate(vm.disks):
        extent = extent_path(root, vm.vm_id, n)
        if blank_disks and not os.path.exists(extent):
            fd = fsutil.create_file(extent, os.O_WRONLY)
            os.ftruncate(fd, disk.capacity_bytes)
            os.fsync(fd)
            os.close(fd)
            name = naming.format_disk_extent(vm.vm_id, n)
            sums_file = sums_path(root, vm.vm_id, name)
            sums = ExtentSums(sums_file, disk.capacity_bytes, (vm.vm_id, n))
            sums.create()
            sums.close()
        desc = descriptor_path(root, vm.vm_id, n)
        if not os.path.exists(desc):
            text = format_descriptor(disk.capacity_bytes, naming.format_disk_extent(vm.vm_id, n))
            write_atomic(desc, text.encode())
    for name, data in (
        (f"{vm.vm_id}.vmx", format_vmx(vm.vm_id, names).encode()),
        (f"{vm.vm_id}.nvram", b""),
        ("vmware.log", b""),
    ):
        if not os.path.exists(os.path.join(folder, name)):
            write_atomic(os.path.join(folder, name), data)


@contextlib.contextmanager
def _full_disk(root: str) -> Iterator[None]:
    """Turn a full volume into :class:`StorageFullError`; other OS errors pass."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(root, f"replica write: {exc}") from exc
        raise


class ReplicaSet:
    """The replica disks of one group, addressed by group disk number."""

    def __init__(self, root: str, spec: GroupSpec, had_data: bool = False) -> None:
        self.root = root
        self._fds: list[int] = []
        self._sums: list[ExtentSums] = []
        self.problems: list[ReplicaCorruptError] = []
        """Disks found missing, cut short or without usable sums at open."""
        for vm in spec.vms:
            create_vm_layout(root, vm, blank_disks=not had_data)
        try:  # a failure half way (EMFILE, EFBIG) closes what was opened: fds are not GC'd
            for ref in spec.disks():
                path = extent_path(root, ref.vm_id, ref.index_in_vm)
                label = (ref.vm_id, ref.index_in_vm)
                name = naming.format_disk_extent(ref.vm_id, ref.index_in_vm)
                sums_file = sums_path(root, ref.vm_id, name)
                sums = ExtentSums(sums_file, ref.spec.capacity_bytes, label)
                self._sums.append(sums)
                self._fds.append(self._open_disk(path, sums))
        except BaseException:
            self.close()
            raise
        self._touched: dict[int, set[int]] = {}
        self._writes: list[tuple[int, int, int]] = []
        self._images: dict[tuple[int, int], bytearray] = {}
        """(disk, region) -> the region's bytes as verified before the round (zeros for a
        region the round writes whole), with the round's writes patched in: its new sum
        without reading it again (at most :data:`MAX_IMAGED_REGIONS` per round; the others
        are re-read)."""
        self._lock = threading.Lock()
        self.damaged: dict[int, set[int]] = {
            d: set(s.damaged_regions()) for d, s in enumerate(self._sums) if s.is_open
        }
        """Regions marked damaged, per disk: refused to readers until a resync covers them."""
        self._coverage: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._announced: dict[int, set[int]] = {}

    def _open_disk(self, path: str, sums: ExtentSums) -> int:
        """Open an extent and its sums; record what is wrong in :attr:`problems`."""
        if not os.path.exists(path):
            self.problems.append(sums.damaged_file(f"extent {path} is missing"))
            return -1
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        size = os.fstat(fd).st_size
        if size != sums.capacity_bytes:
            self.problems.append(
                sums.damaged_file(f"extent {path} is {size} bytes, the disk {sums.capacity_bytes}")
            )
            return fd
        if not os.path.exists(sums.path):
            log.warning(
                "replica %s: no sums file; computing the region checksums from the extent "
                "as it is now (damage done before now cannot be detected)", path,
            )  # fmt: skip
            sums.create()
            sums.store(compute_all(fd, sums))
            sums.sync()
            return fd
        region = stored_region_bytes(sums.path, sums.capacity_bytes)
        if region and region != REGION_BYTES:
            self._convert(fd, sums, region)
        problem = sums.open()
        if problem:
            self.problems.append(sums.damaged_file(problem))
            return fd
        self._recover_pending(fd, sums)
        return fd

    def _convert(self, fd: int, sums: ExtentSums, old_region: int) -> None:
        """A sums file of an earlier region size: verified, then rewritten in this one."""
        note = sums.path + PENDING_SUFFIX
        pending: set[int] = set()
        if os.path.exists(note):  # region numbers of the old layout
            with open(note, encoding="ascii") as f:
                pending = {int(x) for x in f.read().split()}
        damaged = convert_layout(fd, sums, old_region, pending)
        sums.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(note)
        level = logging.ERROR if damaged else logging.WARNING
        log.log(level, "replica %s: region sums converted from %d to %d bytes per region "
                "(verified first; %d regions found damaged)", sums.path, old_region,
                REGION_BYTES, damaged)  # fmt: skip

    def _recover_pending(self, fd: int, sums: ExtentSums) -> None:
        """An apply round died: recompute the sums of the regions it was writing."""
        note = sums.path + PENDING_SUFFIX
        if not os.path.exists(note):
            return
        with open(note, encoding="ascii") as f:
            regions = {int(x) for x in f.read().split()}
        _store_sums(fd, sums, regions)
        sums.sync()
        os.unlink(note)
        log.info("replica %s: recomputed %d region sums of an interrupted apply round",
                 sums.path, len(regions))  # fmt: skip

    def check(self) -> None:
        """Raise the first problem found at open, if any."""
        if self.problems:
            raise self.problems[0]

    def begin(self, writes: list[tuple[int, int, int]]) -> None:
        """Start a round of (disk, offset, length) writes: verify, then note the regions.

        A region the round overwrites whole is not verified (its old bytes do not
        matter). A damaged region is marked (never raised): the round goes on, and the
        region stays refused until writes cover it whole, which a resync does.
        """
        self.check()
        self._images.clear()  # a round that failed before finish() leaves none behind
        touched = _touched_regions(writes)
        for disk, regions in sorted(touched.items()):
            whole = _whole_regions(writes, disk, self._sums[disk])
            for region in sorted(regions - whole - self.damaged.get(disk, set())):
                try:
                    data = self._sums[disk].read_verified(self._fds[disk], region)
                except ReplicaCorruptError as exc:
                    self.mark_damaged(disk, region, exc)
                    continue
                if len(self._images) < MAX_IMAGED_REGIONS:
                    self._images[(disk, region)] = bytearray(data)
            for region in sorted(whole - self.damaged.get(disk, set())):
                if len(self._images) < MAX_IMAGED_REGIONS:  # every byte comes from a write
                    lo, hi = self._sums[disk].region_span(region)
                    self._images[(disk, region)] = bytearray(hi - lo)
        for disk, regions in sorted(touched.items()):
            text = "\n".join(str(r) for r in sorted(regions))
            with _full_disk(self.root):
                write_atomic(self._sums[disk].path + PENDING_SUFFIX, text.encode())
            self._touched.setdefault(disk, set()).update(regions)
        self._writes = writes

    def mark_damaged(self, disk: int, region: int, exc: ReplicaCorruptError) -> None:
        """Record durably that a region is damaged (reads refuse it, a resync repairs it)."""
        with self._lock:
            if region in self.damaged.setdefault(disk, set()):
                return
            log.error("%s; marked damaged until a resync from the source rewrites it", exc)
            self._sums[disk].store({region: DAMAGED})
            self._sums[disk].sync()
            self.damaged[disk].add(region)

    def take_damage_reason(self) -> str:
        """Why the source must resync for damaged regions not yet announced; "" if none.

        Each damaged region is announced once (per process): the source's resync that
        follows compares every region and sends the damaged ones again, so asking at
        every handshake would only loop.
        """
        fresh = {
            d: sorted(r - self._announced.get(d, set())) for d, r in sorted(self.damaged.items())
        }
        parts = [
            f"VM {self._sums[d].vm_id!r} disk {self._sums[d].disk} regions {r[:8]}"
            for d, r in fresh.items()
            if r
        ]
        for d, r in fresh.items():
            self._announced.setdefault(d, set()).update(r)
        return ("base replica damaged, a resync rewrites it: " + "; ".join(parts)) if parts else ""

    def write(self, disk: int, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` of group disk ``disk`` (not yet durable)."""
        with _full_disk(self.root):
            if os.pwrite(self._fds[disk], data, offset) != len(data):
                raise OSError(errno.ENOSPC, "short write")
        regions = regions_of(offset, len(data))
        self._touched.setdefault(disk, set()).update(regions)
        for region in regions:
            image = self._images.get((disk, region))
            if image is not None:  # the same bytes as the extent's region now
                lo = region * REGION_BYTES
                a, b = max(offset, lo), min(offset + len(data), lo + len(image))
                image[a - lo : b - lo] = data[a - offset : b - offset]

    def sync(self) -> None:
        """Store the touched regions' new sums; make extents and sums durable."""
        with _full_disk(self.root):
            for disk, regions in sorted(self._touched.items()):
                fd = self._fds[disk]
                regions = regions - self._still_damaged(disk, regions)
                keys = [r for r in regions if (disk, r) in self._images]
                images = {r: self._images.pop((disk, r)) for r in keys}
                self._sums[disk].store({r: region_sum(b) for r, b in images.items()})
                _store_sums(fd, self._sums[disk], regions - images.keys())
                os.fdatasync(fd)
                self._sums[disk].sync()
            self._images.clear()

    def _still_damaged(self, disk: int, regions: set[int]) -> set[int]:
        """Damaged regions among ``regions`` that writes so far have not covered whole."""
        out = set()
        for region in regions & self.damaged.get(disk, set()):
            lo, hi = self._sums[disk].region_span(region)
            spans = self._coverage.setdefault((disk, region), [])
            spans.extend(
                (max(o, lo), min(o + n, hi))
                for d, o, n in self._writes
                if d == disk and o < hi and o + n > lo
            )
            self._coverage[(disk, region)] = spans = _merged(spans)
            if spans and spans[0][0] <= lo and spans[0][1] >= hi:
                del self._coverage[(disk, region)]
                self.damaged[disk].discard(region)
                log.warning("replica %s: region %d rewritten whole by the source: repaired",
                            self._sums[disk].path, region)  # fmt: skip
            else:
                out.add(region)
        return out

    def finish(self) -> None:
        """The round is recorded (applied seq stored): drop its pending notes."""
        for disk in sorted(self._touched):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._sums[disk].path + PENDING_SUFFIX)
        self._touched.clear()
        self._writes = []
        self._images.clear()

    def base(self, disk: int) -> VerifiedExtent:
        """A reader of one base extent that checks every region it reads."""
        for p in self.problems:
            if (p.vm_id, p.disk) == (self._sums[disk].vm_id, self._sums[disk].disk):
                raise p
        return VerifiedExtent(self._fds[disk], self._sums[disk], self._on_damage(disk))

    def _on_damage(self, disk: int) -> Callable[[ReplicaCorruptError], None]:
        def mark(exc: ReplicaCorruptError) -> None:
            if exc.region is not None:
                self.mark_damaged(disk, exc.region, exc)

        return mark

    def scrub_disk(self, disk: int) -> Iterator[tuple[int, ReplicaCorruptError | None]]:
        """Verify every region of a disk that holds data; yield (region, damage or None)."""
        fd, sums = self._fds[disk], self._sums[disk]
        base = VerifiedExtent(fd, sums)
        seen: set[int] = set()
        for lo, hi in base.data_regions(0, sums.capacity_bytes):
            for region in regions_of(lo, hi - lo):
                if region in seen:
                    continue
                seen.add(region)
                try:
                    sums.read_verified(fd, region)
                except ReplicaCorruptError as exc:
                    yield region, exc
                    continue
                yield region, None

    def disks(self) -> int:
        """How many disks the set has."""
        return len(self._fds)

    def close(self) -> None:
        """Close the extents and their sums."""
        for fd in self._fds:
            if fd >= 0:
                os.close(fd)
        for sums in self._sums:
            sums.close()
        self._fds.clear()


def _touched_regions(writes: list[tuple[int, int, int]]) -> dict[int, set[int]]:
    """Regions each disk's writes touch."""
    out: dict[int, set[int]] = {}
    for disk, offset, length in writes:
        out.setdefault(disk, set()).update(regions_of(offset, length))
    return out


def _whole_regions(writes: list[tuple[int, int, int]], disk: int, sums: ExtentSums) -> set[int]:
    """Regions of ``disk`` that the writes together cover from end to end."""
    spans = _merged([(o, o + n) for d, o, n in writes if d == disk])
    out: set[int] = set()
    for lo, hi in spans:
        for region in regions_of(lo, hi - lo):
            r_lo, r_hi = sums.region_span(region)
            if lo <= r_lo and r_hi <= hi:
                out.add(region)
    return out


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of [lo, hi) spans, sorted, touching ones joined, empty ones dropped."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        elif lo < hi:
            out.append((lo, hi))
    return out


def _store_sums(fd: int, sums: ExtentSums, regions: set[int]) -> None:
    """Recompute the sums of some regions from the extent and store them."""
    new = {}
    for region in regions:
        lo, hi = sums.region_span(region)
        new[region] = region_sum(os.pread(fd, hi - lo, lo).ljust(hi - lo, b"\0"))
    sums.store(new)


class VerifiedExtent:
    """Reads of one base extent, each region checked against its sums (for images)."""

    def __init__(
        self, fd: int, sums: ExtentSums,
        on_damage: Callable[[ReplicaCorruptError], None] | None = None,
    ) -> None:  # fmt: skip
        self._fd, self._sums, self._on_damage = fd, sums, on_damage
        self._cached: tuple[int, bytes] = (-1, b"")

    def data_regions(self, offset: int, end: int) -> list[tuple[int, int]]:
        """[lo, hi) spans in [offset, end) that hold data: on disk or by their sums."""
        spans = list(_seek_data(self._fd, offset, end))
        first, last = offset // REGION_BYTES, max(offset, end - 1) // REGION_BYTES
        for region in self._sums.nonzero_regions(first, last):
            lo, hi = self._sums.region_span(region)
            spans.append((max(lo, offset), min(hi, end)))
        return _merged(spans)

    def read(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of the extent, every region they touch verified."""
        parts = []
        for region in regions_of(start, stop - start):
            if self._cached[0] != region:
                try:
                    self._cached = (region, self._sums.read_verified(self._fd, region))
                except ReplicaCorruptError as exc:
                    if self._on_damage is not None:
                        self._on_damage(exc)
                    raise
            lo = region * REGION_BYTES
            data = self._cached[1]
            parts.append(data[max(start - lo, 0) : min(stop - lo, len(data))])
        return b"".join(parts)


def _seek_data(fd: int, offset: int, end: int) -> Iterator[tuple[int, int]]:
    """[lo, hi) regions in [offset, end) where the extent holds data (SEEK_DATA)."""
    pos = offset
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            return
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, hole
        pos = hole
