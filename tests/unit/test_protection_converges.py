"""Issue 11 defect 5 (source side): a resync converges under continued guest writes.

Guest writes keep dirtying regions as fast as unheld passes clean them; the resync must still
reach its held final pass and place RESYNC_END, and the RPO it reports meanwhile is the age
of the target's newest point (never 0). A real buffer and dirty map; the link is a stand-in
that acks at once and answers every region as differing while the "guest" writes.
"""

from __future__ import annotations

import asyncio
import random
import time

from cdp.errors import CdpError
from cdp.record import KIND_RESYNC_END, KIND_RESYNC_START
from cdp.source.buffer import SourceBuffer
from cdp.source.protection import Mode, Protection, ProtectionConfig

REGION = 4096
REGIONS = 512


class _Link:
    """Shipper and region transport in one: acks every record, and on every compare the
    guest writes ``per_call`` random regions (unless writes are held)."""

    connected = True
    session_id = "s"
    last_error: CdpError | None = None
    last_error_s = 0.0

    def __init__(self, buffer: SourceBuffer, per_call: int) -> None:
        self.buffer, self.per_call, self.held = buffer, per_call, False
        self.protection: Protection | None = None
        self.rng = random.Random(7)
        self.kinds: list[int] = []
        """Kinds of every record made durable, in seq order."""

    async def drain(self, poll_s: float = 0.0) -> None:
        """Everything sent is durable at once."""
        sent = self.buffer.take(self.buffer.acked_seq + 1, 1 << 20, 1 << 40)
        self.kinds += [r.kind for r in sent]
        self.buffer.ack(self.buffer.next_seq - 1, time.time_ns())

    async def compare_regions(
        self, session_id: str, disk: int, region_bytes: int, offsets: list[int], hashes: list[int]
    ) -> list[int]:
        assert self.protection is not None
        if not self.held:
            for _ in range(self.per_call):
                offset = self.rng.randrange(REGIONS) * REGION
                self.protection.on_write(0, offset, b"\1" * REGION, time.time_ns())
        await asyncio.sleep(0)
        return offsets


async def test_resync_converges_while_the_guest_keeps_writing() -> None:
    buffer = SourceBuffer()
    link = _Link(buffer, per_call=300)
    prot = Protection(
        buffer, [REGIONS * REGION], lambda d, o, n: b"\0" * n,
        hold=lambda: setattr(link, "held", True), release=lambda: setattr(link, "held", False),
        config=ProtectionConfig(region_bytes=REGION),
    )  # fmt: skip
    link.protection = prot
    prot.rejoin(10, time.time_ns() - 3 * 10**9)  # the target's newest point is 3 s old
    assert prot.rpo_s(time.time_ns()) >= 3.0
    await asyncio.wait_for(prot.resync(link, link), timeout=20)
    await link.drain()
    kinds = link.kinds
    assert prot.mode is Mode.JOURNALING and not link.held
    assert KIND_RESYNC_START in kinds and kinds[-1] == KIND_RESYNC_END
