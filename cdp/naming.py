"""Every file name cdp writes, with its format/parse pair.

Segment names are the group's first seq in the segment as 16 hex digits, so sorting by
name sorts by position. Replica names follow DESIGN.md: ``<vm>/<vm>_<n>.vmdk`` and
``<vm>/<vm>_<n>-flat.vmdk``.
"""

from __future__ import annotations

import re

SEGMENT_SUFFIX = ".seg"
_SEGMENT = re.compile(r"([0-9a-f]{16})\.seg")


def format_segment(first_seq: int) -> str:
    """File name of the segment whose first record has ``first_seq``."""
    return f"{first_seq:016x}{SEGMENT_SUFFIX}"


def parse_segment(name: str) -> int | None:
    """First seq of a segment file name, or None if the name is not a segment's."""
    m = _SEGMENT.fullmatch(name)
    return int(m.group(1), 16) if m else None


def format_disk_descriptor(vm_id: str, n: int) -> str:
    """File name of disk ``n``'s VMDK descriptor inside the VM folder."""
    return f"{vm_id}_{n}.vmdk"


def format_disk_extent(vm_id: str, n: int) -> str:
    """File name of disk ``n``'s flat extent inside the VM folder."""
    return f"{vm_id}_{n}-flat.vmdk"
