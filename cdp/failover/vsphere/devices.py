"""Device specs: disks on their controllers, NICs, controllers of a captured profile."""

from __future__ import annotations

from typing import Any

from cdp.failover.errors import VSphereError
from cdp.failover.hardware import ControllerProfile
from cdp.failover.vcenter import Hardware
from cdp.failover.vsphere.api import vim

SCSI_UNITS = [u for u in range(16) if u != 7]
"""Unit numbers a SCSI disk may take (7 is the controller itself)."""
_ADAPTERS: dict[str, Any] = {
    "vmxnet3": vim.vm.device.VirtualVmxnet3,
    "e1000e": vim.vm.device.VirtualE1000e,
    "e1000": vim.vm.device.VirtualE1000,
}
_CONTROLLERS: dict[str, Any] = {
    "lsilogic": vim.vm.device.VirtualLsiLogicController,
    "lsisas": vim.vm.device.VirtualLsiLogicSASController,
    "pvscsi": vim.vm.device.ParaVirtualSCSIController,
    "buslogic": vim.vm.device.VirtualBusLogicController,
    "sata": vim.vm.device.VirtualAHCIController,
    "nvme": vim.vm.device.VirtualNVMEController,
    "ide": vim.vm.device.VirtualIDEController,
}


def _device_spec(op: str, device: Any) -> Any:
    return vim.vm.device.VirtualDeviceSpec(
        operation=getattr(vim.vm.device.VirtualDeviceSpec.Operation, op), device=device
    )


def _disk_changes(devices: list[Any], hardware: Hardware, changed: list[str]) -> list[Any]:
    """Specs adding the disks the VM lacks (and a SCSI controller if it has none)."""
    have = {d.backing.fileName for d in devices if isinstance(d, vim.vm.device.VirtualDisk)}
    missing = [d for d in hardware.disks if d.path not in have]
    if not missing:
        return []
    out = []
    controllers = [d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)]
    if controllers:
        controller_key = controllers[0].key
        used = {
            d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller_key
        }
    else:
        controller_key, used = -100, set()
        controller = vim.vm.device.VirtualLsiLogicController(
            key=-100, busNumber=0, sharedBus="noSharing"
        )
        out.append(_device_spec("add", controller))
    units = [u for u in SCSI_UNITS if u not in used]
    for n, disk in enumerate(missing):
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=disk.path, diskMode="persistent"
        )
        device = vim.vm.device.VirtualDisk(
            key=-101 - n,
            controllerKey=controller_key,
            unitNumber=units[n],
            capacityInKB=disk.capacity_bytes // 1024,
            capacityInBytes=disk.capacity_bytes,
            backing=backing,
        )
        out.append(_device_spec("add", device))
        changed.append(f"disk:{disk.path}")
    return out


def _same_backing(have: Any, want: Any) -> bool:
    if isinstance(want, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
        port = getattr(have, "port", None)
        return port is not None and port.portgroupKey == want.port.portgroupKey
    return bool(getattr(have, "deviceName", None) == want.deviceName)


# ---------------------------------------------------------------- hardware fidelity


def _kind_of(device: Any, table: dict[str, Any]) -> str:
    """The table key whose class ``device`` is exactly (most derived first)."""
    for kind, cls in table.items():
        if type(device) is cls:
            return kind
    return ""


def _controller_changes(
    devices: list[Any], wanted: tuple[ControllerProfile, ...], changed: list[str]
) -> tuple[list[Any], dict[tuple[str, int], int]]:
    """Specs adding the profile's controllers the VM lacks; (kind, bus) -> device key."""
    keys = {
        (_kind_of(d, _CONTROLLERS), int(d.busNumber)): d.key
        for d in devices
        if _kind_of(d, _CONTROLLERS)
    }
    out = []
    for i, c in enumerate(wanted):
        if (c.kind, c.bus) in keys:
            continue
        device = _CONTROLLERS[c.kind](key=-300 - i, busNumber=c.bus)
        if isinstance(device, vim.vm.device.VirtualSCSIController):
            device.sharedBus = "noSharing"
        if c.pci_slot is not None:
            device.slotInfo = vim.vm.device.VirtualDevice.PciBusSlotInfo(pciSlotNumber=c.pci_slot)
        keys[(c.kind, c.bus)] = device.key
        out.append(_device_spec("add", device))
        changed.append(f"controller:{c.kind}{c.bus}")
    return out, keys


def _slotted_disks(
    devices: list[Any], hardware: Hardware, keys: dict[tuple[str, int], int], changed: list[str]
) -> list[Any]:
    """Specs adding the missing disks, each on the controller slot the profile names."""
    assert hardware.profile is not None
    slots = hardware.profile.disks
    have = {d.backing.fileName for d in devices if isinstance(d, vim.vm.device.VirtualDisk)}
    out = []
    for n, disk in enumerate(hardware.disks):
        if disk.path in have:
            continue
        if n >= len(slots) or (slots[n].controller, slots[n].bus) not in keys:
            raise VSphereError(
                "HARDWARE",
                f"disk {n} ({disk.path}) has no slot in the captured hardware",
                hint="the protected VM's disks changed: run `cdp failover check` again",
            )
        slot = slots[n]
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=disk.path, diskMode="persistent"
        )
        out.append(
            _device_spec(
                "add",
                vim.vm.device.VirtualDisk(
                    key=-101 - n,
                    controllerKey=keys[(slot.controller, slot.bus)],
                    unitNumber=slot.unit,
                    capacityInKB=disk.capacity_bytes // 1024,
                    capacityInBytes=disk.capacity_bytes,
                    backing=backing,
                ),
            )
        )
        changed.append(f"disk:{disk.path}@{slot.controller}{slot.bus}:{slot.unit}")
    return out
