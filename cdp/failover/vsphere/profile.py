"""A VM's captured hardware profile, read from its vCenter properties, and config specs."""

from __future__ import annotations

from typing import Any

from cdp.failover.hardware import ControllerProfile, DiskProfile, NicProfile, VmProfile
from cdp.failover.vsphere.api import vim
from cdp.failover.vsphere.devices import _ADAPTERS, _CONTROLLERS, _kind_of

_CAPTURE_PATHS = [
    "config.guestId",
    "config.firmware",
    "config.bootOptions",
    "config.hardware",
    "config.uuid",
    "config.instanceUuid",
    "config.version",
    "guest.net",
]


def _profile(name: str, p: dict[str, Any], networks: dict[str, str]) -> VmProfile:
    """A VmProfile from a VM's config properties."""
    hw = p["config.hardware"]
    devices = list(hw.device)
    by_key = {d.key: d for d in devices}
    controllers = []
    for d in devices:
        kind = _kind_of(d, _CONTROLLERS)
        if kind and kind != "ide":
            slot = getattr(d.slotInfo, "pciSlotNumber", None) if d.slotInfo else None
            controllers.append(ControllerProfile(kind, int(d.busNumber), slot))
    disks = []
    for d in sorted(
        (d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)), key=lambda d: d.key
    ):
        ctl = by_key.get(d.controllerKey)
        kind = _kind_of(ctl, _CONTROLLERS) if ctl is not None else ""
        bus = int(ctl.busNumber) if ctl is not None else 0
        size = int(d.capacityInBytes or d.capacityInKB * 1024)
        disks.append(DiskProfile(kind, bus, int(d.unitNumber or 0), size))
    ips = {n.deviceConfigId: _ipv4(n.ipAddress) for n in p.get("guest.net") or []}
    nics = []
    for d in devices:
        adapter = _kind_of(d, _ADAPTERS)
        if adapter:
            net = getattr(d.backing, "deviceName", "") or ""
            port = getattr(d.backing, "port", None)
            if port is not None:
                net = networks.get(port.portgroupKey, port.portgroupKey)
            nics.append(NicProfile(adapter, str(d.macAddress or ""), net, ips.get(d.key, "")))
    boot = p.get("config.bootOptions")
    return VmProfile(
        name=name,
        guest_id=str(p.get("config.guestId") or ""),
        firmware=str(p.get("config.firmware") or "bios"),
        secure_boot=bool(getattr(boot, "efiSecureBootEnabled", False)),
        cpus=int(hw.numCPU),
        cores_per_socket=int(hw.numCoresPerSocket or 1),
        memory_mb=int(hw.memoryMB),
        bios_uuid=str(p.get("config.uuid") or ""),
        instance_uuid=str(p.get("config.instanceUuid") or ""),
        hw_version=str(p.get("config.version") or ""),
        controllers=tuple(controllers),
        disks=tuple(disks),
        nics=tuple(nics),
    )


def _ipv4(addresses: Any) -> str:
    """The first IPv4 address of a guest NIC's list ("" if none)."""
    return next((a for a in addresses or [] if a.count(".") == 3), "")


def _config_changes(p: dict[str, Any], profile: VmProfile, spec: Any, changed: list[str]) -> None:
    """Guest OS, firmware, secure boot and UUIDs that differ from the profile."""
    if profile.guest_id and p.get("config.guestId") != profile.guest_id:
        spec.guestId = profile.guest_id
        changed.append(f"guest_id={profile.guest_id}")
    if profile.firmware and p.get("config.firmware") != profile.firmware:
        spec.firmware = profile.firmware
        changed.append(f"firmware={profile.firmware}")
    boot = p.get("config.bootOptions")
    if bool(getattr(boot, "efiSecureBootEnabled", False)) != profile.secure_boot:
        spec.bootOptions = vim.vm.BootOptions(efiSecureBootEnabled=profile.secure_boot)
        changed.append(f"secure_boot={profile.secure_boot}")
    if profile.bios_uuid and p.get("config.uuid") != profile.bios_uuid:
        spec.uuid = profile.bios_uuid
        changed.append(f"bios_uuid={profile.bios_uuid}")
    if profile.instance_uuid and p.get("config.instanceUuid") != profile.instance_uuid:
        spec.instanceUuid = profile.instance_uuid
        changed.append(f"instance_uuid={profile.instance_uuid}")
