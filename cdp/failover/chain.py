"""Copy-free recovered disks: a VMDK chain over the base replica extent.

A recovered disk is three layers, bottom up (see docs/FAILOVER.md, "Copy-free recovery"):

1. the base replica ``<vm>/<vm>_<n>.vmdk`` (flat extent), owned by the target and held
   at or before the point (``HoldBase``) while the chain exists; opened read-only;
2. ``<name>_<n>-tail.vmdk``: a ``vmfsSparse`` (COWD) delta holding only the regions the
   journal records between the base and the point wrote (``ReadImage`` with
   ``journal_tail_only``); never written after it is built;
3. ``<name>_<n>.vmdk``: an empty ``vmfsSparse`` delta that takes the recovered VM's
   writes (the disk attached to the VM).

Bytes written before power-on: the journal tail plus grain metadata (4 bytes per
512-byte sector of tail data, and 4 bytes per 2 MiB of capacity for the grain
directories), never the data the base holds. Grain tables are allocated as file holes,
so a writer (ESXi, qemu) fills them in place. The top descriptor is written last: its
presence means the chain is complete; a crash before it leaves ``*.tmp`` files that the
next run overwrites. This module never imports grpc (the client is passed in).
"""

from __future__ import annotations

import array
import asyncio
import os
import re
import struct
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from cdp import fsutil
from cdp.errors import InvalidInputError
from cdp.failover.export import point_facts
from cdp.failover.replication import ImageFacts
from cdp.fsutil import fsync_dir, write_atomic
from cdp.group import SECTOR

if TYPE_CHECKING:
    from cdp.rpc.client import ReplicationClient

GT_ENTRIES = 4096
"""Grain table entries (4-byte sector numbers) per table; one table maps 2 MiB."""
GRAIN_SECTORS = 1
"""Sectors per grain in a vmfsSparse (COWD) extent."""
HEADER_SECTORS = 4
"""The COWD header takes the first 2 KiB; the grain directory follows."""
TOP_SUFFIX = "-flat"
"""Extent name suffix of the top delta. Its content is a sparse delta (the descriptor
says so), but vcsim (govmomi 0.24) attaches a disk only if ``<name>-flat.vmdk`` exists
beside ``<name>.vmdk``; ESXi and qemu go by the descriptor, not the name."""
FLUSH_BYTES = 4 * 2**20
"""Tail data gathered before one write of it (in a worker thread)."""
DESCRIPTOR_BYTES = 512
"""An upper bound of a delta descriptor's size (they are ~330 bytes)."""
_GT_SECTORS = GT_ENTRIES * 4 // SECTOR
_CID = re.compile(r"^CID=([0-9a-fA-F]{8})\s*$", re.MULTILINE)


def sparse_layout(capacity_bytes: int) -> tuple[int, int]:
    """(grain directory entries, first data sector) of a COWD extent of that capacity."""
    sectors = capacity_bytes // SECTOR
    entries = -(-sectors // (GT_ENTRIES * GRAIN_SECTORS))
    gd_sectors = -(-entries * 4 // SECTOR)
    return entries, HEADER_SECTORS + gd_sectors + entries * _GT_SECTORS


def chain_bytes(capacity_bytes: int, records: int, record_bytes: int) -> int:
    """Bytes :func:`build_chain` writes at most for one disk (the estimate's figure).

    The tail's data (at most the capacity), one grain table per tail record at most (at
    most one per 2 MiB), and for both layers a header, a grain directory and a
    descriptor. Independent of the data the base holds.
    """
    entries, _ = sparse_layout(capacity_bytes)
    tables = min(entries, max(records, 0))
    directory = entries * 4
    layers = 2 * (HEADER_SECTORS * SECTOR + directory + DESCRIPTOR_BYTES)
    return min(record_bytes, capacity_bytes) + tables * GT_ENTRIES * 4 + layers


async def write_sparse(
    path: str, capacity_bytes: int, pieces: AsyncIterator[tuple[int, bytes]]
) -> int:
    """Write a COWD extent holding ``pieces`` (sector-aligned, offset order); return bytes.

    The file I/O runs in a worker thread (data in batches of FLUSH_BYTES), never on the
    event loop, so that the disks of one phase are built side by side.
    """
    entries, first_data = sparse_layout(capacity_bytes)
    tables: dict[int, array.array[int]] = {}
    pending, pending_at = bytearray(), first_data
    written, next_sector = 0, first_data
    fd = fsutil.create_file(path, os.O_RDWR | os.O_TRUNC)
    try:
        async for offset, data in pieces:
            if offset % SECTOR or len(data) % SECTOR:
                raise InvalidInputError("offset_bytes", f"piece at {offset} not sector-aligned")
            pending += data
            for i in range(len(data) // SECTOR):
                s = offset // SECTOR + i
                t = tables.setdefault(s // GT_ENTRIES, array.array("I", bytes(GT_ENTRIES * 4)))
                t[s % GT_ENTRIES] = next_sector + i
            next_sector += len(data) // SECTOR
            if len(pending) >= FLUSH_BYTES:
                batch, at = bytes(pending), pending_at * SECTOR
                written += await asyncio.to_thread(os.pwrite, fd, batch, at)
                pending.clear()
                pending_at = next_sector
        tail = (bytes(pending), pending_at)
        written += await asyncio.to_thread(_finish, fd, capacity_bytes, tail, tables, next_sector)
    finally:
        os.close(fd)
    return written


def _finish(
    fd: int, capacity_bytes: int, tail: tuple[bytes, int], tables: dict[int, array.array[int]],
    next_sector: int,
) -> int:  # fmt: skip
    """The last data, the grain tables, directory and header of a COWD extent; fsync."""
    entries, _ = sparse_layout(capacity_bytes)
    gd_at = HEADER_SECTORS + -(-entries * 4 // SECTOR)
    written = os.pwrite(fd, tail[0], tail[1] * SECTOR) if tail[0] else 0
    for n, table in sorted(tables.items()):
        written += os.pwrite(fd, table.tobytes(), (gd_at + n * _GT_SECTORS) * SECTOR)
    directory = array.array("I", (gd_at + n * _GT_SECTORS for n in range(entries)))
    written += os.pwrite(fd, directory.tobytes(), HEADER_SECTORS * SECTOR)
    os.ftruncate(fd, next_sector * SECTOR)  # tables never written stay holes (zeros)
    header = b"COWD" + struct.pack(
        "<7I", 1, 3, capacity_bytes // SECTOR, GRAIN_SECTORS, HEADER_SECTORS, entries,
        next_sector,
    )  # fmt: skip
    written += os.pwrite(fd, header.ljust(HEADER_SECTORS * SECTOR, b"\0"), 0)
    os.fsync(fd)
    return written


def format_delta_descriptor(
    capacity_bytes: int, extent_name: str, parent_hint: str, parent_cid: str, cid: str
) -> str:
    """Descriptor of a vmfsSparse delta over ``parent_hint`` (relative to its folder)."""
    return (
        "# Disk DescriptorFile\n"
        "version=1\n"
        'encoding="UTF-8"\n'
        f"CID={cid}\n"
        f"parentCID={parent_cid}\n"
        'createType="vmfsSparse"\n'
        f'parentFileNameHint="{parent_hint}"\n'
        "\n# Extent description\n"
        f'RW {capacity_bytes // SECTOR} VMFSSPARSE "{extent_name}"\n'
        "\n# The Disk Data Base\n#DDB\n\n"
        'ddb.adapterType = "lsilogic"\n'
        'ddb.virtualHWVersion = "14"\n'
    )


def descriptor_cid(text: str, path: str) -> str:
    """The CID of a descriptor (8 hex digits)."""
    found = _CID.search(text)
    if found is None:
        raise InvalidInputError(path, "VMDK descriptor without a CID line")
    return found.group(1).lower()


async def build_chain(
    client: ReplicationClient, group: str, vm: str, disk: int, at: str, folder: str, name: str
) -> tuple[ImageFacts, int]:
    """Build disk ``disk`` of ``vm`` at ``at`` as a chain in ``folder``; (plan, bytes written).

    The base hold must already be in place (the caller placed it at ``at``).
    """
    base_desc = os.path.join(os.path.dirname(folder), vm, f"{vm}_{disk}.vmdk")
    with open(base_desc, encoding="utf-8") as f:
        base_cid = descriptor_cid(f.read(), base_desc)
    stream = client.read_image(group, vm, disk, at, tail_only=True)
    plan = (await anext(stream)).plan
    facts = ImageFacts(
        point=point_facts(plan.point), base_seq=plan.base_seq, records=plan.records,
        record_bytes=plan.record_bytes, capacity_bytes=plan.capacity_bytes,
    )  # fmt: skip
    cap, stem = plan.capacity_bytes, f"{name}_{disk}"

    async def pieces() -> AsyncIterator[tuple[int, bytes]]:
        async for msg in stream:
            yield msg.offset_bytes, msg.data

    async def none() -> AsyncIterator[tuple[int, bytes]]:
        empty: tuple[tuple[int, bytes], ...] = ()
        for piece in empty:
            yield piece

    tail_cid, top_cid = (
        f"{plan.point.seq & 0xFFFFFFF:08x}",
        f"{(plan.base_seq + 1) & 0xFFFFFFF:08x}",
    )
    written = await _layer(
        f"{folder}/{stem}-tail", "-delta", cap, pieces(), f"../{vm}/{vm}_{disk}.vmdk", base_cid,
        tail_cid,
    )  # fmt: skip
    written += await _layer(
        f"{folder}/{stem}", TOP_SUFFIX, cap, none(), f"{stem}-tail.vmdk", tail_cid, top_cid
    )
    await asyncio.to_thread(fsync_dir, folder)
    return facts, written


async def _layer(
    stem: str, suffix: str, cap: int, pieces: AsyncIterator[tuple[int, bytes]], parent: str,
    parent_cid: str, cid: str,
) -> int:  # fmt: skip
    """One delta: extent ``<stem><suffix>.vmdk`` (via a .tmp), then descriptor ``<stem>.vmdk``."""
    extent = f"{stem}{suffix}.vmdk"
    written = await write_sparse(extent + ".tmp", cap, pieces)
    await asyncio.to_thread(os.replace, extent + ".tmp", extent)
    text = format_delta_descriptor(cap, os.path.basename(extent), parent, parent_cid, cid)
    await asyncio.to_thread(write_atomic, f"{stem}.vmdk", text.encode())
    return written + len(text)
