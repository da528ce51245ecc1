"""Bad input on the gRPC edge: exact status code, a message naming the field, and
nothing durable changed (durable seq, status, journal bytes, replica extent bytes).

Every test talks to a real target (RocksDB, segments, replica files) through a real
grpc.aio server; malformed messages are built from cdp.v1 directly.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import lz4.frame
import pytest
from conftest import Running, make_record, small_group

from cdp import codec
from cdp.errors import RemoteError
from cdp.group import GroupSpec
from cdp.rpc import wire
from cdp.rpc.client import GrpcJournalStream, ReplicationClient, translated
from cdp.source.shipper import AckReply
from cdp.v1 import replication_pb2 as pb

MiB = 2**20
GROUP = "g1"
SIZE = 4 * MiB
SPEC = small_group(GROUP, vms=1, disks=2, size=SIZE)
VM = f"{GROUP}-vm0"


# -- helpers ---------------------------------------------------------------------------


async def exchange(client: ReplicationClient, *reqs: pb.StreamJournalRequest) -> list[AckReply]:
    """Send raw batches on one new stream, half-close, return every ack.

    Raises :class:`RemoteError` (the status code name in ``.code``) when the target
    ends the stream with an error.
    """
    call = client._stub.StreamJournal()
    stream = GrpcJournalStream(call, "")
    try:
        for req in reqs:
            with translated():
                await call.write(req)
        with translated():
            await call.done_writing()
        acks = []
        while (ack := await stream.recv()) is not None:
            acks.append(ack)
        return acks
    finally:
        call.cancel()


async def open_raw(client: ReplicationClient, req: pb.OpenSessionRequest) -> pb.OpenSessionResponse:
    """OpenSession with a hand-built request; errors become RemoteError."""
    with translated():
        resp: pb.OpenSessionResponse = await client._stub.OpenSession(req, timeout=10)
    return resp


def handshake(spec: GroupSpec = SPEC, **fields: object) -> pb.OpenSessionRequest:
    """A valid OpenSessionRequest for ``spec``; ``fields`` override its fields."""
    req = pb.OpenSessionRequest(
        protocol_version=1,
        source_id="host-a",
        group_id=spec.group_id,
        vms=wire.vms_to_pb(spec),
        oldest_held_seq=0,
        next_seq=0,
    )
    for name, value in fields.items():
        setattr(req, name, value)
    return req


def extent(r: Running, vm: str = VM, n: int = 0) -> str:
    return os.path.join(r.data_dir, "replicas", vm, f"{vm}_{n}-flat.vmdk")


def read_extent(r: Running, offset: int, length: int, vm: str = VM, n: int = 0) -> bytes:
    with open(extent(r, vm, n), "rb") as f:
        f.seek(offset)
        return f.read(length)


@dataclass(frozen=True)
class Snap:
    """The durable facts of a group that a rejected request must not change."""

    durable_seq: int
    durable_ns: int
    applied_seq: int
    journal_bytes: int
    received_bytes: int


async def snap(r: Running, group: str = GROUP) -> Snap:
    st = await r.client.status(group)
    (g,) = st.groups
    return Snap(
        g.durable_seq,
        g.durable_source_time_unix_ns,
        g.applied_seq,
        g.journal_bytes,
        g.received_bytes,
    )


async def wait_applied(r: Running, seq: int, group: str = GROUP, timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while (await snap(r, group)).applied_seq < seq:
        assert time.monotonic() < end, f"applied_seq never reached {seq}"
        await asyncio.sleep(0.005)


DATA = [bytes([0x41 + i]) * 512 for i in range(3)]


async def prime(r: Running) -> tuple[str, Snap]:
    """Make seq 1..3 durable and applied (disk 0 at 0, 4096, 8192); return (session, snap)."""
    reply = await r.client.open_session("host-a", SPEC, 0, 1)
    assert reply.durable_seq == 0
    recs = [make_record(i + 1, 0, i * 4096, DATA[i]) for i in range(3)]
    acks = await exchange(r.client, wire.records_to_pb(reply.session_id, recs))
    assert acks[-1].durable_seq == 3
    await wait_applied(r, 3)
    assert read_extent(r, 0, 512) == DATA[0]
    reply = await r.client.open_session("host-a", SPEC, 0, 4)
    return reply.session_id, await snap(r)


async def assert_unchanged(r: Running, before: Snap, zeros_at: tuple[int, int] | None = None,
                           disk: int = 0) -> None:  # fmt: skip
    """A new session resumes at the same durable seq; status and extent bytes unchanged."""
    reply = await r.client.open_session("checker", SPEC, 0, 0)
    assert reply.durable_seq == before.durable_seq
    assert not reply.resync_required
    await asyncio.sleep(0.03)  # let an apply round run, should anything have slipped in
    assert await snap(r) == before
    if zeros_at is not None:
        offset, length = zeros_at
        assert read_extent(r, offset, length, n=disk) == bytes(length)
    # the group still takes the next seq
    nxt = make_record(before.durable_seq + 1, 1, SIZE - 512, b"z" * 512)
    acks = await exchange(r.client, wire.records_to_pb(reply.session_id, [nxt]))
    assert acks[-1].durable_seq == before.durable_seq + 1


def batch(session: str, *recs: object) -> pb.StreamJournalRequest:
    return wire.records_to_pb(session, list(recs))  # type: ignore[arg-type]


async def rejected(r: Running, req: pb.StreamJournalRequest, code: str, *words: str) -> str:
    """Send ``req``; assert it is rejected with ``code`` and a message holding ``words``."""
    with pytest.raises(RemoteError) as info:
        await exchange(r.client, req)
    err = info.value
    assert err.code == code, str(err)
    for word in words:
        assert word in str(err), (word, str(err))
    return str(err)


# -- 1. unknown group / disk -----------------------------------------------------------


async def test_unknown_disk_index_is_not_found(running: Running) -> None:
    session, before = await prime(running)
    req = batch(session, make_record(4, disk=2, offset=1 * MiB, data=b"q" * 512))
    await rejected(running, req, "NOT_FOUND", "disk_index", "records[0]")
    reply = await running.client.open_session("host-a", SPEC, 0, 4)
    req = batch(reply.session_id, make_record(4, disk=2**32 - 1, offset=0, data=b"q" * 512))
    await rejected(running, req, "NOT_FOUND", "disk_index")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))
    assert not os.path.exists(os.path.join(running.data_dir, "replicas", VM, f"{VM}_2-flat.vmdk"))


async def test_unknown_disk_in_a_later_record_rejects_the_whole_batch(running: Running) -> None:
    session, before = await prime(running)
    good = make_record(4, disk=0, offset=1 * MiB, data=b"g" * 512)
    bad = make_record(5, disk=7, offset=0, data=b"b" * 512)
    await rejected(running, batch(session, good, bad), "NOT_FOUND", "records[1].disk_index")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


async def test_status_of_unknown_group_is_not_found(running: Running) -> None:
    await prime(running)
    for name in ("nope", "g", "g11", "../g1"):
        with pytest.raises(RemoteError) as info:
            await running.client.status(name)
        assert info.value.code == "NOT_FOUND"
        assert "group_id" in str(info.value)
    st = await running.client.status()
    assert [g.group_id for g in st.groups] == [GROUP]


# -- 2. offset past capacity -----------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (SIZE - 512, 1024),  # straddles the end
        (SIZE, 512),  # starts at the end
        (2**63, 512),  # far out
        (2**64 - 512, 512),  # largest aligned uint64: offset + length overflows 64 bits
    ],
)
async def test_offset_past_capacity_is_invalid(running: Running, offset: int, length: int) -> None:
    session, before = await prime(running)
    req = batch(session, make_record(4, 0, offset, b"p" * length))
    await rejected(running, req, "INVALID_ARGUMENT", "records[0].offset_bytes", "capacity")
    await assert_unchanged(running, before, zeros_at=(SIZE - 1024, 1024))


# -- 3. misaligned offset / length -----------------------------------------------------


@pytest.mark.parametrize("offset", [100, 1 * MiB + 1, 1 * MiB + 511])
async def test_misaligned_offset_is_invalid(running: Running, offset: int) -> None:
    session, before = await prime(running)
    region = read_extent(running, offset - offset % 512, 1024)
    req = batch(session, make_record(4, 0, offset, b"m" * 512))
    msg = await rejected(running, req, "INVALID_ARGUMENT", "records[0].offset_bytes")
    assert "512" in msg
    await assert_unchanged(running, before)
    assert read_extent(running, offset - offset % 512, 1024) == region


@pytest.mark.parametrize("length", [1, 100, 511, 513])
async def test_misaligned_length_is_invalid(running: Running, length: int) -> None:
    session, before = await prime(running)
    req = batch(session, make_record(4, 0, 1 * MiB, b"l" * length))
    await rejected(running, req, "INVALID_ARGUMENT", "records[0].length_bytes")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 1024))


async def test_zero_length_record_is_invalid(running: Running) -> None:
    session, before = await prime(running)
    req = batch(session, make_record(4, 0, 1 * MiB, b""))
    await rejected(running, req, "INVALID_ARGUMENT", "records[0].length_bytes")
    await assert_unchanged(running, before)


async def test_seq_zero_is_invalid(running: Running) -> None:
    session, before = await prime(running)
    req = batch(session, make_record(4, 0, 1 * MiB, b"s" * 512))
    req.records[0].seq = 0
    await rejected(running, req, "INVALID_ARGUMENT", "records[0].seq")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


# -- 4. length / payload mismatch ------------------------------------------------------


async def test_length_differs_from_stored_frame_size(running: Running) -> None:
    session, before = await prime(running)
    req = batch(session, make_record(4, 0, 1 * MiB, b"d" * 512))
    req.records[0].length_bytes = 1024  # the frame holds 512 bytes
    await rejected(running, req, "INVALID_ARGUMENT", "payload", "512", "1024")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 1024))


@pytest.mark.parametrize("claimed", [512, 2048])
async def test_length_differs_from_frame_without_stored_size(
    running: Running, claimed: int
) -> None:
    session, before = await prime(running)
    data = os.urandom(1024)
    frame = lz4.frame.compress(data, store_size=False)
    req = pb.StreamJournalRequest(session_id=session, payload=frame)
    req.records.add(seq=4, disk_index=0, offset_bytes=1 * MiB, length_bytes=claimed,
                    compressed_length_bytes=len(frame), source_time_unix_ns=5,
                    xxh3_64=codec.checksum(data))  # fmt: skip
    await rejected(running, req, "INVALID_ARGUMENT", "payload")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 2048))


@pytest.mark.parametrize("delta", [-1, +1])
async def test_compressed_lengths_do_not_add_up_to_payload(running: Running, delta: int) -> None:
    session, before = await prime(running)
    req = batch(
        session,
        make_record(4, 0, 1 * MiB, b"c" * 512),
        make_record(5, 1, 1 * MiB, b"C" * 512),
    )
    req.records[1].compressed_length_bytes += delta
    msg = await rejected(running, req, "INVALID_ARGUMENT", "payload", "compressed_length_bytes")
    assert str(len(req.payload)) in msg
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


async def test_payload_with_trailing_bytes_is_invalid(running: Running) -> None:
    session, before = await prime(running)
    req = batch(session, make_record(4, 0, 1 * MiB, b"t" * 512))
    req.payload += b"\0" * 7
    await rejected(running, req, "INVALID_ARGUMENT", "payload")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


async def test_frames_split_at_wrong_boundary_is_invalid(running: Running) -> None:
    """Sizes add up, but the cut between the two frames is wrong: not lz4 frames."""
    session, before = await prime(running)
    req = batch(
        session,
        make_record(4, 0, 1 * MiB, os.urandom(512)),
        make_record(5, 0, 2 * MiB, os.urandom(512)),
    )
    req.records[0].compressed_length_bytes -= 9
    req.records[1].compressed_length_bytes += 9
    await rejected(running, req, "INVALID_ARGUMENT", "payload")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


async def test_payload_not_lz4_is_invalid(running: Running) -> None:
    session, before = await prime(running)
    req = batch(session, make_record(4, 0, 1 * MiB, b"n" * 512))
    req.payload = b"not an lz4 frame at all"
    req.records[0].compressed_length_bytes = len(req.payload)
    await rejected(running, req, "INVALID_ARGUMENT", "payload", "lz4")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


# -- 5. checksum -----------------------------------------------------------------------


async def test_wrong_checksum_is_data_loss(running: Running) -> None:
    session, before = await prime(running)
    req = batch(
        session,
        make_record(4, 0, 1 * MiB, b"k" * 512),
        make_record(5, 0, 2 * MiB, b"K" * 512),
    )
    req.records[1].xxh3_64 ^= 1
    await rejected(running, req, "DATA_LOSS", "xxh3_64", "seq 5")
    # the good record in front of it was not taken either
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))
    assert read_extent(running, 2 * MiB, 512) == bytes(512)


async def test_checksum_of_compressed_bytes_is_data_loss(running: Running) -> None:
    """A source that checksums the frame instead of the data is caught."""
    session, before = await prime(running)
    req = batch(session, make_record(4, 0, 1 * MiB, b"f" * 512))
    req.records[0].xxh3_64 = codec.checksum(req.payload)
    await rejected(running, req, "DATA_LOSS", "xxh3_64")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


# -- 6. seq gap ------------------------------------------------------------------------


async def test_seq_gap_is_failed_precondition(running: Running) -> None:
    session, before = await prime(running)
    req = batch(session, make_record(5, 0, 1 * MiB, b"G" * 512))  # durable is 3
    msg = await rejected(running, req, "FAILED_PRECONDITION", "seq", "expected seq 4", "got 5")
    assert "records" in msg
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


async def test_seq_gap_inside_a_batch_is_failed_precondition(running: Running) -> None:
    session, before = await prime(running)
    req = batch(
        session,
        make_record(4, 0, 1 * MiB, b"a" * 512),
        make_record(6, 0, 2 * MiB, b"b" * 512),
    )
    await rejected(running, req, "FAILED_PRECONDITION", "seq", "expected seq 5", "got 6")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


async def test_seq_gap_in_a_later_batch_of_the_stream(running: Running) -> None:
    """The first batch is acked and stays; the gapped second one is refused."""
    session, before = await prime(running)
    first = batch(session, make_record(4, 0, 1 * MiB, b"1" * 512))
    second = batch(session, make_record(6, 0, 2 * MiB, b"2" * 512))
    with pytest.raises(RemoteError) as info:
        await exchange(running.client, first, second)
    assert info.value.code == "FAILED_PRECONDITION"
    reply = await running.client.open_session("checker", SPEC, 0, 0)
    assert reply.durable_seq == 4
    await wait_applied(running, 4)
    assert read_extent(running, 1 * MiB, 512) == b"1" * 512
    assert read_extent(running, 2 * MiB, 512) == bytes(512)


# -- 7. seq replay ---------------------------------------------------------------------


async def test_replay_with_different_bytes_is_already_exists(running: Running) -> None:
    session, before = await prime(running)
    other = make_record(2, 0, 4096, b"X" * 512, ts=1_002)
    msg = await rejected(running, batch(session, other), "ALREADY_EXISTS", "xxh3_64", "seq 2")
    assert "durable" in msg
    await assert_unchanged(running, before)
    assert read_extent(running, 4096, 512) == DATA[1]


async def test_replay_with_same_bytes_is_acked_and_dropped(running: Running) -> None:
    session, before = await prime(running)
    same = make_record(2, 0, 4096, DATA[1])
    acks = await exchange(running.client, batch(session, same))
    assert [a.durable_seq for a in acks] == [3]
    assert await snap(running) == before
    # a replay of 2..3 followed by a new 4 in one batch: 2..3 dropped, 4 taken
    reply = await running.client.open_session("host-a", SPEC, 0, 4)
    fresh = make_record(4, 0, 1 * MiB, b"4" * 512)
    req = batch(
        reply.session_id,
        make_record(2, 0, 4096, DATA[1]),
        make_record(3, 0, 8192, DATA[2]),
        fresh,
    )
    acks = await exchange(running.client, req)
    assert acks[-1].durable_seq == 4
    after = await snap(running)
    assert after.durable_seq == 4
    # payload bytes as received (docs/PROTOCOL.md); the replays are not counted
    assert after.received_bytes == before.received_bytes + fresh.length
    await wait_applied(running, 4)
    assert read_extent(running, 1 * MiB, 512) == b"4" * 512


async def test_replay_conflict_in_a_later_record_rejects_the_batch(running: Running) -> None:
    session, before = await prime(running)
    req = batch(
        session,
        make_record(2, 0, 4096, DATA[1]),  # exact replay
        make_record(3, 0, 8192, b"Y" * 512),  # conflicts with the durable seq 3
        make_record(4, 0, 1 * MiB, b"4" * 512),
    )
    await rejected(running, req, "ALREADY_EXISTS", "seq 3")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


async def test_replay_of_a_seq_queued_in_the_same_session(running: Running) -> None:
    """A seq sent earlier on this stream but re-sent again is a precondition error."""
    session, before = await prime(running)
    first = batch(session, make_record(4, 0, 1 * MiB, b"4" * 512))
    again = batch(session, make_record(4, 0, 1 * MiB, b"4" * 512))
    try:
        acks = await exchange(running.client, first, again)
    except RemoteError as err:
        assert err.code == "FAILED_PRECONDITION", str(err)
        assert "records[0].seq" in str(err) and "already received" in str(err)
    else:
        # seq 4 was durable before the copy arrived: a plain replay, acked and dropped
        assert acks[-1].durable_seq == 4
    reply = await running.client.open_session("checker", SPEC, 0, 0)
    assert reply.durable_seq == 4


# -- 8. oversized batches --------------------------------------------------------------


def many_records(session: str, n: int, first: int, disk_size: int) -> pb.StreamJournalRequest:
    """``n`` valid 512-byte records from seq ``first``, sharing one frame."""
    frame = codec.compress(b"r" * 512)
    crc = codec.checksum(b"r" * 512)
    req = pb.StreamJournalRequest(session_id=session, payload=frame * n)
    for i in range(n):
        req.records.add(seq=first + i, disk_index=0, offset_bytes=(i * 512) % disk_size,
                        length_bytes=512, compressed_length_bytes=len(frame),
                        source_time_unix_ns=1, xxh3_64=crc)  # fmt: skip
    return req


async def test_too_many_records_is_invalid(running: Running) -> None:
    spec = small_group(GROUP, disks=2, size=16 * MiB)
    reply = await running.client.open_session("host-a", spec, 0, 1)
    limit = reply.max_records
    assert limit > 0
    req = many_records(reply.session_id, limit + 1, 1, 16 * MiB)
    msg = await rejected(running, req, "INVALID_ARGUMENT", "records", str(limit))
    assert str(limit + 1) in msg
    reply = await running.client.open_session("host-a", spec, 0, 1)
    assert reply.durable_seq == 0
    assert (await snap(running)).journal_bytes == 0
    # a batch of 512 records (1024 iovecs in the segment append) is taken
    acks = await exchange(running.client, many_records(reply.session_id, 512, 1, 16 * MiB))
    assert acks[-1].durable_seq == 512


@pytest.mark.parametrize("n", [513, "limit"])
async def test_batch_up_to_max_records_is_accepted(running: Running, n: int | str) -> None:
    spec = small_group(GROUP, disks=2, size=16 * MiB)
    reply = await running.client.open_session("host-a", spec, 0, 1)
    count = reply.max_records if n == "limit" else int(n)
    assert count <= reply.max_records
    acks = await exchange(running.client, many_records(reply.session_id, count, 1, 16 * MiB))
    assert acks[-1].durable_seq == count


async def test_too_large_payload_is_invalid(running: Running) -> None:
    spec = small_group(GROUP, disks=2, size=16 * MiB)
    reply = await running.client.open_session("host-a", spec, 0, 1)
    limit = reply.max_payload_bytes
    chunk = 3 * MiB
    n = limit // chunk + 1
    datas = [os.urandom(chunk) for _ in range(n)]  # incompressible: frames > 3 MiB each
    recs = [make_record(i + 1, i % 2, (i // 2) * chunk, d) for i, d in enumerate(datas)]
    req = batch(reply.session_id, *recs)
    assert len(req.payload) > limit
    msg = await rejected(running, req, "INVALID_ARGUMENT", "payload", str(limit))
    assert str(len(req.payload)) in msg
    reply = await running.client.open_session("host-a", spec, 0, 1)
    assert reply.durable_seq == 0
    assert (await snap(running)).journal_bytes == 0
    # one record fewer fits, and is taken
    acks = await exchange(running.client, batch(reply.session_id, *recs[: n - 1]))
    assert acks[-1].durable_seq == n - 1


# -- 9. malformed handshakes -----------------------------------------------------------


def _vm(vm_id: str, *disks: tuple[str, int]) -> pb.VmSpec:
    return pb.VmSpec(
        vm_id=vm_id, disks=[pb.DiskSpec(disk_id=d, capacity_bytes=c) for d, c in disks]
    )


BAD_HANDSHAKES = {
    "protocol_version=2": (dict(protocol_version=2), "FAILED_PRECONDITION", "protocol_version"),
    "protocol_version=0": (dict(protocol_version=0), "FAILED_PRECONDITION", "protocol_version"),
    "empty group_id": (dict(group_id=""), "INVALID_ARGUMENT", "group_id"),
    "group_id ../x": (dict(group_id="../x"), "INVALID_ARGUMENT", "group_id"),
    "group_id ..": (dict(group_id=".."), "INVALID_ARGUMENT", "group_id"),
    "group_id a/b": (dict(group_id="a/b"), "INVALID_ARGUMENT", "group_id"),
    "group_id NUL": (dict(group_id="g\0"), "INVALID_ARGUMENT", "group_id"),
    "group_id 65 chars": (dict(group_id="g" * 65), "INVALID_ARGUMENT", "group_id"),
    "empty source_id": (dict(source_id=""), "INVALID_ARGUMENT", "source_id"),
    "source_id newline": (dict(source_id="a\nb"), "INVALID_ARGUMENT", "source_id"),
    "no vms": (dict(vms=[]), "INVALID_ARGUMENT", "vms"),
    "zero disks": (dict(vms=[_vm("vm-a")]), "INVALID_ARGUMENT", "vms[0].disks"),
    "duplicate vm ids": (
        dict(vms=[_vm("vm-a", ("0", 1 * MiB)), _vm("vm-a", ("0", 1 * MiB))]),
        "INVALID_ARGUMENT",
        "vms[1].vm_id",
    ),
    "vm id ../evil": (dict(vms=[_vm("../evil", ("0", MiB))]), "INVALID_ARGUMENT", "vms[0].vm_id"),
    "empty vm id": (dict(vms=[_vm("", ("0", MiB))]), "INVALID_ARGUMENT", "vms[0].vm_id"),
    "duplicate disk ids": (
        dict(vms=[_vm("vm-a", ("0", MiB), ("0", MiB))]),
        "INVALID_ARGUMENT",
        "vms[0].disks[1].disk_id",
    ),
    "disk id with slash": (
        dict(vms=[_vm("vm-a", ("a/b", MiB))]),
        "INVALID_ARGUMENT",
        "vms[0].disks[0].disk_id",
    ),
    "capacity 1000": (
        dict(vms=[_vm("vm-a", ("0", MiB), ("1", 1000))]),
        "INVALID_ARGUMENT",
        "vms[0].disks[1].capacity_bytes",
    ),
    "capacity 0": (
        dict(vms=[_vm("vm-a", ("0", 0))]),
        "INVALID_ARGUMENT",
        "vms[0].disks[0].capacity_bytes",
    ),
    "capacity 2^64-512": (
        dict(vms=[_vm("vm-a", ("0", 2**64 - 512))]),
        "INVALID_ARGUMENT",
        "vms[0].disks[0].capacity_bytes",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_HANDSHAKES))
async def test_malformed_handshake(running: Running, case: str) -> None:
    fields, code, word = BAD_HANDSHAKES[case]
    fields = dict(fields)
    vms = fields.pop("vms", None)
    req = handshake(**fields)
    if vms is not None:
        del req.vms[:]
        req.vms.extend(vms)  # type: ignore[arg-type]
    with pytest.raises(RemoteError) as info:
        await open_raw(running.client, req)
    assert info.value.code == code, str(info.value)
    assert word in str(info.value), str(info.value)
    # nothing registered, nothing created on disk
    st = await running.client.status()
    assert list(st.groups) == []
    assert os.listdir(os.path.join(running.data_dir, "journal")) == []
    assert os.listdir(os.path.join(running.data_dir, "replicas")) == []
    assert sorted(os.listdir(running.data_dir)) == ["index", "journal", "replicas"]
    for escaped in ("x", "evil"):
        assert not os.path.exists(os.path.join(running.data_dir, escaped))
    # the target still takes a good handshake
    reply = await open_raw(running.client, handshake())
    assert reply.durable_seq == 0 and reply.session_id


@pytest.mark.parametrize(
    "other",
    [
        small_group(GROUP, disks=3, size=SIZE),  # one disk more
        small_group(GROUP, disks=2, size=2 * SIZE),  # other capacity
        small_group(GROUP, vms=2, disks=2, size=SIZE),  # one VM more
    ],
    ids=["more-disks", "other-capacity", "more-vms"],
)
async def test_reopen_group_with_other_disks_is_failed_precondition(
    running: Running, other: GroupSpec
) -> None:
    _, before = await prime(running)
    with pytest.raises(RemoteError) as info:
        await running.client.open_session("host-a", other, 0, 4)
    assert info.value.code == "FAILED_PRECONDITION"
    assert "vms" in str(info.value) and GROUP in str(info.value)
    await assert_unchanged(running, before)
    st = await running.client.status(GROUP)
    assert list(st.groups[0].vms) == wire.vms_to_pb(SPEC)


async def test_vm_already_in_another_group_is_failed_precondition(running: Running) -> None:
    _, before = await prime(running)
    thief = GroupSpec("g2", SPEC.vms)
    with pytest.raises(RemoteError) as info:
        await running.client.open_session("host-b", thief, 0, 1)
    assert info.value.code == "FAILED_PRECONDITION"
    assert "vms" in str(info.value) and VM in str(info.value)
    st = await running.client.status()
    assert [g.group_id for g in st.groups] == [GROUP]
    assert not os.path.exists(os.path.join(running.data_dir, "journal", "g2"))
    await assert_unchanged(running, before)


# -- 10. sessions ----------------------------------------------------------------------


@pytest.mark.parametrize("session", ["", "nope", "0" * 32, "../../etc"])
async def test_unknown_session_is_failed_precondition(running: Running, session: str) -> None:
    _, before = await prime(running)
    req = batch(session, make_record(4, 0, 1 * MiB, b"u" * 512))
    await rejected(running, req, "FAILED_PRECONDITION", "session_id")
    await assert_unchanged(running, before, zeros_at=(1 * MiB, 512))


async def test_superseded_session_gets_failed_precondition(running: Running) -> None:
    old, before = await prime(running)
    stream = running.client.stream(old)
    await stream.send([make_record(4, 0, 1 * MiB, b"o" * 512)])
    ack = await stream.recv()
    assert ack is not None and ack.durable_seq == 4
    new = await running.client.open_session("host-b", SPEC, 0, 5)
    assert new.durable_seq == 4 and new.session_id != old
    await stream.send([make_record(5, 0, 2 * MiB, b"O" * 512)])
    with pytest.raises(RemoteError) as info:
        await stream.recv()
    assert info.value.code == "FAILED_PRECONDITION"
    assert "session_id" in str(info.value)
    stream.cancel()
    # a fresh stream of the superseded session is refused too
    await rejected(running, batch(old, make_record(5, 0, 2 * MiB, b"O" * 512)),
                   "FAILED_PRECONDITION", "session_id")  # fmt: skip
    # the new session goes on at 5; the superseded batch left no trace
    st = await running.client.status(GROUP)
    assert st.groups[0].durable_seq == 4 and st.groups[0].source_id == "host-b"
    acks = await exchange(running.client, batch(new.session_id, make_record(5, 1, 0, b"n" * 512)))
    assert acks[-1].durable_seq == 5
    await wait_applied(running, 5)
    assert read_extent(running, 2 * MiB, 512) == bytes(512)


async def test_session_id_changed_within_a_stream(running: Running) -> None:
    session, before = await prime(running)
    other = await running.client.open_session("host-a", small_group("g2"), 0, 1)
    first = batch(session, make_record(4, 0, 1 * MiB, b"1" * 512))
    second = batch(other.session_id, make_record(1, 0, 0, b"2" * 512))
    with pytest.raises(RemoteError) as info:
        await exchange(running.client, first, second)
    assert info.value.code == "FAILED_PRECONDITION"
    assert "session_id" in str(info.value)
    assert (await snap(running, "g2")).durable_seq == 0
