"""What both ends of the replication link share: version, message caps, stream codecs.

The protocol version, the gRPC message caps and the codecs of the journal stream
(records and group specs to and from cdp.v1 messages). The one home of these, so that
the client (source side) and the server (target side) cannot drift apart; the client
imports this module and never the server or the target. Imports only value modules and
the generated messages.
"""

from __future__ import annotations

from cdp.errors import InvalidInputError
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.record import KIND_WRITE, Record
from cdp.v1 import replication_pb2 as pb

PROTOCOL_VERSION = 1
"""Version of the replication protocol; OpenSession refuses any other."""
MAX_MESSAGE_BYTES = 64 * 2**20
"""gRPC message cap; well above the batch limit so oversized batches get our own error."""
MESSAGE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
"""Channel and server options that apply :data:`MAX_MESSAGE_BYTES` both ways."""
DEFAULT_RECEIVE_LIMIT_BYTES = 4 * 2**20
"""gRPC's default receive limit in every language; no server-to-client message exceeds it."""
MAX_IMAGE_DATA_BYTES = DEFAULT_RECEIVE_LIMIT_BYTES - 64 * 2**10
"""Data bytes of one ReadImage message, at most: leaves 64 KiB for the framing, so a client
with default channel options reads any disk."""


def image_pieces(offset: int, data: bytes) -> list[tuple[int, bytes]]:
    """(offset, data) cut into pieces of at most :data:`MAX_IMAGE_DATA_BYTES`, in order."""
    view = memoryview(data)
    return [
        (offset + pos, bytes(view[pos : pos + MAX_IMAGE_DATA_BYTES]))
        for pos in range(0, len(data), MAX_IMAGE_DATA_BYTES)
    ]


def spec_from_pb(group_id: str, vms: list[pb.VmSpec]) -> GroupSpec:
    """A group spec from a handshake's VM list."""
    return GroupSpec(
        group_id,
        tuple(
            VmSpec(vm.vm_id, tuple(DiskSpec(d.disk_id, d.capacity_bytes) for d in vm.disks))
            for vm in vms
        ),
    )


def vms_to_pb(spec: GroupSpec) -> list[pb.VmSpec]:
    """The VM list of a group spec."""
    return [
        pb.VmSpec(
            vm_id=vm.vm_id,
            disks=[
                pb.DiskSpec(disk_id=d.disk_id, capacity_bytes=d.capacity_bytes) for d in vm.disks
            ],
        )
        for vm in spec.vms
    ]


def split_payload(lengths: list[int], payload: bytes) -> list[bytes]:
    """Cut a batch payload into per-record frames, checking the sizes add up."""
    total = sum(lengths)
    if total != len(payload):
        raise InvalidInputError(
            "payload",
            f"is {len(payload)} bytes but records' compressed_length_bytes add up to {total}",
        )
    view = memoryview(payload)
    frames, pos = [], 0
    for n in lengths:
        frames.append(bytes(view[pos : pos + n]))
        pos += n
    return frames


def records_from_pb(req: pb.StreamJournalRequest) -> list[Record]:
    """Records of a batch with their frames cut out of the payload."""
    heads = req.records
    frames = split_payload([h.compressed_length_bytes for h in heads], req.payload)
    out = []
    for i, (h, frame) in enumerate(zip(heads, frames, strict=True)):
        if h.seq == 0:
            raise InvalidInputError(f"records[{i}].seq", "seqs start at 1")
        out.append(
            Record(h.seq, h.disk_index, h.offset_bytes, h.length_bytes,
                   h.source_time_unix_ns, h.xxh3_64, frame, h.kind or KIND_WRITE)
        )  # fmt: skip
    return out


def records_to_pb(session_id: str, records: list[Record]) -> pb.StreamJournalRequest:
    """A batch message for ``records``: their heads, then their frames joined as the payload."""
    req = pb.StreamJournalRequest(session_id=session_id)
    add = req.records.add
    for r in records:
        add(seq=r.seq, disk_index=r.disk, offset_bytes=r.offset, length_bytes=r.length,
            compressed_length_bytes=len(r.frame), source_time_unix_ns=r.source_ns,
            xxh3_64=r.data_xxh3, kind=r.kind if r.is_marker else 0)  # fmt: skip
    req.payload = b"".join(r.frame for r in records)
    return req
