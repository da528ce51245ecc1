"""The ``.vmx`` of a replica VM: enough for ESXi (and vcsim) to register it.

Pure text. ``uuid.action = "keep"`` answers ESXi's "moved or copied?" question so a
registered replica powers on without a prompt. Without a :class:`VmxLayout` the VM gets
the defaults (otherlinux-64, BIOS, one LSI Logic controller); with one (built from the
protected VM's captured hardware) it gets that VM's firmware, controllers, disk slots,
NICs, MACs and UUIDs.
"""

from __future__ import annotations

from dataclasses import dataclass

_SCSI_DEV = {
    "lsilogic": "lsilogic",
    "lsisas": "lsisas1068",
    "pvscsi": "pvscsi",
    "buslogic": "buslogic",
}
_PREFIX = {"sata": "sata", "nvme": "nvme", "ide": "ide"}


@dataclass(frozen=True)
class VmxDisk:
    """A disk file on a controller slot (``kind`` as in cdp.failover.hardware)."""

    file: str
    controller: str
    bus: int
    unit: int


@dataclass(frozen=True)
class VmxNic:
    """A NIC: adapter, network name, static MAC ("" for a generated one)."""

    adapter: str
    network: str
    mac: str = ""


@dataclass(frozen=True)
class VmxLayout:
    """The protected VM's hardware, as the .vmx writes it."""

    guest_os: str
    firmware: str
    secure_boot: bool
    cores_per_socket: int
    hw_version: int
    bios_uuid: str
    controllers: tuple[tuple[str, int, int | None], ...]
    """(kind, bus, PCI slot or None)."""
    disks: tuple[VmxDisk, ...]
    nics: tuple[VmxNic, ...]


def format_vmx(
    vm_id: str,
    disk_files: list[str],
    memory_mb: int = 1024,
    cpus: int = 1,
    layout: VmxLayout | None = None,
) -> str:
    """A VMX with the given disks: the captured ``layout``, or hw 14 on one LSI Logic."""
    version = layout.hw_version if layout else 14
    lines = [
        '.encoding = "UTF-8"',
        'config.version = "8"',
        f'virtualHW.version = "{version}"',
        f'displayName = "{vm_id}"',
        f'guestOS = "{layout.guest_os if layout else "otherlinux-64"}"',
        f'memSize = "{memory_mb}"',
        f'numvcpus = "{cpus}"',
        'uuid.action = "keep"',
        f'nvram = "{vm_id}.nvram"',
    ]
    if layout is None:
        lines += ['scsi0.present = "TRUE"', 'scsi0.virtualDev = "lsilogic"']
        for n, name in enumerate(disk_files):
            unit = n if n < 7 else n + 1  # unit 7 is the controller itself
            lines += _disk_lines(f"scsi0:{unit}", name, "scsi")
        return "\n".join(lines) + "\n"
    return "\n".join(lines + _layout_lines(layout)) + "\n"


def _layout_lines(layout: VmxLayout) -> list[str]:
    lines = [f'cpuid.coresPerSocket = "{layout.cores_per_socket}"']
    if layout.firmware == "efi":
        lines.append('firmware = "efi"')
        if layout.secure_boot:
            lines.append('uefi.secureBoot.enabled = "TRUE"')
    if layout.bios_uuid:
        lines.append(f'uuid.bios = "{_vmx_uuid(layout.bios_uuid)}"')
    for kind, bus, slot in layout.controllers:
        prefix = f"{_PREFIX.get(kind, 'scsi')}{bus}"
        lines.append(f'{prefix}.present = "TRUE"')
        if kind in _SCSI_DEV:
            lines.append(f'{prefix}.virtualDev = "{_SCSI_DEV[kind]}"')
        if slot is not None:
            lines.append(f'{prefix}.pciSlotNumber = "{slot}"')
    for d in layout.disks:
        prefix = f"{_PREFIX.get(d.controller, 'scsi')}{d.bus}:{d.unit}"
        lines += _disk_lines(prefix, d.file, "scsi" if d.controller in _SCSI_DEV else "ata")
    for i, nic in enumerate(layout.nics):
        lines += [
            f'ethernet{i}.present = "TRUE"',
            f'ethernet{i}.virtualDev = "{nic.adapter}"',
            f'ethernet{i}.networkName = "{nic.network}"',
        ]
        if nic.mac:
            lines += [f'ethernet{i}.addressType = "static"', f'ethernet{i}.address = "{nic.mac}"']
        else:
            lines.append(f'ethernet{i}.addressType = "generated"')
    return lines


def _disk_lines(prefix: str, name: str, kind: str) -> list[str]:
    return [
        f'{prefix}.present = "TRUE"',
        f'{prefix}.fileName = "{name}"',
        f'{prefix}.deviceType = "{kind}-hardDisk"',
    ]


def _vmx_uuid(text: str) -> str:
    """``42 1e 2d 5c 5b 21 4e 6c-8f 5d 46 06 5d 9c 3a 41`` from a dashed UUID."""
    h = text.replace("-", "").lower()
    pairs = [h[i : i + 2] for i in range(0, 32, 2)]
    return " ".join(pairs[:8]) + "-" + " ".join(pairs[8:])
