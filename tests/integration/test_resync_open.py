"""While a resync runs, no point inside it is offered and the last point before it stays
restorable; status says resyncing with progress."""

from __future__ import annotations

import time

import pytest
from conftest import Running, make_record, small_group

from cdp import codec
from cdp.errors import RemoteError
from cdp.record import KIND_RESYNC_END, KIND_RESYNC_START, Record
from cdp.target.resync_progress import ResyncProgress
from cdp.v1 import replication_pb2 as pb

SIZE = 1 << 20


def write(seq: int, offset: int, data: bytes) -> Record:
    """A write with a real source time (the history window is measured in real time)."""
    return make_record(seq, 0, offset, data, ts=time.time_ns())


def marker(seq: int, kind: int, label: str) -> Record:
    raw = label.encode()
    return Record(seq, 0, 0, 0, time.time_ns(), codec.checksum(raw), raw, kind)


async def image(r: Running, at: str) -> bytes:
    buf = bytearray(SIZE)
    async for msg in r.client.read_image("rs", "rs-vm0", 0, at):
        if not msg.HasField("plan"):
            buf[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
    return bytes(buf)


async def test_points_during_and_after_an_open_resync(running_history: Running) -> None:
    r = running_history
    reply = await r.client.open_session("src", small_group("rs", disks=1, size=SIZE), 0, 1)
    stream = r.client.stream(reply.session_id)

    async def send(records: list[Record]) -> int:
        await stream.send(records)
        ack = await stream.recv()
        assert ack is not None
        return ack.durable_seq

    await send([write(1, 0, b"a" * 4096), write(2, 4096, b"b" * 4096)])
    before = await image(r, "latest")
    start = await send([marker(3, KIND_RESYNC_START, f"resync bytes={2 * 65536}")])
    await send([write(4, 0, b"X" * 65536)])  # a region half sent: inconsistent
    status = (await r.client.status("rs")).groups[0]
    assert status.state == pb.GROUP_STATE_RESYNCING
    assert status.resync_total_bytes == 2 * 65536 and status.resync_received_bytes == 65536

    listed = await r.client.list_points("rs")
    seqs = [p.seq for p in listed]
    assert 4 not in seqs and 2 in seqs and start in seqs
    assert await image(r, "latest") == before, "latest is the last consistent point"
    with pytest.raises(RemoteError) as err:
        await image(r, "4")
    assert err.value.code == "NOT_FOUND" and "resync" in str(err.value)
    timeline = await r.client.timeline("rs")
    assert timeline.spans[-1].cause == "resync (in progress)"

    await send([write(5, 65536, b"Y" * 65536), marker(6, KIND_RESYNC_END, "resync")])
    after = await image(r, "latest")
    assert after[:65536] == b"X" * 65536 and after[65536 : 2 * 65536] == b"Y" * 65536
    timeline = await r.client.timeline("rs")
    causes = [s.cause for s in timeline.spans]
    assert causes == ["", "resync", ""], causes
    assert (await r.client.status("rs")).groups[0].state == pb.GROUP_STATE_REPLICATING
    stream.cancel()


def test_resync_progress_and_eta() -> None:
    p = ResyncProgress()
    assert p.eta_s() == 0.0
    p.observe([marker(1, KIND_RESYNC_START, "resync bytes=1000")])
    p.started_s -= 2.0  # two seconds in
    p.observe([make_record(2, 0, 0, b"z" * 512)])
    assert p.active and p.received_bytes == 512
    assert p.eta_s() == pytest.approx((1000 - 512) / (512 / 2.0), rel=0.05)
    p.observe([marker(3, KIND_RESYNC_END, "resync")])
    assert not p.active and p.eta_s() == 0.0
