"""Conversions between cdp.v1 messages and domain values; no logic beyond the mapping."""

from __future__ import annotations

from cdp.errors import InvalidInputError
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.intake import split_payload
from cdp.record import Record
from cdp.target import GroupState, GroupStatus
from cdp.v1 import replication_pb2 as pb

STATES = {
    GroupState.REPLICATING: pb.GROUP_STATE_REPLICATING,
    GroupState.DISCONNECTED: pb.GROUP_STATE_DISCONNECTED,
    GroupState.RESYNC_REQUIRED: pb.GROUP_STATE_RESYNC_REQUIRED,
    GroupState.ERROR: pb.GROUP_STATE_ERROR,
}
STATE_NAMES = {v: k for k, v in STATES.items()}


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
                   h.source_time_unix_ns, h.xxh3_64, frame)
        )  # fmt: skip
    return out


def records_to_pb(session_id: str, records: list[Record]) -> pb.StreamJournalRequest:
    """A batch message for ``records``."""
    req = pb.StreamJournalRequest(session_id=session_id)
    add = req.records.add
    for r in records:
        add(seq=r.seq, disk_index=r.disk, offset_bytes=r.offset, length_bytes=r.length,
            compressed_length_bytes=len(r.frame), source_time_unix_ns=r.source_ns,
            xxh3_64=r.data_xxh3)  # fmt: skip
    req.payload = b"".join(r.frame for r in records)
    return req


def status_to_pb(s: GroupStatus) -> pb.GroupStatus:
    """One group's status message."""
    return pb.GroupStatus(
        group_id=s.spec.group_id, durable_seq=s.durable_seq,
        durable_source_time_unix_ns=s.durable_source_ns, applied_seq=s.applied_seq,
        lag_seconds=s.lag_s, journal_bytes=s.journal_bytes, received_bytes=s.received_bytes,
        state=STATES[s.state], source_id=s.source_id, vms=vms_to_pb(s.spec),
    )  # fmt: skip
