"""The failover seam to the target over gRPC: :class:`TargetReplication`.

Implements :class:`cdp.failover.replication.Replication` on a ``ReplicationClient``: status
folded into :class:`GroupFacts`, images through :func:`cdp.failover.export.export_image`,
bookmarks as :class:`PointFacts`. Target errors that failover gives a meaning (a point
outside the history, an unknown group, a full datastore) become their cdp errors here;
this module never imports grpc itself (the client does).
"""

from __future__ import annotations

import errno

from cdp.errors import (
    BookmarkExistsError,
    CdpError,
    InvalidInputError,
    NotFoundError,
    PointOutsideHistoryError,
    PreconditionError,
    RemoteError,
)
from cdp.failover.chain import build_chain
from cdp.failover.errors import DatastoreFullError
from cdp.failover.export import export_image, point_facts
from cdp.failover.replication import GroupFacts, ImageFacts, PointFacts, ReplicaDisk, ReplicaVm
from cdp.progress import OperationProgress
from cdp.rpc.client import ReplicationClient
from cdp.rpc.convert import LIFECYCLE_NAMES, LIFECYCLES, STATE_NAMES, progress_to_pb

_STATE_ORDER = ["replicating", "disconnected", "resyncing", "resync_required", "error"]
"""Group states from best to worst; a group spanning hosts reports its worst member's."""


class TargetReplication:
    """:class:`cdp.failover.replication.Replication` over a gRPC client."""

    def __init__(self, client: ReplicationClient) -> None:
        self.client = client

    async def group(self, name: str) -> GroupFacts:
        """The group's state (members folded: worst state, oldest durable time)."""
        try:
            resp = await self.client.status(name)
        except RemoteError as exc:
            raise _translate(exc, self.client.address) from exc
        members = list(resp.groups)
        if not members:
            raise NotFoundError(f"no group {name!r} at the target")
        states = [STATE_NAMES.get(m.state, "error") for m in members]
        vms = {vm.vm_id: vm for m in members for vm in m.vms}
        return GroupFacts(
            name=name,
            state=max(states, key=_STATE_ORDER.index),
            durable_seq=sum(m.durable_seq for m in members),
            durable_ns=min(m.durable_source_time_unix_ns for m in members),
            lifecycle=LIFECYCLE_NAMES.get(members[0].lifecycle, "unknown"),
            epoch=max(m.epoch for m in members),
            connected_sources=tuple(m.source_id for m in members if m.source_connected),
            failed_back_ns=max(m.lifecycle_failed_back_unix_ns for m in members),
            vms=tuple(
                ReplicaVm(
                    v.vm_id, tuple(ReplicaDisk(i, d.capacity_bytes) for i, d in enumerate(v.disks))
                )
                for v in vms.values()
            ),
            rpo_s=max(m.rpo_seconds for m in members),
        )

    async def image_plan(self, group: str, vm: str, disk: int, at: str) -> ImageFacts:
        """Resolve a restore point for one disk (no data read)."""
        try:
            r = await export_image(self.client, group, vm, disk, at, None)
        except RemoteError as exc:
            raise _translate(exc, self.client.address, at) from exc
        return r.image

    async def export(self, group: str, vm: str, disk: int, at: str, out_path: str) -> int:
        """Write the disk at ``at`` as a flat VMDK (descriptor + sparse extent)."""
        try:
            r = await export_image(self.client, group, vm, disk, at, out_path)
        except RemoteError as exc:
            raise _translate(exc, self.client.address, at) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DatastoreFullError(out_path, f"writing the image: {exc.strerror}") from exc
            raise
        return r.bytes_written

    async def hold_base(self, group: str, holder: str, at: str) -> PointFacts:
        """Keep the group's base at or before ``at``."""
        try:
            resp = await self.client.hold_base(group, holder, at)
        except RemoteError as exc:
            raise _translate(exc, self.client.address, at) from exc
        return point_facts(resp.point)

    async def release_base(self, group: str, holder: str) -> bool:
        """Lift ``holder``'s hold on the group's base."""
        try:
            resp = await self.client.hold_base(group, holder, release=True)
        except RemoteError as exc:
            raise _translate(exc, self.client.address) from exc
        return bool(resp.released)

    async def build_chain(
        self, group: str, vm: str, disk: int, at: str, folder: str, name: str
    ) -> int:
        """Write the journal tail at ``at`` as a delta chain over the base replica."""
        try:
            _, written = await build_chain(self.client, group, vm, disk, at, folder, name)
        except RemoteError as exc:
            raise _translate(exc, self.client.address, at) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DatastoreFullError(folder, f"writing the delta: {exc.strerror}") from exc
            raise
        return written

    async def bookmark(self, group: str, name: str) -> PointFacts:
        """Bookmark the newest durable restore point."""
        try:
            p = await self.client.create_bookmark(group, name)
        except RemoteError as exc:
            if exc.code == "ALREADY_EXISTS":
                raise BookmarkExistsError(group, name) from exc
            raise _translate(exc, self.client.address) from exc
        return point_facts(p)

    async def plan_bookmark(
        self, groups: list[str], name: str
    ) -> tuple[dict[str, PointFacts], int]:
        """One bookmark across the groups at one instant (CreatePlanBookmark)."""
        try:
            resp = await self.client.create_plan_bookmark(groups, name)
        except RemoteError as exc:
            if exc.code == "ALREADY_EXISTS":
                raise BookmarkExistsError(",".join(groups), name) from exc
            raise _translate(exc, self.client.address) from exc
        return {g.group_id: point_facts(g.point) for g in resp.groups}, resp.taken_unix_ns

    async def seal(self, group: str, timeout_s: float) -> dict[str, int]:
        """Seal the group's sources at the target; the sealed seq per member id."""
        try:
            resp = await self.client.seal_group(group, timeout_s)
        except RemoteError as exc:
            if exc.code == "FAILED_PRECONDITION":
                raise PreconditionError(str(exc).split(": ", 1)[-1]) from exc
            raise _translate(exc, self.client.address) from exc
        return {m.member_id: int(m.sealed_seq) for m in resp.members}

    async def release_seal(self, group: str) -> bool:
        """Lift the group's seal at the target."""
        try:
            resp = await self.client.seal_group(group, release=True)
        except RemoteError as exc:
            raise _translate(exc, self.client.address) from exc
        return bool(resp.released)

    async def set_lifecycle(
        self, group: str, state: str, *, fence: bool = False, unfence: bool = False,
        note: str = "",
    ) -> int:  # fmt: skip
        """Record the group's lifecycle at the target; the epoch now."""
        try:
            resp = await self.client.set_lifecycle(group, LIFECYCLES[state], fence, unfence, note)
        except RemoteError as exc:
            if exc.code == "FAILED_PRECONDITION":
                raise PreconditionError(str(exc).split(": ", 1)[-1]) from exc
            raise _translate(exc, self.client.address) from exc
        return int(resp.epoch)

    async def report_progress(self, progress: OperationProgress, timeout_s: float) -> None:
        """Tell the target how the operation is going (RemoteError if it cannot be told)."""
        await self.client.report_failover_progress(progress_to_pb(progress), timeout_s)


def _translate(exc: RemoteError, address: str, at: str = "") -> CdpError:
    """Target errors failover gives a specific meaning (the server's hint is kept)."""
    text, _, server_hint = str(exc).split(": ", 1)[-1].partition(" (hint: ")
    server_hint = server_hint.removesuffix(")")
    points_hint = "list restorable points with `cdp points list` or `cdp timeline`"
    if exc.code == "OUT_OF_RANGE":
        return PointOutsideHistoryError(
            f"restore point {at!r} is outside the history: {text}", hint=server_hint or points_hint
        )
    if exc.code == "NOT_FOUND" and at and text.startswith("at:"):
        return NotFoundError(f"restore point {at!r} not found: {text}", hint=points_hint)
    if exc.code == "NOT_FOUND":
        hint = server_hint or "the plan names a group or VM the target does not have"
        return NotFoundError(text, hint=hint)
    if exc.code == "INVALID_ARGUMENT" and at:
        return InvalidInputError("--at", text)
    if exc.code == "UNAVAILABLE":
        exc.hint = f"is the target running at {address} (plan key target.address)?"
    return exc
