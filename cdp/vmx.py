"""The ``.vmx`` of a replica VM: enough for ESXi (and vcsim) to register it.

Pure text. ``uuid.action = "keep"`` answers ESXi's "moved or copied?" question so a
registered replica powers on without a prompt.
"""

from __future__ import annotations


def format_vmx(vm_id: str, disk_files: list[str], memory_mb: int = 1024, cpus: int = 1) -> str:
    """A minimal hardware-version-14 VMX with the given disks on one LSI Logic controller."""
    lines = [
        '.encoding = "UTF-8"',
        'config.version = "8"',
        'virtualHW.version = "14"',
        f'displayName = "{vm_id}"',
        'guestOS = "otherlinux-64"',
        f'memSize = "{memory_mb}"',
        f'numvcpus = "{cpus}"',
        'uuid.action = "keep"',
        f'nvram = "{vm_id}.nvram"',
        'scsi0.present = "TRUE"',
        'scsi0.virtualDev = "lsilogic"',
    ]
    for n, name in enumerate(disk_files):
        unit = n if n < 7 else n + 1  # unit 7 is the controller itself
        lines += [
            f'scsi0:{unit}.present = "TRUE"',
            f'scsi0:{unit}.fileName = "{name}"',
            f'scsi0:{unit}.deviceType = "scsi-hardDisk"',
        ]
    return "\n".join(lines) + "\n"
