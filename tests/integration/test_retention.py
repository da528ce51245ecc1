"""History window and retention: time cuts, size cuts with warnings, restart, image pause."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from conftest import Running, make_record, small_group, start_target, stop_target

from cdp.errors import RemoteError
from cdp.restore.catalog import history_health


async def write_batches(
    r: Running,
    group: str,
    batches: int,
    per_batch: int = 4,
    start_seq: int = 1,
    size: int = 4096,
    pause_s: float = 0.0,
    incompressible: bool = False,
) -> int:
    """Write batches of records (each batch end is a restore point); return the last seq."""
    spec = small_group(group, disks=1, size=4 * 2**20)
    reply = await r.client.open_session("src", spec, 0, start_seq)
    stream = r.client.stream(reply.session_id)
    seq = reply.durable_seq
    for _ in range(batches):
        recs = []
        for _ in range(per_batch):
            seq += 1
            data = seq.to_bytes(8, "little") * (size // 8)
            if incompressible:
                data = seq.to_bytes(8, "little") + os.urandom(size - 8)
            recs.append(make_record(seq, 0, (seq * size) % (4 * 2**20), data, ts=time.time_ns()))
        await stream.send(recs)
        ack = await stream.recv()
        assert ack is not None and ack.durable_seq == seq
        if pause_s:
            await asyncio.sleep(pause_s)
    stream.cancel()
    return seq


async def wait_for(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout_s)


async def test_time_window_drops_old_points(tmp_path: str) -> None:
    r = await start_target(os.path.join(tmp_path, "t"), history_window_s=0.6)
    try:
        first = await write_batches(r, "tw", 3)
        old_points = [p.seq for p in await r.client.list_points("tw")]
        assert first in old_points
        await asyncio.sleep(1.0)
        last = await write_batches(r, "tw", 3, start_seq=first + 1)
        group = r.target.groups["tw"]
        await wait_for(lambda: group.applier.applied_seq >= first)
        listed = [p.seq for p in await r.client.list_points("tw")]
        assert last in listed
        assert all(s >= group.applier.applied_seq for s in listed)
        gone = [s for s in old_points if s < group.applier.applied_seq]
        assert gone and not set(gone) & set(listed)
        with pytest.raises(RemoteError) as err:
            async for _ in r.client.read_image("tw", "tw-vm0", 0, str(gone[0])):
                pass
        assert err.value.code == "OUT_OF_RANGE" and "history window" in str(err.value)
        timeline = await r.client.timeline("tw")
        assert not timeline.spans[0].restorable and timeline.spans[0].cause == "retention"
        assert timeline.spans[-1].restorable and timeline.spans[-1].end_seq == last
    finally:
        await stop_target(r)


async def test_size_limit_cuts_history_and_says_so(tmp_path: str) -> None:
    r = await start_target(
        os.path.join(tmp_path, "t"),
        history_window_s=3600,
        segment_bytes=32 * 1024,
        journal_limit_bytes=128 * 1024,
    )
    try:
        group_name = "sz"
        await write_batches(r, group_name, 20, per_batch=8, pause_s=0.15, incompressible=True)
        group = r.target.groups[group_name]
        await wait_for(lambda: group.applier.size_cuts > 0)
        await wait_for(lambda: group.journal.bytes_on_disk() <= 128 * 1024 + 40 * 1024)
        plan = group.applier.plan()
        assert plan is None or plan.reason in ("size", "time")
        timeline = await r.client.timeline(group_name)
        assert timeline.spans[0].cause == "retention (journal size limit)"
        assert timeline.history_health in ("warning", "error")
        assert "journal size limit" in timeline.history_message
        assert timeline.journal_limit_bytes == 128 * 1024
    finally:
        await stop_target(r)


def test_history_health_thresholds() -> None:
    assert history_health(3600, 3600, 10_000) == ("ok", "")
    assert history_health(3600, 0.9 * 3600, 10_000)[0] == "ok"
    assert history_health(3600, 0.8 * 3600, 10_000)[0] == "warning"
    assert history_health(3600, 0.5 * 3600, 10_000)[0] == "error"
    # a young group is judged against its age, not the whole window
    assert history_health(3600, 55, 60)[0] == "ok"
    assert history_health(3600, 30, 60)[0] == "error"


async def test_restart_keeps_points_timeline_and_exports(tmp_path: str) -> None:
    data_dir = os.path.join(tmp_path, "t")
    r = await start_target(data_dir, history_window_s=3600)
    last = await write_batches(r, "rs", 5)
    bm = await r.client.create_bookmark("rs", "before-restart")
    points_before = [(p.seq, p.kind, p.label) for p in await r.client.list_points("rs")]
    await stop_target(r)
    r = await start_target(data_dir, history_window_s=3600)
    try:
        points_after = [(p.seq, p.kind, p.label) for p in await r.client.list_points("rs")]
        # checkpoints may have been tagged in between; every point survives with its label
        assert [s for s, _, _ in points_after] == [s for s, _, _ in points_before]
        assert (bm.seq, bm.kind, "before-restart") in points_after
        image = bytearray(4 * 2**20)
        async for msg in r.client.read_image("rs", "rs-vm0", 0, "before-restart"):
            image[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
        for seq in range(1, last + 1):
            off = (seq * 4096) % (4 * 2**20)
            assert image[off : off + 8] == seq.to_bytes(8, "little")
        timeline = await r.client.timeline("rs")
        assert [s.restorable for s in timeline.spans] == [True]
    finally:
        await stop_target(r)


async def test_apply_waits_while_an_image_is_read(tmp_path: str) -> None:
    r = await start_target(os.path.join(tmp_path, "t"), history_window_s=0.3)
    try:
        await write_batches(r, "pz", 3)
        group = r.target.groups["pz"]
        await wait_for(lambda: group.applier.applied_seq == group.journal.durable_seq)
        async with r.target.image("pz", "pz-vm0", 0, "latest") as (plan, _reader):
            await write_batches(r, "pz", 3, start_seq=group.journal.durable_seq + 1)
            before = group.applier.applied_seq
            await asyncio.sleep(0.8)  # the new records leave the window meanwhile
            assert group.applier.applied_seq == before, "apply must not move the base"
        await wait_for(lambda: group.applier.applied_seq == group.journal.durable_seq)
    finally:
        await stop_target(r)
