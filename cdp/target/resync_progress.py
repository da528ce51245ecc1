"""Progress of a resync as the target sees it: announced bytes, received bytes, rate.

Fed with every accepted batch; pure bookkeeping, nothing durable (after a restart an open
resync shows as in progress with unknown progress until data arrives again).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from cdp.record import KIND_RESYNC_END, KIND_RESYNC_START, KIND_WRITE, Record
from cdp.status import ResyncStatus

_BYTES = re.compile(r"bytes=(\d+)")


@dataclass
class ResyncProgress:
    """One group member's resync, if one is running."""

    active: bool = False
    total_bytes: int = 0
    received_bytes: int = 0
    started_s: float = 0.0

    def observe(self, records: list[Record]) -> None:
        """Account for a batch the target accepted."""
        for r in records:
            if r.kind == KIND_RESYNC_START:
                m = _BYTES.search(r.frame.decode())
                self.active, self.received_bytes = True, 0
                self.total_bytes = int(m.group(1)) if m else 0
                self.started_s = time.monotonic()
            elif r.kind == KIND_RESYNC_END:
                self.active = False
            elif self.active and r.kind == KIND_WRITE:
                self.received_bytes += r.length

    def eta_s(self) -> float:
        """Seconds left at the rate so far; 0 when unknown or not running."""
        elapsed = time.monotonic() - self.started_s
        if not self.active or self.received_bytes == 0 or elapsed <= 0:
            return 0.0
        left = max(0, self.total_bytes - self.received_bytes)
        return left / (self.received_bytes / elapsed)

    def snapshot(self) -> ResyncStatus:
        """The resync as a status value, its ETA taken now."""
        return ResyncStatus(self.active, self.total_bytes, self.received_bytes, self.eta_s())
