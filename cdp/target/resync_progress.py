"""Progress of a resync as the target sees it: announced bytes, received bytes, rate.

Fed with every accepted batch; each region's bytes count once (a region sent again, or
dirtied again by the guest, adds nothing), and the total grows to what was received, so the
progress never exceeds 100 %. Pure bookkeeping, nothing durable (after a restart an open
resync shows as in progress with unknown progress until data arrives again).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from cdp.record import KIND_RESYNC_END, KIND_RESYNC_START, KIND_WRITE, Record
from cdp.status import ResyncStatus

_BYTES = re.compile(r"bytes=(\d+)")
PROGRESS_REGION_BYTES = 2**20
"""Granularity of the progress count: at most this many bytes count per region."""
STALLED_PASSES = 3
"""A resync that received this many times its total in write bytes is not converging."""


@dataclass
class ResyncProgress:
    """One group member's resync, if one is running."""

    active: bool = False
    total_bytes: int = 0
    received_bytes: int = 0
    started_s: float = 0.0
    sent_bytes: int = 0
    """Every write byte received in this resync, regions sent again included."""
    _seen: dict[tuple[int, int], int] = field(default_factory=dict)
    """Bytes counted per (disk, region of PROGRESS_REGION_BYTES) in this resync."""

    def observe(self, records: list[Record]) -> None:
        """Account for a batch the target accepted."""
        for r in records:
            if r.kind == KIND_RESYNC_START:
                m = _BYTES.search(r.frame.decode())
                if not self.active:  # a second start (restarted source) continues the count
                    self.received_bytes, self.sent_bytes, self._seen = 0, 0, {}
                self.active = True
                self.total_bytes = max(int(m.group(1)) if m else 0, self.received_bytes)
                self.started_s = time.monotonic()
            elif r.kind == KIND_RESYNC_END:
                self.active = False
            elif self.active and r.kind == KIND_WRITE:
                self._count(r.disk, r.offset, r.length)
                self.sent_bytes += r.length
        self.total_bytes = max(self.total_bytes, self.received_bytes)  # never above 100 %

    def _count(self, disk: int, offset: int, length: int) -> None:
        """Count a write's bytes at most once per region (re-sent regions add nothing)."""
        end = offset + length
        while offset < end:
            region = offset // PROGRESS_REGION_BYTES
            stop = min(end, (region + 1) * PROGRESS_REGION_BYTES)
            seen = self._seen.get((disk, region), 0)
            add = min(stop - offset, PROGRESS_REGION_BYTES - seen)
            self._seen[(disk, region)] = seen + add
            self.received_bytes += add
            offset = stop

    def eta_s(self) -> float:
        """Seconds left at the rate so far; 0 when unknown or not running."""
        elapsed = time.monotonic() - self.started_s
        if not self.active or self.received_bytes == 0 or elapsed <= 0 or self.stalled():
            return 0.0
        left = max(0, self.total_bytes - self.received_bytes)
        return left / (self.received_bytes / elapsed)

    def stalled(self) -> str:
        """Why the resync is not converging and what to do; empty while it converges."""
        if not self.active or not self.total_bytes:
            return ""
        passes = self.sent_bytes / self.total_bytes
        if passes < STALLED_PASSES:
            return ""
        return (
            f"resync not converging: {self.sent_bytes} write bytes received for "
            f"{self.total_bytes} to resync ({passes:.1f} times), the guest dirties regions "
            "again as fast as they are sent; lower the guest's write rate or raise the "
            "link's bandwidth (the source's final pass holds guest writes, at most 10 s)"
        )

    def snapshot(self) -> ResyncStatus:
        """The resync as a status value, its ETA taken now."""
        return ResyncStatus(
            self.active, self.total_bytes, self.received_bytes, self.eta_s(), self.stalled()
        )
