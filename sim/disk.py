"""A virtual disk backed by real files: a VMDK descriptor and its flat extent."""

from __future__ import annotations

import os

from cdp import naming
from cdp.fsutil import write_atomic
from cdp.vmdk import format_descriptor


class VirtualDisk:
    """A flat VMDK that the simulated guest reads and writes."""

    def __init__(self, folder: str, vm_id: str, n: int, capacity_bytes: int) -> None:
        os.makedirs(folder, exist_ok=True)
        self.capacity_bytes = capacity_bytes
        self.descriptor_path = os.path.join(folder, naming.format_disk_descriptor(vm_id, n))
        self.extent_path = os.path.join(folder, naming.format_disk_extent(vm_id, n))
        fresh = not os.path.exists(self.extent_path)
        self._fd = os.open(self.extent_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if fresh:
            os.ftruncate(self._fd, capacity_bytes)
        if not os.path.exists(self.descriptor_path):
            text = format_descriptor(capacity_bytes, os.path.basename(self.extent_path))
            write_atomic(self.descriptor_path, text.encode())

    def write(self, offset: int, data: bytes) -> None:
        """Write at a byte offset (page cache; the guest's own flushes are not modelled)."""
        os.pwrite(self._fd, data, offset)

    def read(self, offset: int, length: int) -> bytes:
        """Read at a byte offset."""
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        """Flush and close."""
        os.fsync(self._fd)
        os.close(self._fd)
