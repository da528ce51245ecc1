"""The reverse source: local disks streamed to a cdp target, and seeding.

Failback (:mod:`cdp.failover.failback`) protects the recovered VMs back toward the
original site. :func:`reverse_sync` is one hash-compared pass of their disks: a fresh
source in this process (a real product runs it on the DR host) with the ordinary journal
protocol, where every region is compared by hash with the target's state and only
differing regions travel. :func:`copy_sparse` seeds the original-site replica with the
original disks first, data regions only. A disk is read the way its guest sees it
(:func:`cdp.failover.chainread.open_image`): a flat extent, or a copy-free chain read
through its deltas down to the base. Nothing here knows about plans, vCenter or the
failback's step log.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from cdp.errors import RemoteError
from cdp.failover.chainread import Image, open_image
from cdp.fsutil import fsync_dir
from cdp.group import GroupSpec
from cdp.source.buffer import SourceBuffer
from cdp.source.protection import Protection, ProtectionConfig, RegionTransport
from cdp.source.shipper import Shipper, ShipperConfig, Transport

SOURCE_BUFFER_BYTES = 64 * 2**20
CONNECT_TIMEOUT_S = 30.0
COPY_CHUNK = 4 * 2**20
INITIAL_SYNC = ProtectionConfig(initial_sync=True)
"""Every region dirty at the start: compared by hash, sent only where it differs."""

T = TypeVar("T")


class ReverseTransport(Transport, RegionTransport, Protocol):
    """What the reverse source needs of the original-site target (a ReplicationClient)."""


async def reverse_sync(
    transport: ReverseTransport,
    spec: GroupSpec,
    paths: list[str],
    capacities: list[int],
    source_id: str,
    config: ProtectionConfig = INITIAL_SYNC,
) -> dict[str, Any]:
    """Stream ``paths`` (the group's disks in order) to the target: one hash-compared pass.

    Each path is a VMDK descriptor (its chain is followed) or a raw flat extent.

    A fresh source each time: a target that already holds the group answers
    ``resync_required`` at the handshake and the source rejoins after its durable seq.
    Returns regions compared and sent, bytes sent and the durable seq once drained.
    """
    images: list[Image] = []
    try:
        for p in paths:
            images.append(open_image(p))
    except BaseException:
        for image in images:
            image.close()
        raise
    buffer = SourceBuffer(SOURCE_BUFFER_BYTES)

    def read(disk: int, offset: int, length: int) -> bytes:
        return images[disk].read(offset, length)

    protection = Protection(buffer, capacities, read, _nothing, _nothing, config)
    shipper = Shipper(spec, buffer, transport, ShipperConfig(source_id, new_source=True))
    shipper.on_resync_required = protection.rejoin
    shipper.idle_check = protection.journaling_all
    task: asyncio.Future[None] = asyncio.ensure_future(shipper.run())
    t0 = time.monotonic()
    try:
        deadline = t0 + CONNECT_TIMEOUT_S
        while not shipper.connected:
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                exc = RemoteError(
                    "UNAVAILABLE", f"reverse source could not connect: {shipper.last_error}"
                )
                exc.hint = "is the original-site target running (plan key failback.target)?"
                raise exc
            await asyncio.sleep(0.01)
        await _guarded(protection.resync(shipper, transport), task)
        await _guarded(shipper.drain(), task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for image in images:
            image.close()
    s = protection.stats
    return {
        "regions": sum(-(-c // config.region_bytes) for c in capacities),
        "regions_compared": s.regions_compared,
        "regions_sent": s.regions_sent,
        "bytes_sent": s.bytes_sent,
        "region_bytes": config.region_bytes,
        "durable_seq": buffer.acked_seq,
        "seconds": round(time.monotonic() - t0, 3),
    }


def _nothing() -> None:
    """Hold/release of guest writes: the reverse source reads files nobody writes through it."""


async def _guarded(work: Awaitable[T], shipper: asyncio.Future[None]) -> T:
    """Await ``work``; fail at once if the shipper stopped for good."""
    job = asyncio.ensure_future(work)
    both: list[asyncio.Future[Any]] = [job, shipper]
    await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    if not job.done():
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
        shipper.result()
        raise RemoteError("UNAVAILABLE", "the reverse shipper stopped")
    return job.result()


def copy_sparse(src: str, dst: str) -> int:
    """Copy a (sparse) flat extent, data regions only; return the data bytes copied."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".seeding"
    copied = 0
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        i, o = fin.fileno(), fout.fileno()
        size = os.fstat(i).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(i, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(i, start, os.SEEK_HOLE)
            while start < end:
                chunk = os.pread(i, min(COPY_CHUNK, end - start), start)
                os.pwrite(o, chunk, start)
                start += len(chunk)
                copied += len(chunk)
            pos = end
        os.ftruncate(o, size)
        os.fsync(o)
    os.replace(tmp, dst)
    fsync_dir(os.path.dirname(dst))
    return copied
