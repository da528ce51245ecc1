"""Bad bytes in journal segments on disk, seen through a real target restart.

Records carry current source times and the target keeps a one-hour history window, so
nothing is applied: every acked record stays in the journal's last segment.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from conftest import Running, make_record, small_group, start_target, stop_target

from cdp import naming
from cdp.errors import RemoteError
from cdp.journal.segment import scan
from cdp.record import HEADER_SIZE, Record, encode
from cdp.v1 import replication_pb2 as pb

GROUP = "g1"
SPEC = small_group(GROUP)
WINDOW = dict(history_window_s=3600)


def recs(first: int, n: int, seed: int = 0) -> list[Record]:
    rng = random.Random(seed * 100_003 + first)
    now = time.time_ns()
    return [
        make_record(s, s % 2, (s * 4096) % 2**20, rng.randbytes(512 * rng.randint(1, 4)), now + s)
        for s in range(first, first + n)
    ]


async def send(r: Running, batches: list[list[Record]], next_seq: int = 0) -> int:
    reply = await r.client.open_session("host-a", SPEC, 0, next_seq)
    stream = r.client.stream(reply.session_id)
    last = reply.durable_seq
    try:
        for b in batches:
            await stream.send(b)
            ack = await stream.recv()
            assert ack is not None
            last = ack.durable_seq
    finally:
        stream.cancel()
    return last


def last_segment(data_dir: str) -> str:
    folder = os.path.join(data_dir, "journal", GROUP)
    names = sorted(n for n in os.listdir(folder) if naming.parse_segment(n) is not None)
    return os.path.join(folder, names[-1])


async def written(tmp_path: Path) -> tuple[str, list[Record]]:
    """A stopped target's data dir holding 12 acked records in one segment."""
    data_dir = str(tmp_path / "target")
    r = await start_target(data_dir, **WINDOW)
    try:
        every = recs(1, 12)
        assert await send(r, [every[:5], every[5:9], every[9:]], next_seq=1) == 12
        st = (await r.client.status(GROUP)).groups[0]
        assert st.applied_seq == 0 and st.durable_seq == 12
    finally:
        await stop_target(r)
    return data_dir, every


async def test_garbage_after_the_last_record_is_dropped_on_restart(tmp_path: Path) -> None:
    data_dir, every = await written(tmp_path)
    path = last_segment(data_dir)
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(random.Random(7).randbytes(5000))

    r = await start_target(data_dir, **WINDOW)
    try:
        st = (await r.client.status(GROUP)).groups[0]
        assert st.state == pb.GROUP_STATE_DISCONNECTED
        assert st.durable_seq == 12
        assert os.path.getsize(path) == size  # the garbage is cut
        reply = await r.client.open_session("host-a", SPEC, 0, 13)
        assert reply.durable_seq == 12 and not reply.resync_required
        assert reply.durable_ns == every[-1].source_ns
        # the journal reads back exactly what was acked
        journal = r.target.groups[GROUP].journal
        assert list(journal.read_range(1, 12)) == every
        # new batches continue at durable + 1 ...
        more = recs(13, 3, seed=1)
        assert await send(r, [more]) == 15
        assert list(journal.read_range(1, 15)) == every + more
        # ... and a gap is still a gap
        reply = await r.client.open_session("host-a", SPEC, 0, 0)
        stream = r.client.stream(reply.session_id)
        await stream.send(recs(17, 1))
        with pytest.raises(RemoteError) as info:
            await stream.recv()
        assert info.value.code == "FAILED_PRECONDITION"
        stream.cancel()
    finally:
        await stop_target(r)

    # and the repaired journal survives one more restart untouched
    r = await start_target(data_dir, **WINDOW)
    try:
        assert (await r.client.status(GROUP)).groups[0].durable_seq == 15
        assert list(r.target.groups[GROUP].journal.read_range(1, 15)) == every + more
    finally:
        await stop_target(r)


async def test_a_torn_unacked_record_is_dropped_on_restart(tmp_path: Path) -> None:
    """What kill -9 mid-append leaves: part of a header and frame that was never acked."""
    data_dir, every = await written(tmp_path)
    path = last_segment(data_dir)
    size = os.path.getsize(path)
    nxt = recs(13, 1)[0]
    with open(path, "ab") as f:
        f.write((encode(nxt) + nxt.frame)[: HEADER_SIZE + 10])
    r = await start_target(data_dir, **WINDOW)
    try:
        reply = await r.client.open_session("host-a", SPEC, 0, 13)
        assert reply.durable_seq == 12
        assert os.path.getsize(path) == size
        assert await send(r, [recs(13, 2, seed=2)]) == 14
    finally:
        await stop_target(r)


@pytest.mark.parametrize("where", ["frame", "header", "truncate"])
async def test_bad_bytes_inside_acked_records_put_the_group_in_error(
    tmp_path: Path, where: str
) -> None:
    data_dir, every = await written(tmp_path)
    path = last_segment(data_dir)
    starts = [loc.offset for loc in scan(path, 1).records]
    bad_seq = 7
    at = starts[bad_seq - 1]
    with open(path, "r+b") as f:
        if where == "frame":
            f.seek(at + HEADER_SIZE + 3)
            f.write(b"\xde\xad\xbe\xef")
        elif where == "header":
            f.seek(at + 24)  # the disk offset field
            f.write(b"\xff")
        else:
            f.truncate(at + HEADER_SIZE + 1)
    with open(path, "rb") as f:
        corrupt = f.read()

    r = await start_target(data_dir, **WINDOW)
    try:
        with pytest.raises(RemoteError) as info:
            await r.client.open_session("host-a", SPEC, 0, 13)
        err = info.value
        assert err.code == "DATA_LOSS"
        assert path in str(err), str(err)
        assert f"seq {bad_seq}" in str(err), str(err)
        st = (await r.client.status(GROUP)).groups[0]
        assert st.state == pb.GROUP_STATE_ERROR
        assert st.applied_seq == 0
        # a batch for the group is refused too (no session can exist)
        with pytest.raises(RemoteError) as info:
            await r.client.open_session("host-b", SPEC, 0, 0)
        assert info.value.code == "DATA_LOSS"
        # other groups on the same target are not affected
        other = small_group("g2")
        reply = await r.client.open_session("host-c", other, 0, 1)
        stream = r.client.stream(reply.session_id)
        await stream.send([make_record(1, ts=time.time_ns())])
        ack = await stream.recv()
        assert ack is not None and ack.durable_seq == 1
        stream.cancel()
    finally:
        await stop_target(r)

    # still in error after another restart: the target never "heals" by forgetting acks
    r = await start_target(data_dir, **WINDOW)
    try:
        st = (await r.client.status(GROUP)).groups[0]
        assert st.state == pb.GROUP_STATE_ERROR
        with pytest.raises(RemoteError) as info:
            await r.client.open_session("host-a", SPEC, 0, 13)
        assert info.value.code == "DATA_LOSS"
    finally:
        await stop_target(r)
    with open(path, "rb") as f:
        assert f.read() == corrupt, "the target changed a corrupt segment holding acked records"
