"""Conformance of the v1 contract (docs/PROTOCOL.md) from protos/ alone: acks, resync
sequence, `at` grammar, ReadImage ranges, error table, superseded stream, points.

Those passing on ece6b4a are regression tests; those failing are defects to fix (listed
in the module comment below, none marked xfail).
"""

# fails on ece6b4a:
#   superseded idle stream: not ended; the old call runs into its deadline (DEADLINE_EXCEEDED)
#   at grammar: a point's exact ISO time (ns) resolves to the point before (defect 8)
#   one seq one point: "seq 2 changed kind" (a listed crash-consistent point later listed
#   as a checkpoint)

from __future__ import annotations

import os
import time

import grpc
import xxhash

from tests.conformance.conftest import (
    KIND_BOOKMARK,
    KIND_RESYNC_END,
    KIND_RESYNC_START,
    Client,
    MiB,
    refused,
)
from tests.conformance.test_defect_mismatch import iso_ns

S = 10**9


def _points(client: Client, n: int, ts0: int | None = None) -> list[int]:
    """n single-write batches (n points); returns their times."""
    client.open()
    ts0 = ts0 or time.time_ns() - 30 * S
    for seq in range(1, n + 1):
        client.send([client.write(seq, bytes([seq]) * 4096, offset=seq * 4096, ts=ts0 + seq * S)])
    return [ts0 + seq * S for seq in range(1, n + 1)]


def test_acks_are_cumulative_and_monotonic(client: Client) -> None:
    """Three batches on one call: acks never decrease and the last covers seq 3."""
    client.open()
    batches = [client.batch([client.write(s, bytes([s]) * 512)]) for s in (1, 2, 3)]
    acks = [a.durable_seq for a in client.stream(batches, until_seq=3)]
    assert acks == sorted(acks) and acks[-1] == 3


def test_batch_of_durable_records_is_acked(client: Client) -> None:
    """Re-sending an already durable batch (same bytes) is acked with the durable seq."""
    client.open()
    items = [client.write(1, b"a" * 512, ts=1_700_000_000 * S), client.write(2, b"b" * 512)]
    client.send(items)
    client.open(next_seq=3)
    acks = client.stream([client.batch(items)], until_seq=2, timeout=15)
    assert acks and acks[-1].durable_seq == 2


def test_resent_seq_with_other_bytes_is_already_exists(client: Client) -> None:
    """A re-sent seq whose XXH3 differs is ALREADY_EXISTS."""
    client.open()
    client.send([client.write(1, b"a" * 512)])
    client.open(next_seq=2)
    e = refused(lambda: client.send([client.write(1, b"z" * 512)], timeout=15))
    assert e.code() == grpc.StatusCode.ALREADY_EXISTS


def test_bad_checksum_is_data_loss(client: Client) -> None:
    """A wrong xxh3_64 is DATA_LOSS; nothing becomes durable."""
    client.open()
    item = client.write(1, b"a" * 512)
    item.header.xxh3_64 ^= 1
    e = refused(lambda: client.send([item], timeout=15))
    assert e.code() == grpc.StatusCode.DATA_LOSS
    assert client.open().durable_seq == 0


def test_seq_gap_is_failed_precondition(client: Client) -> None:
    """A batch starting above the expected seq is FAILED_PRECONDITION naming records[0].seq."""
    client.open()
    e = refused(lambda: client.send([client.write(5, b"a" * 512)], timeout=15))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "seq" in e.details()


def test_bad_lz4_frame_is_invalid_argument(client: Client) -> None:
    """A payload that is not an LZ4 frame is INVALID_ARGUMENT naming payload."""
    client.open()
    item = client.write(1, b"a" * 512)
    item.payload = b"\0" * len(item.payload)
    e = refused(lambda: client.send([item], timeout=15))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "payload" in e.details()


def test_superseded_idle_stream_ends(client: Client, make_client: object) -> None:
    """A new session ends the earlier, idle stream with FAILED_PRECONDITION."""
    client.open()
    client.send([client.write(1, b"a" * 512)], timeout=15)
    call = client._call
    other = make_client(client.target, group=client.group, vms=client.vms)  # type: ignore[operator]
    other.open(next_seq=2)
    try:
        for _ in call:
            pass
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    else:
        raise AssertionError("the superseded stream ended without an error")
    client._call = None


def test_resync_sequence(client: Client) -> None:
    """CompareRegions names differing regions; RESYNC_START is a point, nothing inside the
    resync is, RESYNC_END is, and the group is REPLICATING again."""
    client.open()
    client.send([client.write(1, b"a" * 4096)])
    same, other = b"a" * 4096, b"b" * 4096
    diff = client.stub.CompareRegions(
        client.wire.CompareRegionsRequest(
            session_id=client.session_id, disk_index=0, region_bytes=4096, offsets=[0, 4096],
            xxh3_64=[xxhash.xxh3_64_intdigest(same), xxhash.xxh3_64_intdigest(other)],
        ), timeout=15,
    )  # fmt: skip
    assert list(diff.differing_offsets) == [4096]
    client.send([client.marker(2, KIND_RESYNC_START, "resync bytes=4096 cause=test")])
    resyncing = client.wire.enum("GroupState", "GROUP_STATE_RESYNCING")
    assert client.status().state == resyncing
    client.send([client.write(3, other, offset=4096)])
    client.send([client.write(4, b"c" * 4096, offset=8192)])
    assert {p.seq for p in client.points()} & {3, 4} == set()
    plan, _ = client.read("latest", dry_run=True)
    assert plan.point.seq == 2
    client.send([client.marker(5, KIND_RESYNC_END, "resync")])
    seqs = {p.seq for p in client.points()}
    assert {1, 2, 5} <= seqs and not seqs & {3, 4}
    replicating = client.wire.enum("GroupState", "GROUP_STATE_REPLICATING")
    assert client.status().state == replicating
    gaps = [s for s in client.timeline().spans if not s.restorable]
    assert gaps and gaps[0].cause.startswith("resync") and gaps[0].start_seq == 3


def test_at_grammar(client: Client) -> None:
    """latest, an exact seq, ISO times with Z and an offset, a bookmark."""
    times = _points(client, 3)
    assert client.read("latest", dry_run=True)[0].point.seq == 3
    assert client.read(" 2 ", dry_run=True)[0].point.seq == 2
    assert client.read(iso_ns(times[1]), dry_run=True)[0].point.seq == 2
    assert client.read(iso_ns(times[1] + S // 2), dry_run=True)[0].point.seq == 2
    secs = -(-times[1] // S)  # the first whole second at or after point 2, before point 3
    import datetime as dt

    plus2 = dt.datetime.fromtimestamp(secs, dt.timezone(dt.timedelta(hours=2)))
    assert client.read(plus2.strftime("%Y-%m-%dT%H:%M:%S+02:00"), dry_run=True)[0].point.seq == 2
    bm = client.stub.CreateBookmark(
        client.wire.CreateBookmarkRequest(group_id=client.group, name="before-upgrade"), timeout=15
    )
    assert bm.point.seq == 3
    assert client.read("before-upgrade", dry_run=True)[0].point.seq == 3


def test_at_refusals(client: Client) -> None:
    """Empty at is INVALID_ARGUMENT; a seq that is not a point or too new is NOT_FOUND; an
    unknown bookmark is NOT_FOUND."""
    client.open()
    client.send([client.write(1, b"a" * 512), client.write(2, b"b" * 512)])  # one point: 2
    cases = {"": grpc.StatusCode.INVALID_ARGUMENT, "1": grpc.StatusCode.NOT_FOUND,
             "9": grpc.StatusCode.NOT_FOUND, "no-such-mark": grpc.StatusCode.NOT_FOUND}  # fmt: skip
    for at, code in cases.items():
        e = refused(lambda at=at: client.read(at, dry_run=True))
        assert e.code() == code, (at, e.code())


def test_bookmark_names_refused_and_reused(client: Client) -> None:
    """Names reading as latest/seq/time are INVALID_ARGUMENT naming name; reuse is
    ALREADY_EXISTS."""
    _points(client, 1)

    def mark(name: str) -> object:
        req = client.wire.CreateBookmarkRequest(group_id=client.group, name=name)
        return client.stub.CreateBookmark(req, timeout=15)

    for bad in ("latest", "123", "2024-01-01T00:00:00Z", " padded", ""):
        e = refused(lambda bad=bad: mark(bad))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in e.details(), bad
    mark("once")
    assert refused(lambda: mark("once")).code() == grpc.StatusCode.ALREADY_EXISTS


def test_bookmark_marker_in_stream(client: Client) -> None:
    """A RECORD_KIND_BOOKMARK marker is a point listed with its label."""
    client.open()
    client.send([client.write(1, b"a" * 512), client.marker(2, KIND_BOOKMARK, "mark-1")])
    labelled = [(p.seq, p.label) for p in client.points(labelled_only=True)]
    assert (2, "mark-1") in labelled


def test_unknown_group_is_not_found(client: Client) -> None:
    """ListRestorePoints/GetTimeline/ReadImage of an unknown group are NOT_FOUND."""
    client.group = "never-seen"
    assert refused(client.points).code() == grpc.StatusCode.NOT_FOUND
    assert refused(client.timeline).code() == grpc.StatusCode.NOT_FOUND
    assert refused(lambda: client.read("latest")).code() == grpc.StatusCode.NOT_FOUND


def test_read_image_ranges(client: Client) -> None:
    """Misaligned offset/length are INVALID_ARGUMENT naming the field; a range past the
    end is clamped; data comes in offset order, each message <= 4 MiB."""
    client.open()
    data = os.urandom(MiB)
    client.send([client.write(1, data, offset=3 * MiB)])
    for kw, name in (({"offset": 100}, "offset_bytes"), ({"length": 100}, "length_bytes")):
        e = refused(lambda kw=kw: client.read("latest", **kw))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and name in e.details()
    e = refused(lambda: client.read("latest", offset=8 * MiB))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "offset_bytes" in e.details()
    _, msgs = client.read("latest", offset=3 * MiB + 4096, length=8 * MiB)
    got = b"".join(m.data for m in msgs)
    assert msgs[0].offset_bytes == 3 * MiB + 4096 and got == data[4096:]
    offsets = [m.offset_bytes for m in msgs]
    assert offsets == sorted(offsets)
    assert max(m.ByteSize() for m in msgs) <= 4 * MiB


def test_one_seq_is_one_point_and_kind_is_stable(client: Client) -> None:
    """No seq is listed twice with non-bookmark kinds; a listed point's kind never changes
    (checkpoints are tagged on the target's cadence, here 1 s)."""
    client.open()
    bookmark = client.wire.enum("PointKind", "POINT_KIND_BOOKMARK")
    first: dict[int, int] = {}
    for seq in range(1, 9):
        client.send([client.write(seq, bytes([seq]) * 512)])
        for p in client.points():
            if p.kind != bookmark:
                assert first.setdefault(p.seq, p.kind) == p.kind, f"seq {p.seq} changed kind"
        time.sleep(0.3)
    listed = [p.seq for p in client.points() if p.kind != bookmark]
    assert len(listed) == len(set(listed))


def test_point_outside_window_is_out_of_range(make_target: object, make_client: object) -> None:
    """With a 0 s window, a point older than the base is OUT_OF_RANGE."""
    t = make_target("--history-window", "0", name="nowindow")  # type: ignore[operator]
    c = make_client(t, group="ow", vms=[("ow-vm", [4 * MiB])])  # type: ignore[operator]
    c.open()
    c.send([c.write(1, b"a" * 512)])
    c.send([c.write(2, b"b" * 512)])
    deadline = time.monotonic() + 10
    while c.status().applied_seq < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    e = refused(lambda: c.read("1", dry_run=True))
    assert e.code() == grpc.StatusCode.OUT_OF_RANGE
