"""Simulated VMs and hosts: disks behind a filter chain."""

from __future__ import annotations

import os
import time

from cdp.group import DiskSpec, GroupSpec, VmSpec
from sim.disk import VirtualDisk
from sim.filter import FilterChain, Io, IoFilter


class SimVM:
    """A VM with several disks whose I/O goes through a filter chain."""

    def __init__(self, folder: str, vm_id: str, disk_bytes: list[int]) -> None:
        self.vm_id = vm_id
        self.folder = os.path.join(folder, vm_id)
        self.disks = [VirtualDisk(self.folder, vm_id, n, c) for n, c in enumerate(disk_bytes)]
        self.chain = FilterChain(self.disks, [])

    def attach(self, f: IoFilter) -> None:
        """Add a filter at the end of the chain (closest to the disk)."""
        self.chain.filters.append(f)

    def spec(self) -> VmSpec:
        """The VM as a group declares it."""
        return VmSpec(
            self.vm_id, tuple(DiskSpec(str(n), d.capacity_bytes) for n, d in enumerate(self.disks))
        )

    async def write(self, disk: int, offset: int, data: bytes) -> None:
        """A guest write."""
        await self.chain.submit(Io(self.vm_id, disk, offset, len(data), time.time_ns(), data))

    async def read(self, disk: int, offset: int, length: int) -> bytes:
        """A guest read."""
        io = await self.chain.submit(
            Io(self.vm_id, disk, offset, length, time.time_ns(), is_write=False)
        )
        return io.data

    def close(self) -> None:
        """Close the disks."""
        for d in self.disks:
            d.close()


class SimHost:
    """A protected ESXi host with several VMs."""

    def __init__(self, host_id: str, vms: list[SimVM]) -> None:
        self.host_id = host_id
        self.vms = vms

    def group_spec(self, group_id: str) -> GroupSpec:
        """All VMs of this host as one consistency group."""
        return GroupSpec(group_id, tuple(vm.spec() for vm in self.vms))

    def disk_numbers(self) -> dict[tuple[str, int], int]:
        """(vm_id, disk index) -> disk number in the group, in declaration order."""
        out: dict[tuple[str, int], int] = {}
        for vm in self.vms:
            for n in range(len(vm.disks)):
                out[(vm.vm_id, n)] = len(out)
        return out

    def close(self) -> None:
        """Close every VM."""
        for vm in self.vms:
            vm.close()
