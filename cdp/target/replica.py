"""Replica VMs on the recovery datastore: folder layout and the flat extents' bytes.

One folder per VM (DESIGN.md)::

    <vm>/<vm>.vmx  <vm>/<vm>.nvram  <vm>/vmware.log
    <vm>/<vm>_<n>.vmdk (descriptor)  <vm>/<vm>_<n>-flat.vmdk (extent, sparse)

Writes go to the extents with pwrite; :meth:`ReplicaSet.sync` makes them durable and
drops them from the page cache (random 4 KiB writes into cached large files cost
whole-folio write-back on this kernel, see DESIGN.md).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from cdp import naming
from cdp.errors import StorageFullError
from cdp.fsutil import write_atomic
from cdp.group import GroupSpec, VmSpec
from cdp.vmdk import format_descriptor
from cdp.vmx import format_vmx


def vm_folder(root: str, vm_id: str) -> str:
    """Folder of a replica VM under the replica root."""
    return os.path.join(root, vm_id)


def extent_path(root: str, vm_id: str, n: int) -> str:
    """Path of disk ``n``'s flat extent."""
    return os.path.join(root, vm_id, naming.format_disk_extent(vm_id, n))


def descriptor_path(root: str, vm_id: str, n: int) -> str:
    """Path of disk ``n``'s VMDK descriptor."""
    return os.path.join(root, vm_id, naming.format_disk_descriptor(vm_id, n))


def create_vm_layout(root: str, vm: VmSpec) -> None:
    """Create a VM folder with blank (sparse) disks; files already there are kept."""
    folder = vm_folder(root, vm.vm_id)
    os.makedirs(folder, exist_ok=True)
    names = [naming.format_disk_descriptor(vm.vm_id, n) for n in range(len(vm.disks))]
    for n, disk in enumerate(vm.disks):
        extent = extent_path(root, vm.vm_id, n)
        if not os.path.exists(extent):
            fd = os.open(extent, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            os.ftruncate(fd, disk.capacity_bytes)
            os.fsync(fd)
            os.close(fd)
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

    def __init__(self, root: str, spec: GroupSpec) -> None:
        self.root = root
        self._fds: list[int] = []
        for vm in spec.vms:
            create_vm_layout(root, vm)
        for ref in spec.disks():
            path = extent_path(root, ref.vm_id, ref.index_in_vm)
            self._fds.append(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        self._dirty: set[int] = set()

    def write(self, disk: int, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` of group disk ``disk`` (not yet durable)."""
        with _full_disk(self.root):
            if os.pwrite(self._fds[disk], data, offset) != len(data):
                raise OSError(errno.ENOSPC, "short write")
        self._dirty.add(disk)

    def sync(self) -> None:
        """Make every write durable and drop the written pages from the cache."""
        with _full_disk(self.root):
            for disk in sorted(self._dirty):
                os.fdatasync(self._fds[disk])
                os.posix_fadvise(self._fds[disk], 0, 0, os.POSIX_FADV_DONTNEED)
        self._dirty.clear()

    def close(self) -> None:
        """Close the extents."""
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
