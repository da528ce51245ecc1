"""Bad input on the restore-point side of the API: ReadImage, CreateBookmark,
ListRestorePoints, GetTimeline, and marker records from the source.

Every test runs a real target (RocksDB index, journal segments, replica files) behind a
real grpc.aio server. Each bad request must get the exact gRPC status code, a message
naming the offending field, and must leave everything durable as it was.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Running, make_record, small_group, start_target, stop_target

import cdp.target.target as target_mod
from cdp import codec
from cdp.errors import RemoteError
from cdp.journal.index import Point
from cdp.record import KIND_APP_CONSISTENT, KIND_BOOKMARK, Record
from cdp.restore.spec import format_ns
from cdp.rpc import wire
from cdp.rpc.client import ReplicationClient, iterate, translated
from cdp.source.buffer import SourceBuffer
from cdp.source.shipper import Shipper, ShipperConfig
from cdp.v1 import replication_pb2 as pb

MiB = 2**20
GROUP = "pts"
SIZE = 4 * MiB
SPEC = small_group(GROUP, vms=1, disks=2, size=SIZE)
VM = f"{GROUP}-vm0"
BATCH = 3
"""Records per batch in the standard history: restore points at 3, 6, 9, ..."""


# -- helpers ---------------------------------------------------------------------------


def data_for(seq: int, size: int = 512) -> bytes:
    """Distinct bytes for each seq, so images show exactly which writes they hold."""
    return (seq.to_bytes(8, "little") * (size // 8 + 1))[:size]


def write(seq: int, disk: int = 0, offset: int | None = None) -> Record:
    """A write record with a real (current) source time."""
    off = (seq * 4096) % SIZE if offset is None else offset
    return make_record(seq, disk=disk, offset=off, data=data_for(seq), ts=time.time_ns())


def marker(seq: int, label: str | bytes, kind: int = KIND_BOOKMARK, **fields: int) -> Record:
    """A marker record as the source builds it; ``fields`` override header fields."""
    raw = label.encode() if isinstance(label, str) else label
    rec = Record(seq, 0, 0, 0, time.time_ns(), codec.checksum(raw), raw, kind)
    for name, value in fields.items():
        setattr(rec, name, value)
    return rec


class Source:
    """A hand-driven source: batches sent and acked one at a time.

    A stream's end ends its session at the target, so every batch gets a fresh
    handshake and stream (as a reconnecting source would).
    """

    def __init__(self, client: ReplicationClient, spec: object = SPEC) -> None:
        self.client = client
        self.spec = spec
        self.next_seq = 1
        self.session = ""

    async def open(self) -> None:
        reply = await self.client.open_session("host-a", self.spec, 0, self.next_seq)  # type: ignore[arg-type]
        assert not reply.resync_required, reply.resync_reason
        self.session = reply.session_id
        self.next_seq = reply.durable_seq + 1

    async def send(self, records: list[Record]) -> int:
        """Send one batch on a fresh session and wait until it is durable; return its ack."""
        await self.open()
        stream = self.client.stream(self.session)
        try:
            await stream.send(records)
            last = records[-1].seq
            while True:
                ack = await stream.recv()
                assert ack is not None, "stream ended before the batch was acked"
                if ack.durable_seq >= last:
                    self.next_seq = ack.durable_seq + 1
                    return ack.durable_seq
        finally:
            stream.cancel()

    async def writes(self, n: int, **kw: int) -> int:
        """One batch of ``n`` writes; return the batch's restore point seq."""
        return await self.send([write(self.next_seq + i, **kw) for i in range(n)])

    async def rejected(self, records: list[Record]) -> RemoteError:
        """Send a batch that must be refused; return the error."""
        with pytest.raises(RemoteError) as info:
            await self.send(records)
        return info.value


async def history(r: Running, batches: int = 4) -> Source:
    """A group with ``batches`` batches of BATCH writes: points at 3, 6, 9, ..."""
    src = Source(r.client)
    for _ in range(batches):
        await src.writes(BATCH)
    return src


async def journal_call(client: ReplicationClient, reqs: list[pb.StreamJournalRequest]) -> list[int]:
    """Send raw batches on one stream (grpc writes them), return every ack's durable seq."""
    call = client._stub.StreamJournal(iterate(reqs))
    with translated():
        return [m.durable_seq async for m in call]


async def read_all(r: Running, at: str, **kw: object) -> list[pb.ReadImageResponse]:
    """Every message of a ReadImage call (plan first)."""
    fields: dict[str, object] = {"group_id": GROUP, "vm_id": VM, "disk": 0, "at": at, **kw}
    call = r.client._stub.ReadImage(pb.ReadImageRequest(**fields), timeout=30)  # type: ignore[arg-type]
    with translated():
        return [m async for m in call]


async def image_error(r: Running, at: str, **kw: object) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        await read_all(r, at, **kw)
    return info.value


async def raw_page(r: Running, **fields: object) -> pb.ListRestorePointsResponse:
    req = pb.ListRestorePointsRequest(group_id=GROUP, **fields)  # type: ignore[arg-type]
    with translated():
        resp: pb.ListRestorePointsResponse = await r.client._stub.ListRestorePoints(req, timeout=10)
    return resp


async def page_error(r: Running, **fields: object) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        await raw_page(r, **fields)
    return info.value


async def bookmark_error(r: Running, name: str, group: str = GROUP) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        await r.client.create_bookmark(group, name)
    return info.value


def assert_error(err: RemoteError, code: str, *words: str) -> None:
    assert err.code == code, str(err)
    for w in words:
        assert w in str(err), (w, str(err))


@dataclass(frozen=True)
class Durable:
    """What a rejected request must not change."""

    durable_seq: int
    applied_seq: int
    journal_bytes: int
    points: tuple[tuple[int, int, int, str], ...]


async def durable(r: Running, group: str = GROUP) -> Durable:
    (g,) = (await r.client.status(group)).groups
    points = await r.client.list_points(group)
    return Durable(
        g.durable_seq,
        g.applied_seq,
        g.journal_bytes,
        # a batch end tagged as a checkpoint meanwhile is the same durable point
        tuple((p.seq, p.source_time_unix_ns, _batch_end(p.kind), p.label) for p in points),
    )


def _batch_end(kind: int) -> int:
    return pb.POINT_KIND_CRASH_CONSISTENT if kind == pb.POINT_KIND_CHECKPOINT else kind


async def bookmarks(r: Running, group: str = GROUP) -> list[tuple[str, int]]:
    points = await r.client.list_points(group, labelled_only=True)
    return [(p.label, p.seq) for p in points if p.kind == pb.POINT_KIND_BOOKMARK]


@pytest.fixture
async def hist(tmp_path: str) -> AsyncIterator[Running]:
    """A target that keeps one hour of history (nothing is applied during a test)."""
    r = await start_target(os.path.join(str(tmp_path), "target"), history_window_s=3600.0)
    try:
        yield r
    finally:
        await stop_target(r)


# -- ReadImage: which point, which disk, which bytes -----------------------------------


async def test_image_at_a_good_point_works(hist: Running) -> None:
    """The baseline the bad-input cases are measured against."""
    await history(hist)
    msgs = await read_all(hist, "6")
    plan = msgs[0].plan
    assert plan.point.seq == 6 and plan.base_seq == 0
    image = bytearray(SIZE)
    for m in msgs[1:]:
        image[m.offset_bytes : m.offset_bytes + len(m.data)] = m.data
    for seq in range(1, 13):
        at = (seq * 4096) % SIZE
        want = data_for(seq) if seq <= 6 else bytes(512)
        assert image[at : at + 512] == want, seq


async def test_image_of_writes_across_a_4mib_boundary(hist: Running) -> None:
    size = 12 * MiB
    spec = small_group("wide", vms=1, disks=1, size=size)
    src = Source(hist.client, spec)
    extents = [(4 * MiB - 4096, 8192), (6 * MiB + 512, 3 * MiB), (12 * MiB - 1024, 1024)]
    await src.send(
        [
            make_record(i + 1, offset=off, data=data_for(i + 1, n), ts=time.time_ns())
            for i, (off, n) in enumerate(extents)
        ]
    )
    msgs = await read_all(hist, "latest", group_id="wide", vm_id="wide-vm0")
    image = bytearray(size)
    for m in msgs[1:]:
        image[m.offset_bytes : m.offset_bytes + len(m.data)] = m.data
    want = bytearray(size)
    for i, (off, n) in enumerate(extents):
        want[off : off + n] = data_for(i + 1, n)
    assert image == want


async def test_image_at_seq_beyond_durable_is_not_found(hist: Running) -> None:
    await history(hist)
    err = await image_error(hist, "999999")
    assert_error(err, "NOT_FOUND", "at:", "999999", "newest restore point is 12")


async def test_image_at_seq_inside_a_batch_is_not_a_restore_point(hist: Running) -> None:
    await history(hist)
    for seq in ("1", "2", "4", "11"):
        err = await image_error(hist, seq)
        assert_error(err, "NOT_FOUND", "at:", "not a restore point")


async def test_image_at_time_before_any_point_is_out_of_range(hist: Running) -> None:
    await history(hist)
    err = await image_error(hist, "2001-01-01T00:00:00Z")
    assert_error(err, "OUT_OF_RANGE", "at:", "2001-01-01")


async def test_image_at_time_after_the_newest_point_is_the_newest(hist: Running) -> None:
    await history(hist)
    msgs = await read_all(hist, "2200-01-01T00:00:00Z", dry_run=True)
    assert [m.plan.point.seq for m in msgs] == [12]


@pytest.mark.parametrize("at", ["2999-01-01T00:00:00Z", "1000-01-01", "9999-12-31"])
async def test_image_at_time_outside_int64_ns_is_answered_cleanly(hist: Running, at: str) -> None:
    await history(hist)
    try:
        msgs = await read_all(hist, at, dry_run=True)
    except RemoteError as err:
        assert err.code in ("INVALID_ARGUMENT", "OUT_OF_RANGE"), str(err)
        assert "at:" in str(err)
    else:
        assert at.startswith("9") and msgs[0].plan.point.seq == 12


@pytest.mark.parametrize("at", ["2026-13-45T99:00", "2026-02-30", "2026-01-01Tnoon"])
async def test_image_at_malformed_time_is_invalid(hist: Running, at: str) -> None:
    await history(hist)
    err = await image_error(hist, at)
    assert_error(err, "INVALID_ARGUMENT", "at:", "ISO-8601")


async def test_image_at_unknown_bookmark_is_not_found(hist: Running) -> None:
    await history(hist)
    err = await image_error(hist, "no-such-bookmark")
    assert_error(err, "NOT_FOUND", "at:", "no-such-bookmark")


@pytest.mark.parametrize("at", ["", "   "])
async def test_image_at_empty_is_invalid(hist: Running, at: str) -> None:
    await history(hist)
    err = await image_error(hist, at)
    assert_error(err, "INVALID_ARGUMENT", "at:")


async def test_image_latest_of_a_group_without_writes_is_not_found(hist: Running) -> None:
    await Source(hist.client).open()
    err = await image_error(hist, "latest")
    assert_error(err, "NOT_FOUND", "at:", "no restore point")


async def test_image_of_unknown_group_is_not_found(hist: Running) -> None:
    await history(hist)
    err = await image_error(hist, "latest", group_id="nope")
    assert_error(err, "NOT_FOUND", "group_id", "nope")


@pytest.mark.parametrize(("vm", "disk"), [("no-such-vm", 0), (VM, 2), (VM, 99), ("", 0)], ids=str)
async def test_image_of_unknown_vm_or_disk_is_not_found(hist: Running, vm: str, disk: int) -> None:
    await history(hist)
    err = await image_error(hist, "latest", vm_id=vm, disk=disk)
    assert_error(err, "NOT_FOUND", "vm_id", repr(vm))
    if vm == VM:
        assert f"disk {disk}" in str(err)


@pytest.mark.parametrize("offset", [1, 511, 513, 4095])
async def test_image_offset_not_sector_aligned_is_invalid(hist: Running, offset: int) -> None:
    await history(hist)
    err = await image_error(hist, "latest", offset_bytes=offset)
    assert_error(err, "INVALID_ARGUMENT", "offset_bytes")


async def test_image_length_not_sector_aligned_names_length(hist: Running) -> None:
    await history(hist)
    err = await image_error(hist, "latest", length_bytes=1000)
    assert_error(err, "INVALID_ARGUMENT", "length_bytes")


async def test_image_offset_past_capacity_is_invalid(hist: Running) -> None:
    await history(hist)
    err = await image_error(hist, "latest", offset_bytes=SIZE + 512)
    assert_error(err, "INVALID_ARGUMENT", "offset_bytes", "capacity")


async def test_rejected_image_reads_leave_apply_running(tmp_path: str) -> None:
    """A ReadImage that fails after pausing apply must resume it (history window 0)."""
    r = await start_target(os.path.join(str(tmp_path), "t"), history_window_s=0.0)
    try:
        src = Source(r.client)
        await src.writes(BATCH)
        for at in ("999", "2001-01-01", "2026-13-45", "nope", " "):
            with pytest.raises(RemoteError):
                await read_all(r, at)
        last = await src.writes(BATCH)
        deadline = time.monotonic() + 5
        while (await r.client.status(GROUP)).groups[0].applied_seq < last:
            assert time.monotonic() < deadline, "apply stayed paused after failed image reads"
            await asyncio.sleep(0.01)
    finally:
        await stop_target(r)


# -- CreateBookmark ----------------------------------------------------------------------


async def test_bookmark_then_image_at_its_name(hist: Running) -> None:
    src = await history(hist, 2)
    point = await hist.client.create_bookmark(GROUP, "before-upgrade")
    assert point.seq == 6 and point.kind == pb.POINT_KIND_BOOKMARK
    await src.writes(BATCH)
    msgs = await read_all(hist, "before-upgrade", dry_run=True)
    assert msgs[0].plan.point.seq == 6


async def test_duplicate_bookmark_is_already_exists(hist: Running) -> None:
    src = await history(hist, 2)
    await hist.client.create_bookmark(GROUP, "nightly")
    await src.writes(BATCH)
    before = await durable(hist)
    err = await bookmark_error(hist, "nightly")
    assert_error(err, "ALREADY_EXISTS", "name", "nightly")
    assert await durable(hist) == before
    msgs = await read_all(hist, "nightly", dry_run=True)
    assert msgs[0].plan.point.seq == 6


@pytest.mark.parametrize("name", ["latest", "12345", "0", "2026-01-01", "2026-01-01T10:00"])
async def test_bookmark_name_that_reads_as_another_spec_is_invalid(
    hist: Running, name: str
) -> None:
    await history(hist, 1)
    before = await durable(hist)
    err = await bookmark_error(hist, name)
    assert_error(err, "INVALID_ARGUMENT", "name")
    assert await durable(hist) == before


@pytest.mark.parametrize(
    "name", ["", "x" * 129, "y" * 200, "tab\there", "new\nline", "nul\0"], ids=repr
)
async def test_bookmark_name_not_1_to_128_printable_is_invalid(hist: Running, name: str) -> None:
    await history(hist, 1)
    before = await durable(hist)
    err = await bookmark_error(hist, name)
    assert_error(err, "INVALID_ARGUMENT", "name")
    assert await durable(hist) == before


async def test_bookmark_name_of_128_characters_is_fine(hist: Running) -> None:
    await history(hist, 1)
    name = "é" * 128
    point = await hist.client.create_bookmark(GROUP, name)
    assert point.label == name
    assert await bookmarks(hist) == [(name, 3)]


async def test_bookmark_of_group_without_durable_write_is_failed_precondition(
    hist: Running,
) -> None:
    await Source(hist.client).open()
    err = await bookmark_error(hist, "too-early")
    assert_error(err, "FAILED_PRECONDITION", "group_id", "nothing durable")
    assert await bookmarks(hist) == []


async def test_bookmark_of_unknown_group_is_not_found(hist: Running) -> None:
    await history(hist, 1)
    err = await bookmark_error(hist, "x", group="nope")
    assert_error(err, "NOT_FOUND", "group_id", "nope")


async def test_concurrent_bookmarks_with_one_name_one_wins(
    hist: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    await history(hist, 1)
    index = hist.target.index
    real_tag = index.tag_point  # type: ignore[union-attr]

    def slow_tag(group: str, point: Point) -> None:  # a busy disk under RocksDB
        time.sleep(0.2)
        real_tag(group, point)

    monkeypatch.setattr(index, "tag_point", slow_tag)
    results = await asyncio.gather(
        *(hist.client.create_bookmark(GROUP, "race") for _ in range(4)), return_exceptions=True
    )
    errors = [e for e in results if isinstance(e, BaseException)]
    assert len(errors) == 3, results
    assert all(isinstance(e, RemoteError) and e.code == "ALREADY_EXISTS" for e in errors)


async def test_bookmark_at_an_app_consistent_point_keeps_it_app_consistent(
    hist: Running,
) -> None:
    src = await history(hist, 1)
    await src.send([write(4), marker(5, "db quiesced", KIND_APP_CONSISTENT)])
    await hist.client.create_bookmark(GROUP, "after-quiesce")
    points = await hist.client.list_points(GROUP, labelled_only=True)
    kinds = {(p.seq, p.kind, p.label) for p in points}
    assert (5, pb.POINT_KIND_APP_CONSISTENT, "db quiesced") in kinds, kinds


async def test_two_bookmarks_at_one_point_are_both_listed(hist: Running) -> None:
    await history(hist, 1)
    await hist.client.create_bookmark(GROUP, "first")
    await hist.client.create_bookmark(GROUP, "second")
    names = {label for label, _ in await bookmarks(hist)}
    assert names == {"first", "second"}


async def test_bookmark_with_surrounding_spaces_is_usable_or_refused(hist: Running) -> None:
    await history(hist, 1)
    try:
        await hist.client.create_bookmark(GROUP, " padded ")
    except RemoteError as err:
        assert_error(err, "INVALID_ARGUMENT", "name")
        return
    msgs = await read_all(hist, " padded ", dry_run=True)
    assert msgs[0].plan.point.seq == 3


# -- bookmarks and markers placed in-band by the source ---------------------------------


async def test_inband_bookmark_is_listed_and_resolves(hist: Running) -> None:
    src = await history(hist, 1)
    await src.send([write(4), marker(5, "pre-patch"), write(6)])
    assert await bookmarks(hist) == [("pre-patch", 5)]
    msgs = await read_all(hist, "pre-patch", dry_run=True)
    assert msgs[0].plan.point.seq == 5 and msgs[0].plan.records == 4  # writes 1-4 of disk 0


async def test_inband_duplicate_bookmark_is_already_exists(hist: Running) -> None:
    src = await history(hist, 1)
    await src.send([write(4), marker(5, "weekly")])
    before = await durable(hist)
    err = await src.rejected([write(6), marker(7, "weekly")])
    assert_error(err, "ALREADY_EXISTS", "name", "weekly")
    assert await durable(hist) == before
    assert await bookmarks(hist) == [("weekly", 5)]
    # the source can go on with the seqs it had
    assert await src.send([write(6), marker(7, "weekly-2")]) == 7


async def test_inband_bookmark_duplicating_an_rpc_bookmark_is_already_exists(
    hist: Running,
) -> None:
    src = await history(hist, 1)
    await hist.client.create_bookmark(GROUP, "ops")
    before = await durable(hist)
    err = await src.rejected([marker(4, "ops")])
    assert_error(err, "ALREADY_EXISTS", "ops")
    assert await durable(hist) == before


async def test_inband_duplicate_bookmark_within_one_batch_is_already_exists(
    hist: Running,
) -> None:
    src = await history(hist, 1)
    before = await durable(hist)
    err = await src.rejected([marker(4, "twice"), write(5), marker(6, "twice")])
    assert_error(err, "ALREADY_EXISTS", "twice")
    assert await durable(hist) == before


async def test_app_consistent_labels_need_not_be_unique(hist: Running) -> None:
    src = await history(hist, 1)
    await src.send([marker(4, "quiesced", KIND_APP_CONSISTENT)])
    await src.send([write(5), marker(6, "quiesced", KIND_APP_CONSISTENT)])
    points = await hist.client.list_points(GROUP, labelled_only=True)
    apps = [p.seq for p in points if p.kind == pb.POINT_KIND_APP_CONSISTENT]
    assert apps == [4, 6]


async def test_inband_duplicate_bookmark_in_pipelined_batches(
    hist: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = await history(hist, 1)
    journal = hist.target.groups[GROUP].journal
    real_sync = journal.sync

    def slow_sync() -> tuple[int, int]:  # a slow disk: batches wait longer for fsync
        time.sleep(0.3)
        return real_sync()

    monkeypatch.setattr(journal, "sync", slow_sync)
    await src.open()
    reqs = [  # pipelined: the second batch arrives before the first is durable
        wire.records_to_pb(src.session, [write(4), marker(5, "pipelined")]),
        wire.records_to_pb(src.session, [write(6), marker(7, "pipelined")]),
    ]
    with pytest.raises(RemoteError) as info:
        await journal_call(hist.client, reqs)
    assert_error(info.value, "ALREADY_EXISTS", "pipelined")
    assert await bookmarks(hist) == [("pipelined", 5)]
    assert (await hist.client.status(GROUP)).groups[0].durable_seq == 5


async def test_send_after_a_rejected_batch_reports_the_targets_status(hist: Running) -> None:
    src = await history(hist, 1)
    await hist.client.create_bookmark(GROUP, "taken")
    await src.open()
    stream = hist.client.stream(src.session)
    try:
        with pytest.raises(RemoteError) as info:
            await stream.send([marker(4, "taken")])
            for i in range(50):  # a pipelining source keeps sending
                await stream.send([write(5 + i)])
            while await stream.recv() is not None:  # the status comes on the read side
                pass
    finally:
        stream.cancel()
    assert_error(info.value, "ALREADY_EXISTS", "taken")


async def test_shipper_stops_on_a_duplicate_bookmark_marker(hist: Running) -> None:
    await history(hist, 1)
    await hist.client.create_bookmark(GROUP, "taken")
    buf = SourceBuffer(next_seq=4)
    buf.append_marker(KIND_BOOKMARK, "taken", time.time_ns())
    noise = random.Random(7)
    for i in range(3000):  # incompressible: many ~1 MiB batches follow the marker
        buf.append(i % 2, (i % 512) * 4096, noise.randbytes(4096), time.time_ns())
    shipper = Shipper(SPEC, buf, hist.client, ShipperConfig("host-a"))
    with pytest.raises(RemoteError) as info:
        await asyncio.wait_for(shipper.run(), 4.0)
    assert_error(info.value, "ALREADY_EXISTS", "taken")
    assert shipper.sessions == 1


@pytest.mark.parametrize("name", ["latest", "7", "2026-01-01"])
async def test_inband_bookmark_name_that_reads_as_another_spec(hist: Running, name: str) -> None:
    src = await history(hist, 1)
    try:
        await src.send([write(4), marker(5, name), write(6)])
    except RemoteError as err:
        assert_error(err, "INVALID_ARGUMENT", "label")
        return
    msgs = await read_all(hist, name, dry_run=True)
    assert msgs[0].plan.point.seq == 5


# -- bad marker records ------------------------------------------------------------------


@pytest.mark.parametrize("kind", [KIND_BOOKMARK, KIND_APP_CONSISTENT])
@pytest.mark.parametrize("length", [512, 4096])
async def test_marker_with_data_length_is_invalid(hist: Running, kind: int, length: int) -> None:
    src = await history(hist, 1)
    before = await durable(hist)
    err = await src.rejected([write(4), marker(5, "m", kind, length=length)])
    assert_error(err, "INVALID_ARGUMENT", "records[1].length_bytes", "marker")
    assert await durable(hist) == before


async def test_marker_with_offset_names_offset(hist: Running) -> None:
    src = await history(hist, 1)
    err = await src.rejected([marker(4, "m", offset=512)])
    assert_error(err, "INVALID_ARGUMENT", "records[0].offset_bytes")


@pytest.mark.parametrize(
    "label",
    [b"\xff\xfe", b"caf\xc3", b"tab\there", b"bell\x07", b"", ("z" * 129).encode()],
    ids=repr,
)
@pytest.mark.parametrize("kind", [KIND_BOOKMARK, KIND_APP_CONSISTENT])
async def test_marker_label_not_printable_utf8_is_invalid(
    hist: Running, label: bytes, kind: int
) -> None:
    src = await history(hist, 1)
    before = await durable(hist)
    err = await src.rejected([write(4), marker(5, label, kind)])
    assert_error(err, "INVALID_ARGUMENT", "records[1].label")
    assert await durable(hist) == before


@pytest.mark.parametrize("kind", [KIND_BOOKMARK, KIND_APP_CONSISTENT])
async def test_marker_with_wrong_checksum_is_data_loss(hist: Running, kind: int) -> None:
    src = await history(hist, 1)
    before = await durable(hist)
    bad = marker(5, "sum", kind)
    bad.data_xxh3 ^= 1
    err = await src.rejected([write(4), bad])
    assert_error(err, "DATA_LOSS", "xxh3_64", "seq 5")
    assert await durable(hist) == before
    assert await bookmarks(hist) == []


@pytest.mark.parametrize("kind", [7, 9, 255, 2**31 - 1])
async def test_unknown_record_kind_is_invalid(hist: Running, kind: int) -> None:
    src = await history(hist, 1)
    before = await durable(hist)
    as_marker = marker(4, "odd", kind)
    err = await src.rejected([as_marker])
    assert_error(err, "INVALID_ARGUMENT", "records[0].kind", str(kind))
    as_write = write(4)
    as_write.kind = kind
    err = await src.rejected([as_write])
    assert_error(err, "INVALID_ARGUMENT", "records[0].kind")
    assert await durable(hist) == before
    assert (await hist.client.status(GROUP)).groups[0].state != pb.GROUP_STATE_ERROR
    assert await src.writes(1) == 4


async def test_negative_record_kind_is_invalid(hist: Running) -> None:
    src = await history(hist, 1)
    await src.open()
    req = wire.records_to_pb(src.session, [write(4)])
    req.records[0].kind = -3  # type: ignore[assignment]
    with pytest.raises(RemoteError) as info:
        await journal_call(hist.client, [req])
    assert_error(info.value, "INVALID_ARGUMENT", "records[0].kind")
    assert (await hist.client.status(GROUP)).groups[0].durable_seq == 3


# -- ListRestorePoints ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [10001, 20000, 2**32 - 1])
async def test_list_page_size_too_large_is_invalid(hist: Running, size: int) -> None:
    await history(hist, 1)
    err = await page_error(hist, page_size=size)
    assert_error(err, "INVALID_ARGUMENT", "page_size", "10000")


@pytest.mark.parametrize(
    "token", ["garbage", "12", ":", "1:2", "1:2:3:4", "x:1:0", "1:y:0", "\U0001f600"]
)
async def test_list_garbage_page_token_is_invalid(hist: Running, token: str) -> None:
    await history(hist, 1)
    err = await page_error(hist, page_token=token)
    assert_error(err, "INVALID_ARGUMENT", "page_token")


async def test_list_end_before_start_is_invalid(hist: Running) -> None:
    await history(hist, 1)
    now = time.time_ns()
    err = await page_error(hist, start_time_unix_ns=now, end_time_unix_ns=now - 1)
    assert_error(err, "INVALID_ARGUMENT", "end_time_unix_ns", "start_time_unix_ns")


async def test_list_of_unknown_group_is_not_found(hist: Running) -> None:
    await history(hist, 1)
    with pytest.raises(RemoteError) as info:
        await hist.client.list_points("nope")
    assert_error(info.value, "NOT_FOUND", "group_id", "nope")


async def test_list_pages_concatenate_to_the_full_listing(hist: Running) -> None:
    src = Source(hist.client)
    for n in (1, 2, 1, 3, 1, 1, 2, 1, 1, 2, 1):  # eleven points, uneven batches
        await src.writes(n)
    full = await raw_page(hist, page_size=1000)
    assert not full.next_page_token
    seqs = [p.seq for p in full.points]
    assert seqs == [1, 3, 4, 7, 8, 9, 11, 12, 13, 15, 16]
    times = [p.source_time_unix_ns for p in full.points]
    assert times == sorted(times)

    pages, token = [], ""
    while True:
        resp = await raw_page(hist, page_size=3, page_token=token)
        pages.append(list(resp.points))
        token = resp.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    flat = [p for page in pages for p in page]
    assert flat == list(full.points)
    assert len({p.seq for p in flat}) == len(flat)
    # the client's own paging says the same, and so does a page size of 1
    assert await hist.client.list_points(GROUP, page_size=3) == list(full.points)
    assert await hist.client.list_points(GROUP, page_size=1) == list(full.points)


async def test_list_pages_exactly_filling_the_last_page(hist: Running) -> None:
    src = Source(hist.client)
    for _ in range(6):
        await src.writes(1)
    first = await raw_page(hist, page_size=3)
    second = await raw_page(hist, page_size=3, page_token=first.next_page_token)
    assert [p.seq for p in first.points] == [1, 2, 3]
    assert [p.seq for p in second.points] == [4, 5, 6]
    assert not second.next_page_token


async def test_list_pages_within_a_time_range_and_labelled_only(hist: Running) -> None:
    src = Source(hist.client)
    seqs = [await src.writes(1) for _ in range(4)]
    t_from = (await raw_page(hist)).points[-1].source_time_unix_ns
    for i in range(6):
        await src.writes(1)
        if i % 2:
            await hist.client.create_bookmark(GROUP, f"b{i}")
    seqs += [p.seq for p in (await raw_page(hist)).points[4:]]
    t_to = (await raw_page(hist)).points[-2].source_time_unix_ns
    ranged = await hist.client.list_points(GROUP, t_from, t_to, page_size=2)
    everything = (await raw_page(hist)).points
    in_range = [p.seq for p in everything if t_from <= p.source_time_unix_ns <= t_to]
    assert [p.seq for p in ranged] == in_range
    assert in_range[0] == seqs[3] and seqs[-1] in in_range  # bookmark entries share the time
    labelled = await hist.client.list_points(GROUP, labelled_only=True, page_size=1)
    assert [p.label for p in labelled] == ["b1", "b3", "b5"]


# -- a point that left the history window --------------------------------------------


async def test_point_older_than_the_history_window(tmp_path: str) -> None:
    r = await start_target(os.path.join(str(tmp_path), "t"), history_window_s=0.5)
    try:
        src = Source(r.client)
        old = await src.writes(BATCH)
        old_time = (await r.client.list_points(GROUP))[-1].source_time_unix_ns
        deadline = time.monotonic() + 10
        t0 = time.monotonic()
        while (
            time.monotonic() - t0 < 1.5
            or (await r.client.status(GROUP)).groups[0].applied_seq <= old
        ):
            assert time.monotonic() < deadline, "the base never moved past the old point"
            await src.writes(2)
            await asyncio.sleep(0.05)
        (status,) = (await r.client.status(GROUP)).groups
        assert status.applied_seq > old

        err = await image_error(r, str(old))
        assert_error(err, "OUT_OF_RANGE", "at:", "older than the history window")
        err = await image_error(r, format_ns(old_time))
        assert_error(err, "OUT_OF_RANGE", "at:", "history window")

        listed = await r.client.list_points(GROUP)
        assert old not in [p.seq for p in listed]
        assert all(p.seq >= status.applied_seq for p in listed)

        spans = (await r.client.timeline(GROUP)).spans
        assert not spans[0].restorable and spans[0].cause.startswith("retention")
        assert spans[0].start_seq == 1
        assert spans[-1].restorable and spans[-1].end_seq == status.durable_seq
        # the newest point is still readable
        msgs = await read_all(r, "latest", dry_run=True)
        assert msgs[0].plan.point.seq == status.durable_seq
    finally:
        await stop_target(r)


async def test_timeline_spans_do_not_overlap_after_retention(tmp_path: str) -> None:
    r = await start_target(os.path.join(str(tmp_path), "t"), history_window_s=0.3)
    try:
        src = Source(r.client)
        await src.writes(1)
        deadline = time.monotonic() + 10
        while (await r.client.status(GROUP)).groups[0].applied_seq < 3:
            assert time.monotonic() < deadline, "the base never moved"
            await src.writes(1)
            await asyncio.sleep(0.05)
        spans = (await r.client.timeline(GROUP)).spans
        assert len(spans) == 2
        assert spans[0].end_seq < spans[1].start_seq, spans
    finally:
        await stop_target(r)


# -- GetTimeline -------------------------------------------------------------------------


async def test_timeline_of_unknown_group_is_not_found(hist: Running) -> None:
    await history(hist, 1)
    with pytest.raises(RemoteError) as info:
        await hist.client.timeline("nope")
    assert_error(info.value, "NOT_FOUND", "group_id", "nope")


async def test_timeline_of_a_fresh_history_is_one_interval(hist: Running) -> None:
    await history(hist)
    t = await hist.client.timeline(GROUP)
    assert [(s.start_seq, s.end_seq, s.restorable, s.points) for s in t.spans] == [(3, 12, True, 4)]
    assert t.history_health == "ok" and t.history_window_seconds == 3600


# -- an image and an apply round that was already running ------------------------------


async def test_image_while_an_apply_round_is_running(
    hist: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An apply round started just before an image read must not leak into the image.

    Timing is made certain by instrumentation only: the round blocks until the image is
    planned, and planning waits (at most 5 s) for the round to finish.
    """
    src = Source(hist.client)
    for _ in range(10):
        await src.writes(1)  # a point at every seq; seq n writes disk 0 at n * 4096
    group = hist.target.groups[GROUP]
    applier = group.applier
    started, planned, applied = threading.Event(), threading.Event(), threading.Event()
    real_range, real_once, real_plan = (
        applier._apply_range,
        applier.apply_once,
        target_mod.plan_image,
    )

    def apply_range(first: int, last: int) -> int:
        started.set()
        planned.wait(5)
        return real_range(first, last)

    def apply_once(*a: Any) -> int:
        n = real_once(*a)
        if n:
            applied.set()
        return n

    def plan_image(*a: Any) -> Any:
        plan = real_plan(*a)
        planned.set()
        applied.wait(5)
        return plan

    monkeypatch.setattr(applier, "_apply_range", apply_range)
    monkeypatch.setattr(applier, "apply_once", apply_once)
    monkeypatch.setattr(target_mod, "plan_image", plan_image)
    applier.history_window_s = 0.0  # everything is now due for apply
    assert await asyncio.to_thread(started.wait, 5)
    try:
        msgs = await read_all(hist, "5")
    except RemoteError as err:  # the base moved first: the point left the history
        assert_error(err, "OUT_OF_RANGE", "history window")
        return
    image = bytearray(SIZE)
    for m in msgs[1:]:
        image[m.offset_bytes : m.offset_bytes + len(m.data)] = m.data
    for seq in range(1, 11):
        want = data_for(seq) if seq <= 5 else bytes(512)
        assert image[seq * 4096 : seq * 4096 + 512] == want, f"write {seq} in the image at 5"
