"""A filter chain modelled on VMware's VAIO (vSphere APIs for I/O Filtering).

Every I/O of a disk passes each filter in order. A filter returns a verdict:
PASS (go on down the chain), COMPLETE (the filter satisfied the I/O itself), FAIL
(the guest sees an error) or DEFER (hold the I/O; the chain waits on the filter's
``resume`` and offers the I/O again). An I/O that every filter passed reaches the disk.

The replication filter splits each write: one copy into the source journal buffer,
then the write goes on to the disk.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from cdp.source.buffer import SourceBuffer
from cdp.source.protection import Protection
from sim.disk import VirtualDisk


class Verdict(enum.Enum):
    """What a filter decided about an I/O."""

    PASS = "pass"
    COMPLETE = "complete"
    FAIL = "fail"
    DEFER = "defer"


@dataclass
class Io:
    """One guest I/O on one disk of one VM."""

    vm_id: str
    disk: int
    """Disk index within the VM."""
    offset: int
    length: int
    source_ns: int
    data: bytes = b""
    """Write payload; for a read, filled by whoever completes it."""
    is_write: bool = True
    from_agent: bool = False
    """Issued by the guest agent while it quiesces (passes a held quiesce gate)."""


class IoError(Exception):
    """The guest's I/O failed (a filter answered FAIL)."""


class IoFilter(Protocol):
    """One filter in a chain."""

    def on_io(self, io: Io) -> Verdict:
        """Decide about ``io``."""

    async def resume(self, io: Io) -> None:
        """After DEFER: return when ``io`` may be offered again."""


class FilterChain:
    """The filters of a VM's disks, in order, in front of the disks."""

    def __init__(self, disks: list[VirtualDisk], filters: list[IoFilter]) -> None:
        self.disks = disks
        self.filters = filters
        self.deferred = 0
        """I/Os that were held by a filter at least once."""

    async def submit(self, io: Io) -> Io:
        """Run ``io`` through the chain and, unless a filter completed it, the disk."""
        for f in self.filters:
            verdict = f.on_io(io)
            while verdict is Verdict.DEFER:
                self.deferred += 1
                await f.resume(io)
                verdict = f.on_io(io)
            if verdict is Verdict.FAIL:
                raise IoError(f"{io.vm_id} disk {io.disk}: I/O at {io.offset} failed by {f!r}")
            if verdict is Verdict.COMPLETE:
                return io
        disk = self.disks[io.disk]
        if io.is_write:
            disk.write(io.offset, io.data)
        else:
            io.data = disk.read(io.offset, io.length)
        return io


class ShadowLog:
    """Every journaled write with its seq, so a test can rebuild a disk at any seq."""

    def __init__(self, capacities: list[int]) -> None:
        self.capacities = capacities
        self.writes: list[tuple[int, int, int, bytes]] = []
        """(seq, group disk number, offset, data), in seq order."""

    def record(self, seq: int, disk: int, offset: int, data: bytes) -> None:
        """Remember one journaled write."""
        self.writes.append((seq, disk, offset, data))

    def image(self, disk: int, seq: int) -> bytes:
        """The disk's bytes after every write with seq <= ``seq``."""
        buf = bytearray(self.capacities[disk])
        for s, d, offset, data in self.writes:
            if s > seq:
                break
            if d == disk:
                buf[offset : offset + len(data)] = data
        return bytes(buf)


class ReplicationFilter:
    """Splits every write of a group's disks into the source journal buffer."""

    def __init__(
        self,
        buffer: SourceBuffer,
        disk_numbers: dict[tuple[str, int], int],
        shadow: ShadowLog | None = None,
        protection: Protection | None = None,
    ) -> None:
        self.buffer = buffer
        self.disk_numbers = disk_numbers
        """(vm_id, disk index in the VM) -> disk number in the group."""
        self.shadow = shadow
        self.protection = protection
        """With it, a full buffer or a long outage falls back to the dirty map (the guest
        never waits); without it, writes wait for room in the buffer (DEFER)."""

    def on_io(self, io: Io) -> Verdict:
        """Journal a write; defer it while the buffer is full; pass reads."""
        if not io.is_write:
            return Verdict.PASS
        disk = self.disk_numbers[(io.vm_id, io.disk)]
        if self.protection is not None:
            seq = self.protection.on_write(disk, io.offset, io.data, io.source_ns)
        elif self.buffer.has_room():
            seq = self.buffer.append(disk, io.offset, io.data, io.source_ns).seq
        else:
            return Verdict.DEFER
        if self.shadow is not None and seq:
            self.shadow.record(seq, disk, io.offset, io.data)
        return Verdict.PASS

    async def resume(self, io: Io) -> None:
        """Wait for room in the buffer."""
        await self.buffer.wait_room()

    def __repr__(self) -> str:
        return "ReplicationFilter"


class FailRangeFilter:
    """Fails every I/O that touches a byte range of one disk (fault injection)."""

    def __init__(self, vm_id: str, disk: int, start: int, end: int) -> None:
        self.vm_id, self.disk, self.start, self.end = vm_id, disk, start, end

    def on_io(self, io: Io) -> Verdict:
        """FAIL inside the range, PASS elsewhere."""
        hit = io.vm_id == self.vm_id and io.disk == self.disk
        if hit and io.offset < self.end and io.offset + io.length > self.start:
            return Verdict.FAIL
        return Verdict.PASS

    async def resume(self, io: Io) -> None:
        """Never defers."""

    def __repr__(self) -> str:
        return f"FailRangeFilter({self.start}-{self.end})"
