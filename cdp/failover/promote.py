"""Promotion: a committed copy-free failover's disks become standalone flat disks.

After ``commit`` of a live failover made with ``recovery.disks: chain``, each recovered
disk is still a vmfsSparse chain over the target's base replica, which stays held
(``HoldBase``) for as long as the chain exists. :func:`promote` (``cdp failover promote``)
consolidates every chain of the plan's committed live failover into a flat disk in the
same place, then lifts that VM's hold, so the target's applier moves on again.

Per disk, resumable from the files alone (``<stem>`` = ``<vm>-dr/<vm>_<n>``):

1. the chain's data ranges (the base's data regions and the deltas' grains) are read
   (:mod:`cdp.failover.chainread`) into ``<stem>-flat.vmdk.promoted`` (written as
   ``.tmp``, the rest left as holes, fsynced, renamed; O(data held), not O(disk)), and the flat
   descriptor is written to ``<stem>.vmdk.promoted``; the chain is untouched so far;
2. the switch: the data file replaces the top delta's extent ``<stem>-flat.vmdk``, then
   the descriptor replaces ``<stem>.vmdk`` (a crash between the two renames is finished
   by the next run: ``<stem>.vmdk.promoted`` still exists);
3. the tail delta files are removed.

The VM must not run while its disks are consolidated (a delta that a running VM writes
cannot be copied consistently from outside ESXi): a powered-on VM is refused with a hint.
This module never imports grpc or pyVmomi (the collaborators are passed in).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

from cdp.errors import PreconditionError
from cdp.failover import steps as st
from cdp.failover.chainread import Image, is_chain, open_image
from cdp.failover.errors import OperationStateError
from cdp.failover.records import Operation
from cdp.failover.replication import Replication
from cdp.failover.steplog import COMMITTED, OperationLog
from cdp.failover.vcenter import VCenter
from cdp.fsutil import fsync_dir, write_atomic
from cdp.vmdk import format_descriptor

CHUNK_BYTES = 4 * 2**20
"""Bytes read through the chain and written per call while consolidating."""
PENDING = ".promoted"
"""Suffix of a consolidated file not yet switched in."""


def holder(vm: str) -> str:
    """The base hold a live failover's VM goes by (as placed by the export step)."""
    return f"failover/{st.MODE_LIVE}/{vm}"


def committed_failover(log: OperationLog) -> tuple[str, Operation]:
    """The plan's newest finished live failover, which must be committed.

    Tests archived since (a nightly ``verify``) do not count: they change no disk.
    """
    plan = os.path.basename(log.folder)
    active = log.load_op()
    if active is not None:
        raise OperationStateError(
            f"a {active.operation} operation of plan {plan!r} is {active.status}",
            hint="promote follows `cdp failover commit`",
        )
    history = os.path.join(log.folder, "history")
    live = f"-{st.MODE_LIVE}-"
    names = sorted(n for n in os.listdir(history) if live in n) if os.path.isdir(history) else []
    newest = os.path.join(history, names[-1]) if names else ""
    if not newest.endswith(f"-{st.MODE_LIVE}-{COMMITTED}.json"):
        raise OperationStateError(
            f"plan {plan!r} has no committed live failover to promote "
            f"(last finished: {os.path.basename(newest) or 'none'})",
            hint="promote follows `cdp failover run` and `commit`",
        )
    with open(newest, encoding="utf-8") as f:
        return newest, Operation.from_json(json.load(f))


async def promote(
    log: OperationLog, connect: Callable[[], VCenter], replication: Replication
) -> dict[str, Any]:
    """Consolidate every chain of the committed live failover, then lift its holds."""
    archived, op = committed_failover(log)
    vc = await asyncio.to_thread(connect)
    rows = []
    for vm in op.vms:
        found = await asyncio.to_thread(vc.find_vm, op.datacenter, vm.vmx_path)
        disks = [os.path.join(vm.folder, st.disk_file(vm.vm, st.MODE_LIVE, n))
                 for n in range(len(vm.hardware.disks))]  # fmt: skip
        chains = [d for d in disks if _needs_work(d)]
        if chains and found is not None and found.power_state == "poweredOn":
            raise PreconditionError(
                f"{vm.name} runs on its copy-free disks ({found.path}); promote "
                "consolidates them offline",
                hint="power it off for the promotion (minutes per 100 GiB held), or "
                "Storage vMotion it off the cdp datastore (`cdp failover relocate`), which "
                "consolidates online; then run promote again to lift the base holds",
            )
        t0, written = time.monotonic(), 0
        for d in chains:
            written += await asyncio.to_thread(consolidate, d)
        released = await replication.release_base(vm.group, holder(vm.vm))
        rows.append({"vm": vm.vm, "disks": len(disks), "promoted": len(chains),
                     "bytes_written": written, "seconds": round(time.monotonic() - t0, 3),
                     "released": released})  # fmt: skip
    return {"failover_log": archived, "vms": rows}


def _needs_work(descriptor: str) -> bool:
    """True if the disk is still a chain, or a promotion of it is half switched."""
    return os.path.exists(descriptor + PENDING) or is_chain(descriptor)


def consolidate(descriptor: str) -> int:
    """Make the disk at ``descriptor`` a flat disk holding what its chain reads; bytes written.

    Safe to run again after a crash at any point (see the module docstring).
    """
    folder = os.path.dirname(descriptor)
    stem = descriptor.removesuffix(".vmdk")
    extent = f"{stem}-flat.vmdk"
    written = 0
    if not os.path.exists(descriptor + PENDING):
        if not is_chain(descriptor):  # flat already (a run before finished)
            return 0
        image = open_image(descriptor)
        try:
            written = _copy(image, extent + PENDING)
            text = format_descriptor(image.capacity_bytes, os.path.basename(extent))
        finally:
            image.close()
        write_atomic(descriptor + PENDING, text.encode())
    if os.path.exists(extent + PENDING):
        os.replace(extent + PENDING, extent)
    os.replace(descriptor + PENDING, descriptor)
    for name in (f"{stem}-tail.vmdk", f"{stem}-tail-delta.vmdk"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
    fsync_dir(folder)
    return written


def _copy(image: Image, dest: str) -> int:
    """Write the image to a flat file ``dest``; return the bytes written.

    Only its data ranges are read, and chunks of zeros in them stay holes too.
    """
    written = 0
    fd = os.open(dest + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        for start, length in image.data_ranges():
            for at in range(start, start + length, CHUNK_BYTES):
                data = image.read(at, min(CHUNK_BYTES, start + length - at))
                if data.count(0) != len(data):
                    written += os.pwrite(fd, data, at)
        os.ftruncate(fd, image.capacity_bytes)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(dest + ".tmp", dest)
    return written
