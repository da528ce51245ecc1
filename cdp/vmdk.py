"""VMDK descriptors for flat disks, the way ESXi writes them on VMFS.

A disk is a small text descriptor (``<vm>_<n>.vmdk``) naming a flat extent
(``<vm>_<n>-flat.vmdk``) that holds the raw bytes. ``qemu-img`` reads this layout, and
ESXi attaches it. Pure text: no I/O here.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass

from cdp.errors import InvalidInputError
from cdp.group import SECTOR

_EXTENT = re.compile(r'^RW (\d+) (VMFS|FLAT) "([^"]+)"', re.MULTILINE)


@dataclass(frozen=True)
class Descriptor:
    """What cdp needs of a flat-disk descriptor."""

    capacity_bytes: int
    extent_name: str


def format_descriptor(capacity_bytes: int, extent_name: str, disk_uuid: str = "") -> str:
    """Descriptor text of a flat disk of ``capacity_bytes`` stored in ``extent_name``."""
    sectors = capacity_bytes // SECTOR
    cylinders = max(1, min(sectors // (255 * 63), 65535))
    u = uuidlib.UUID(disk_uuid) if disk_uuid else uuidlib.uuid4()
    vmware_uuid = (
        " ".join(f"{b:02x}" for b in u.bytes[:8]) + "-" + " ".join(f"{b:02x}" for b in u.bytes[8:])
    )
    return (
        "# Disk DescriptorFile\n"
        "version=1\n"
        'encoding="UTF-8"\n'
        f"CID={u.int & 0xFFFFFFFF:08x}\n"
        "parentCID=ffffffff\n"
        'createType="vmfs"\n'
        "\n# Extent description\n"
        f'RW {sectors} VMFS "{extent_name}"\n'
        "\n# The Disk Data Base\n#DDB\n\n"
        'ddb.adapterType = "lsilogic"\n'
        f'ddb.geometry.cylinders = "{cylinders}"\n'
        'ddb.geometry.heads = "255"\n'
        'ddb.geometry.sectors = "63"\n'
        f'ddb.longContentID = "{u.hex}"\n'
        f'ddb.uuid = "{vmware_uuid}"\n'
        'ddb.virtualHWVersion = "14"\n'
    )


def parse_descriptor(text: str) -> Descriptor:
    """Capacity and extent name of a single-extent flat descriptor."""
    extents = _EXTENT.findall(text)
    if len(extents) != 1:
        raise InvalidInputError("vmdk", f"expected one RW VMFS/FLAT extent, found {len(extents)}")
    sectors, _, name = extents[0]
    return Descriptor(int(sectors) * SECTOR, name)
