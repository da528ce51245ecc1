"""The guest agent: application-consistent points and source-side bookmarks.

An application-consistent point is taken the way VSS or a database freeze does it:
hold new writes (a quiesce gate filter answers DEFER), let the application flush what it
buffers (those writes pass the gate), put an in-band marker into the journal, release.
The marker takes a seq, so the point sits exactly between the flushed writes and
everything written after the release.
"""

from __future__ import annotations

import asyncio
import time

from cdp.record import KIND_APP_CONSISTENT, KIND_BOOKMARK, Record
from cdp.source.buffer import SourceBuffer
from sim.filter import Io, Verdict
from sim.vm import SimVM


class QuiesceGate:
    """A filter that holds guest writes while the agent quiesces."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self.held = 0

    def hold(self) -> None:
        """Defer every new guest write until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        """Let held writes go on."""
        self._open.set()

    def on_io(self, io: Io) -> Verdict:
        """DEFER guest writes while held; the agent's own writes pass."""
        if io.is_write and not io.from_agent and not self._open.is_set():
            self.held += 1
            return Verdict.DEFER
        return Verdict.PASS

    async def resume(self, io: Io) -> None:
        """Wait for the release."""
        await self._open.wait()


class BufferedApp:
    """A simulated application that buffers writes in memory (like a database's log buffer)."""

    def __init__(self, vm: SimVM) -> None:
        self.vm = vm
        self.pending: list[tuple[int, int, bytes]] = []

    def write(self, disk: int, offset: int, data: bytes) -> None:
        """Buffer a write; it reaches the disk at the next flush."""
        self.pending.append((disk, offset, data))

    async def flush(self, from_agent: bool = False) -> int:
        """Write every buffered write to the disk; return how many."""
        n = len(self.pending)
        for disk, offset, data in self.pending:
            io = Io(self.vm.vm_id, disk, offset, len(data), time.time_ns(), data, True, from_agent)
            await self.vm.chain.submit(io)
        self.pending.clear()
        return n


class GuestAgent:
    """Takes application-consistent points for the VMs of one group."""

    def __init__(
        self, buffer: SourceBuffer, gates: list[QuiesceGate], apps: list[BufferedApp]
    ) -> None:
        self.buffer = buffer
        self.gates = gates
        self.apps = apps
        self.points: list[Record] = []

    async def app_consistent_point(self, label: str) -> Record:
        """Quiesce, flush the applications, emit the marker, resume; return the marker."""
        for gate in self.gates:
            gate.hold()
        try:
            for app in self.apps:
                await app.flush(from_agent=True)
            marker = self.buffer.append_marker(KIND_APP_CONSISTENT, label, time.time_ns())
        finally:
            for gate in self.gates:
                gate.release()
        self.points.append(marker)
        return marker

    async def run_every(self, interval_s: float, prefix: str = "app") -> None:
        """Take a point every ``interval_s`` until cancelled."""
        n = 0
        while True:
            await asyncio.sleep(interval_s)
            n += 1
            await self.app_consistent_point(f"{prefix}-{n}")


def bookmark(buffer: SourceBuffer, name: str) -> Record:
    """Place a named bookmark at this exact place in the group's writes."""
    return buffer.append_marker(KIND_BOOKMARK, name, time.time_ns())
