"""Cross-host consistency for a group whose VMs sit on several hosts.

Each host streams its own member journal. To give the group restore points that are
consistent across hosts, the coordinator (a small service at the protected site; here an
in-process object shared by the simulated hosts) periodically:

1. holds new writes on every host (each VM's quiesce gate answers DEFER),
2. puts the same marker ``cg-<n>`` into every host's source buffer, in one step,
3. releases the writes.

A write that completed before step 2 on any host is before the marker in its host's
stream, and a write issued after step 3 is after it on every host, so no dependent write
can sit before the marker while the write it depends on sits after it: the set of markers
is a consistent cut of the group's writes.
"""

from __future__ import annotations

import asyncio
import time

from cdp.record import KIND_CONSISTENCY
from cdp.source.buffer import SourceBuffer
from sim.agent import QuiesceGate

MARKER_PREFIX = "cg-"


class ConsistencyCoordinator:
    """Puts numbered consistency markers into every member's stream at one instant."""

    def __init__(self, members: list[tuple[SourceBuffer, list[QuiesceGate]]]) -> None:
        self.members = members
        self.n = 0
        self.seqs: dict[int, list[int]] = {}
        """Marker number -> the marker's seq in each member's buffer (member order)."""

    def mark(self) -> int:
        """Place marker n+1 in every member; return n+1."""
        gates = [g for _, member_gates in self.members for g in member_gates]
        for g in gates:
            g.hold()
        try:
            self.n += 1
            now = time.time_ns()
            label = f"{MARKER_PREFIX}{self.n}"
            self.seqs[self.n] = [
                buf.append_marker(KIND_CONSISTENCY, label, now).seq for buf, _ in self.members
            ]
        finally:
            for g in gates:
                g.release()
        return self.n

    async def run_every(self, interval_s: float) -> None:
        """Mark every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.mark()
