"""The shipper's ack-clocked hold (Nagle): a small batch waits behind an unacked one.

A unit test of the shipper's batching around a scripted transport whose acks come after
a set delay; the effect on a real target (16 groups on one host) is measured by
``python -m bench suite --only vms-16``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from conftest import small_group

from cdp.group import GroupSpec
from cdp.record import Record
from cdp.source.buffer import SourceBuffer
from cdp.source.shipper import AckReply, SessionReply, Shipper, ShipperConfig

WRITE = os.urandom(512)


class SlowAckStream:
    """Records each batch with its send time; acks it ``delay_s`` later."""

    def __init__(self, delay_s: float, sent: list[tuple[float, list[Record]]]) -> None:
        self.delay_s, self.sent = delay_s, sent
        self.acks: asyncio.Queue[AckReply] = asyncio.Queue()
        self.timers: list[asyncio.TimerHandle] = []

    async def send(self, records: list[Record]) -> None:
        self.sent.append((time.monotonic(), records))
        ack = AckReply(records[-1].seq, records[-1].source_ns, 64 * 2**20)
        loop = asyncio.get_running_loop()
        self.timers.append(loop.call_later(self.delay_s, self.acks.put_nowait, ack))

    async def recv(self) -> AckReply | None:
        return await self.acks.get()

    def cancel(self) -> None:
        for t in self.timers:
            t.cancel()


class SlowAckTransport:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.sent: list[tuple[float, list[Record]]] = []

    async def open_session(
        self, source_id: str, spec: GroupSpec, oldest_held_seq: int, next_seq: int,
        member_id: str = "", epoch: int = 0,
    ) -> SessionReply:  # fmt: skip
        return SessionReply("s1", 0, 0, False, "", 4 * 2**20, 10_000, 64 * 2**20)

    def stream(self, session_id: str) -> SlowAckStream:
        return SlowAckStream(self.delay_s, self.sent)


async def _ship(
    ack_delay_s: float, config: ShipperConfig, writes: int, every_s: float, size: int = 512
) -> tuple[float, list[tuple[float, list[Record]]]]:
    """Append ``writes`` writes ``every_s`` apart; return (start, [(sent at, batch)])."""
    buffer = SourceBuffer()
    transport = SlowAckTransport(ack_delay_s)
    shipper = Shipper(small_group("hold"), buffer, transport, config)
    task = asyncio.ensure_future(shipper.run())
    t0 = time.monotonic()
    data = os.urandom(size)
    for i in range(writes):
        buffer.append(0, i * 512 % 2**20, data, time.time_ns())
        await asyncio.sleep(every_s)
    deadline = time.monotonic() + 10
    while buffer.acked_seq < writes and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert buffer.acked_seq == writes, "every write was sent and acked"
    assert [r.seq for _, b in transport.sent for r in b] == list(range(1, writes + 1))
    return t0, transport.sent


async def test_small_writes_gather_behind_an_unacked_batch_until_its_ack() -> None:
    t0, sent = await _ship(0.1, ShipperConfig("src", hold_s=1.0), writes=20, every_s=0.002)

    first_at, first = sent[0]
    assert len(first) <= 3, "an idle link sends the first writes after the 2 ms linger"
    second_at, second = sent[1]
    assert second_at - first_at >= 0.09, "the next batch waited for the first one's ack"
    assert len(second) >= 10, "and carried every write that came meanwhile"
    assert len(sent) <= 4


async def test_without_the_hold_small_writes_go_out_one_by_one() -> None:
    _, sent = await _ship(0.1, ShipperConfig("src", hold_s=0), writes=20, every_s=0.004)

    assert len(sent) >= 10, [len(b) for _, b in sent]


async def test_the_hold_is_capped_when_the_ack_is_slow() -> None:
    t0, sent = await _ship(1.0, ShipperConfig("src", hold_s=0.05), writes=3, every_s=0.01)

    first_at = sent[0][0]
    second_at = sent[1][0]
    assert second_at - first_at < 0.5, "the second batch did not wait for the 1 s ack"
    assert second_at - first_at >= 0.04, "but it did wait about hold_s"


async def test_a_batch_that_is_not_small_never_waits() -> None:
    # Batches of 4 KiB: 2 KiB writes are half a batch, above the quarter that counts as small.
    config = ShipperConfig("src", batch_bytes=4096, hold_s=1.0)
    _, sent = await _ship(0.5, config, writes=10, every_s=0.005, size=2048)

    last_sent = sent[-1][0]
    assert last_sent - sent[0][0] < 0.4, "every batch left before the first ack came back"
