"""Verdicts where the operator meets them, against a real target (gRPC, RocksDB, files).

An outside tool marks a range compromised through the API; points turn suspect from its
start on, the timeline shows the band, status raises the alert with the last clean point,
``--at last-clean`` resolves before the onset for an export, a dismissal clears it, and
both calls land in the audit log with who and when. The detector's part (training, then
watching) is played by ``Verdicts.start_watching`` directly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Running, make_record, small_group, start_target, stop_target

from cdp import codec
from cdp.errors import RemoteError
from cdp.failover.export import export_image
from cdp.failover.remote import TargetReplication
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.record import KIND_CONSISTENCY, Record
from cdp.v1 import replication_pb2 as pb

GROUP = "vg"
VM = f"{GROUP}-vm0"
PER_BATCH = 4


async def write(r: Running, batches: int, start_seq: int = 1) -> list[int]:
    """Write ``batches`` batches of PER_BATCH records; return each batch end's point time."""
    spec = small_group(GROUP, disks=1)
    reply = await r.client.open_session("src", spec, 0, start_seq)
    stream = r.client.stream(reply.session_id)
    seq, times = reply.durable_seq, []
    for _ in range(batches):
        recs = []
        for _ in range(PER_BATCH):
            seq += 1
            data = seq.to_bytes(8, "little") * 64
            recs.append(make_record(seq, 0, (seq % 64) * 512, data, ts=time.time_ns()))
        await stream.send(recs)
        ack = await stream.recv()
        assert ack is not None and ack.durable_seq == seq
        times.append(recs[-1].source_ns)
        time.sleep(0.002)  # distinct point times
    stream.cancel()
    return times


@pytest.fixture
async def served(tmp_path: Path) -> Running:  # type: ignore[misc]
    r = await start_target(str(tmp_path / "t"), history_window_s=3600.0)
    try:
        yield r
    finally:
        await stop_target(r)


def watch_from(r: Running, seq: int) -> None:
    """What the detector does when its training ends."""
    r.target.members(GROUP)[0].verdicts.start_watching(seq)


async def test_mark_makes_points_suspect_and_last_clean_exports_the_point_before(
    served: Running, tmp_path: Path
) -> None:
    r = served
    await write(r, 10)  # points at seqs 4, 8, ..., 40
    watch_from(r, 1)
    marked = await r.client.mark_compromised(
        pb.MarkCompromisedRequest(group_id=GROUP, start_seq=22, reason="EDR alert 7")
    )
    assert [(s.suspicion_id, s.start_seq, s.raised_by) for s in marked] == [("s-1", 22, "insecure")]
    points = await r.client.list_points(GROUP)
    got = {p.seq: p.verdict for p in points}
    assert all(v == pb.VERDICT_CLEAN for s, v in got.items() if s < 22)
    assert all(v == pb.VERDICT_SUSPECT for s, v in got.items() if s >= 22)
    timeline = await r.client.timeline(GROUP)
    (band,) = timeline.suspect_bands
    assert (band.suspicion_id, band.start_seq, band.end_seq, band.open) == ("s-1", 22, 40, True)
    (status,) = (await r.client.status(GROUP)).groups
    assert (status.standing_suspicions, status.last_clean_seq) == (1, 20)
    out = str(tmp_path / "out" / "clean.vmdk")
    os.makedirs(os.path.dirname(out))
    result = await export_image(r.client, GROUP, VM, 0, "last-clean", out)
    assert result.image.point.seq == 20 < marked[0].start_seq
    failover = TargetReplication(r.client)  # what failover, test and verify resolve through
    assert (await failover.image_plan(GROUP, VM, 0, "last-clean")).point.seq == 20
    again = await r.client.dismiss_suspicion(GROUP, "s-1", "benign: media copy")
    twice = await r.client.dismiss_suspicion(GROUP, "s-1", "someone else, later")
    assert again.dismissed and twice == again  # the second dismissal changes nothing
    (status,) = (await r.client.status(GROUP)).groups
    assert (status.standing_suspicions, status.last_clean_seq) == (0, 40)
    assert not (await r.client.timeline(GROUP)).suspect_bands
    actions = [(e.action, e.identity) for e in await r.client.list_audit()]
    assert actions.count(("suspicion.mark", "insecure")) == 1
    assert actions.count(("suspicion.dismiss", "insecure")) == 2


async def test_mark_by_time_starts_after_the_newest_point_before_it(served: Running) -> None:
    r = served
    times = await write(r, 6)  # points at seqs 4..24
    watch_from(r, 1)
    (s,) = await r.client.mark_compromised(
        pb.MarkCompromisedRequest(
            group_id=GROUP,
            start_time_unix_ns=times[2] + 1,
            end_time_unix_ns=times[4],
            reason="SIEM: mass rename",
        )  # fmt: skip
    )
    assert (s.start_seq, s.end_seq) == (13, 20)  # after point 12; through point 20
    plan = await export_image(r.client, GROUP, VM, 0, "last-clean", None)
    assert plan.image.point.seq == 12


async def test_last_clean_refuses_with_why_when_no_point_is_clean(served: Running) -> None:
    r = served
    await write(r, 3)
    with pytest.raises(RemoteError) as err:  # the detector never watched: all unknown
        await export_image(r.client, GROUP, VM, 0, "last-clean", None)
    assert err.value.code == "FAILED_PRECONDITION"
    assert "no clean restore point" in str(err.value) and "unknown" in str(err.value)
    watch_from(r, 1)
    await r.client.mark_compromised(
        pb.MarkCompromisedRequest(group_id=GROUP, start_seq=1, reason="whole history")
    )
    with pytest.raises(RemoteError) as err:
        await export_image(r.client, GROUP, VM, 0, "last-clean", None)
    assert err.value.code == "FAILED_PRECONDITION"
    assert "at or after the onset of suspicion s-1" in str(err.value)


async def test_last_clean_search_reaches_points_far_back(served: Running) -> None:
    """Points an hour apart: the search for the newest point before the onset widens."""
    r = served
    reply = await r.client.open_session("src", small_group(GROUP, disks=1), 0, 1)
    stream = r.client.stream(reply.session_id)
    t0 = time.time_ns() - 6 * 3600 * 10**9
    for b in range(5):  # points at seqs 2, 4, ..., 10, 3600 s apart
        await stream.send([make_record(2 * b + i, ts=t0 + b * 3600 * 10**9) for i in (1, 2)])
        assert (await stream.recv()) is not None
    stream.cancel()
    watch_from(r, 1)
    await r.client.mark_compromised(
        pb.MarkCompromisedRequest(group_id=GROUP, start_seq=9, reason="late")
    )
    assert (await export_image(r.client, GROUP, VM, 0, "last-clean", None)).image.point.seq == 8


async def test_group_on_two_hosts_is_marked_by_time_in_every_member(served: Running) -> None:
    """Each member maps the time range to its own seqs; a group point is suspect if any
    member's seq of it is; last-clean is the newest common marker that is clean."""
    r = served
    ts0 = time.time_ns() - 100 * 10**9
    for host in ("esx0", "esx1"):
        spec = GroupSpec("cg", (VmSpec(f"{host}-vm", (DiskSpec("0", 4 * 2**20),)),))
        reply = await r.client.open_session("src", spec, 0, 1, member_id=host)
        stream = r.client.stream(reply.session_id)
        for n in range(1, 5):  # per member: write, marker cg-n (seqs 2n-1, 2n), 10 s apart
            label = f"cg-{n}".encode()
            marker = Record(2 * n, 0, 0, 0, ts0 + n * 10**10, codec.checksum(label), label,
                            KIND_CONSISTENCY)  # fmt: skip
            await stream.send([make_record(2 * n - 1, ts=ts0 + n * 10**10), marker])
            assert (await stream.recv()) is not None
        stream.cancel()
    for m in r.target.members("cg"):
        m.verdicts.start_watching(1)
    err = await _refused(r.client.mark_compromised(
        pb.MarkCompromisedRequest(group_id="cg", start_seq=3, reason="seqs are per member")
    ))  # fmt: skip
    assert err.code == "INVALID_ARGUMENT" and "start_seq" in str(err)
    marked = await r.client.mark_compromised(
        pb.MarkCompromisedRequest(
            group_id="cg", start_time_unix_ns=ts0 + 3 * 10**10, reason="SIEM"
        )  # fmt: skip
    )
    assert sorted((s.member_id, s.start_seq) for s in marked) == [("esx0", 5), ("esx1", 5)]
    verdicts = {p.seq: p.verdict for p in await r.client.list_points("cg")}
    assert verdicts == {1: pb.VERDICT_CLEAN, 2: pb.VERDICT_CLEAN, 3: pb.VERDICT_SUSPECT,
                        4: pb.VERDICT_SUSPECT}  # fmt: skip
    plan = await export_image(r.client, "cg", "esx1-vm", 0, "last-clean", None)
    assert plan.image.point.seq == 2  # marker cg-2
    bands = (await r.client.timeline("cg")).suspect_bands
    assert {(b.member_id, b.start_seq, b.end_seq) for b in bands} == {("esx0", 3, 4),
                                                                     ("esx1", 3, 4)}  # fmt: skip
    err = await _refused(r.client.dismiss_suspicion("cg", "s-1", "false alarm"))
    assert err.code == "INVALID_ARGUMENT" and "member_id" in str(err)
    await r.client.dismiss_suspicion("cg", "s-1", "false alarm", member_id="esx0")
    verdicts = {p.seq: p.verdict for p in await r.client.list_points("cg")}
    assert verdicts[3] == pb.VERDICT_SUSPECT  # esx1's suspicion still stands
    await r.client.dismiss_suspicion("cg", "s-1", "false alarm", member_id="esx1")
    plan = await export_image(r.client, "cg", "esx1-vm", 0, "last-clean", None)
    assert plan.image.point.seq == 4


async def _refused(call: Any) -> RemoteError:
    try:
        await call
    except RemoteError as exc:
        return exc
    raise AssertionError("accepted; must be refused")
