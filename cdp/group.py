"""Consistency groups, their VMs and disks: value types and name validation.

Pure values; imports nothing of the project but errors. A group's disks are numbered
0..n-1 in declaration order (VM by VM); that number is what journal records carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cdp.errors import InvalidInputError

SECTOR = 512
"""Bytes in a disk sector; offsets, lengths and capacities are multiples of it."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_DISK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:-]{0,63}")


def check_name(field: str, value: str, pattern: re.Pattern[str] = _NAME) -> str:
    """Return ``value`` if it is a safe name (also a safe file name), else raise."""
    if not pattern.fullmatch(value):
        raise InvalidInputError(
            field, f"{value!r} is not 1-64 characters of [A-Za-z0-9._-] (no leading . or -)"
        )
    return value


@dataclass(frozen=True, order=True)
class DiskSpec:
    """One virtual disk: its id within the VM and its capacity in bytes."""

    disk_id: str
    capacity_bytes: int


@dataclass(frozen=True)
class VmSpec:
    """One protected VM and its disks, in order."""

    vm_id: str
    disks: tuple[DiskSpec, ...]


@dataclass(frozen=True)
class DiskRef:
    """A disk as a group sees it: its number in the group, VM, index within the VM."""

    number: int
    vm_id: str
    index_in_vm: int
    spec: DiskSpec


@dataclass(frozen=True)
class GroupSpec:
    """A consistency group: VMs whose writes share one seq."""

    group_id: str
    vms: tuple[VmSpec, ...]

    def disks(self) -> tuple[DiskRef, ...]:
        """Every disk of the group, numbered in declaration order."""
        refs: list[DiskRef] = []
        for vm in self.vms:
            for i, disk in enumerate(vm.disks):
                refs.append(DiskRef(len(refs), vm.vm_id, i, disk))
        return tuple(refs)

    def to_json(self) -> dict[str, object]:
        """Plain-JSON form, for the catalog."""
        return {
            "group_id": self.group_id,
            "vms": [
                {"vm_id": vm.vm_id, "disks": [[d.disk_id, d.capacity_bytes] for d in vm.disks]}
                for vm in self.vms
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> GroupSpec:
        """Inverse of :meth:`to_json` (data written by cdp itself)."""
        vms = data["vms"]
        assert isinstance(vms, list)
        return cls(
            str(data["group_id"]),
            tuple(
                VmSpec(vm["vm_id"], tuple(DiskSpec(str(i), int(c)) for i, c in vm["disks"]))
                for vm in vms
            ),
        )


def validate_group(spec: GroupSpec) -> GroupSpec:
    """Check names, uniqueness and capacities; raise naming the bad field."""
    check_name("group_id", spec.group_id)
    if not spec.vms:
        raise InvalidInputError("vms", "a group needs at least one VM")
    seen_vms: set[str] = set()
    for v, vm in enumerate(spec.vms):
        check_name(f"vms[{v}].vm_id", vm.vm_id)
        if vm.vm_id in seen_vms:
            raise InvalidInputError(f"vms[{v}].vm_id", f"duplicate VM {vm.vm_id!r}")
        seen_vms.add(vm.vm_id)
        if not vm.disks:
            raise InvalidInputError(f"vms[{v}].disks", "a VM needs at least one disk")
        seen_disks: set[str] = set()
        for d, disk in enumerate(vm.disks):
            where = f"vms[{v}].disks[{d}]"
            check_name(f"{where}.disk_id", disk.disk_id, _DISK)
            if disk.disk_id in seen_disks:
                raise InvalidInputError(f"{where}.disk_id", f"duplicate disk {disk.disk_id!r}")
            seen_disks.add(disk.disk_id)
            cap = disk.capacity_bytes
            if cap <= 0 or cap % SECTOR or cap > 62 * 2**40:
                raise InvalidInputError(
                    f"{where}.capacity_bytes",
                    f"{cap} is not a positive multiple of {SECTOR} up to 62 TiB",
                )
    return spec
