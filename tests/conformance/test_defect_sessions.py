# fails on ece6b4a:
#   defect1: points inside the open resync: [1, 2, 3, 4, 5, 6, 7] (5..7 must not be offered)
#   defect2: re-opening with next_seq = durable + 1 answers resync_required=false
#   defect3: next_seq = durable + 1000, oldest_held_seq 0 answers resync_required=false
"""Issue 11, defects 1-3: restore points inside an interrupted resync, resync_required
bypassed by a re-open, lost records not detected. Raw client from protos/ only.

fails on ece6b4a: see the comment above and each test's "Today:".
"""

from __future__ import annotations

import grpc

from tests.conformance.conftest import (
    KIND_RESYNC_END,
    KIND_RESYNC_START,
    Client,
    refused,
)


def _three_points(client: Client) -> None:
    client.open()
    for seq in (1, 2, 3):
        client.send([client.write(seq, bytes([seq]) * 4096, offset=seq * 4096)])


def test_defect1_second_resync_start_keeps_the_gap_open(client: Client) -> None:
    """Contract: a RESYNC_START opens a gap that only a RESYNC_END closes; a second
    RESYNC_START (a source restarted during its resync) extends the same gap. The first
    RESYNC_START itself is a restore point (the state before the resync); no seq after it
    up to (not including) the RESYNC_END is ever offered as a restore point, by
    ListRestorePoints, GetTimeline or an `at` time inside the gap.

    Today: points 5..7 (the region writes and the second RESYNC_START) are listed once the
    second RESYNC_START arrives.
    """
    _three_points(client)
    client.send([client.marker(4, KIND_RESYNC_START, "resync bytes=12288 cause=test")])
    inside_ns = client.write(5, b"\5" * 4096).header.source_time_unix_ns
    client.send([client.write(5, b"\5" * 4096, ts=inside_ns)])
    client.send([client.write(6, b"\6" * 4096, offset=4096)])
    # The source is restarted (SIGTERM during its resync) and starts a full resync again.
    r = client.open(next_seq=7)
    assert r.durable_seq == 6
    client.send([client.marker(7, KIND_RESYNC_START, "resync bytes=12288 cause=restart")])
    client.send([client.write(8, b"\10" * 4096)])
    offered = {p.seq for p in client.points()}
    assert offered.isdisjoint(range(5, 9)), f"points inside the open resync: {sorted(offered)}"
    for span in client.timeline().spans:
        if span.restorable:
            assert span.end_seq <= 4, f"restorable span {span.start_seq}..{span.end_seq}"
    client.send([client.marker(9, KIND_RESYNC_END, "resync")])
    offered = {p.seq for p in client.points()}
    assert offered.isdisjoint(range(5, 9)) and 9 in offered, sorted(offered)
    plan, _ = client.read(_iso(inside_ns), dry_run=True)
    assert plan.point.seq <= 4


def _iso(ns: int) -> str:
    import datetime as dt

    secs, frac = divmod(ns, 10**9)
    return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def test_defect2_reopen_does_not_clear_resync_required(client: Client) -> None:
    """Contract: once a handshake answered resync_required, every later handshake of the
    group answers it too, whatever next_seq/oldest_held_seq say, until a RESYNC_START is
    durable; plain writes are FAILED_PRECONDITION and the group's state is
    GROUP_STATE_RESYNC_REQUIRED.

    Today: re-opening with next_seq = durable_seq + 1 answers resync_required=false and
    the next plain write is acked.
    """
    _three_points(client)
    assert client.open(next_seq=1).resync_required  # the source lost its state
    again = client.open(next_seq=4, oldest_held_seq=0)
    assert again.resync_required, "re-opening with next_seq = durable + 1 cleared it"
    e = refused(lambda: client.send([client.write(4, b"\4" * 4096)], timeout=15))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    state = client.wire.enum("GroupState", "GROUP_STATE_RESYNC_REQUIRED")
    assert client.status().state == state
    assert {p.seq for p in client.points()} <= {1, 2, 3}


def test_defect3_seq_jump_means_records_lost(client: Client) -> None:
    """Contract: a handshake whose next_seq is above durable_seq + 1 while the source holds
    nothing older (oldest_held_seq = 0) means the records in between are lost on both
    sides: the answer is resync_required=true with a reason naming both seqs.

    Today: resync_required=false, and every later write is refused as a seq gap.
    """
    _three_points(client)
    r = client.open(next_seq=3 + 1000, oldest_held_seq=0)
    assert r.resync_required, "1000 records lost, no resync required"
    assert "3" in r.resync_reason and "1003" in r.resync_reason
