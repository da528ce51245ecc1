"""The seam to the replication target: what failover asks of it, in plain values.

:class:`cdp.failover.remote.TargetReplication` implements :class:`Replication` over a
gRPC ``ReplicationClient``; failover never imports grpc. Images are exported, never the
base or the journal touched: reading an image is read-only at the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cdp.progress import OperationProgress
from cdp.restore.spec import format_ns

STATE_REPLICATING = "replicating"
STATE_DISCONNECTED = "disconnected"
STATE_RESYNC_REQUIRED = "resync_required"
STATE_ERROR = "error"


@dataclass(frozen=True)
class ReplicaDisk:
    """One disk of a protected VM at the target."""

    index: int
    capacity_bytes: int


@dataclass(frozen=True)
class ReplicaVm:
    """A protected VM at the target, with its disks in order."""

    name: str
    disks: tuple[ReplicaDisk, ...]


@dataclass(frozen=True)
class GroupFacts:
    """A consistency group's replication state at the target."""

    name: str
    state: str
    """One of the ``STATE_*`` names (the worst member's for a group spanning hosts)."""
    durable_seq: int
    durable_ns: int
    """Source time of the newest durable write, Unix ns (oldest across members)."""
    vms: tuple[ReplicaVm, ...]
    error: str = ""
    rpo_s: float | None = None
    """The target's RPO (age of the newest restorable point, worst member); None if unknown."""
    lifecycle: str = "protecting"
    """The group's lifecycle state at the target (a :mod:`cdp.lifecycle` name)."""
    epoch: int = 0
    """The group's fencing epoch at the target."""
    connected_sources: tuple[str, ...] = ()
    """Source ids with a session open now (a source is connected and may be writing)."""
    failed_back_ns: int = 0
    """Target time the group last returned to protecting after a failover (a failback),
    Unix ns; 0: never. A point older than it predates production's current disks."""

    def vm(self, name: str) -> ReplicaVm | None:
        """The VM of that name, or None."""
        return next((v for v in self.vms if v.name == name), None)


@dataclass(frozen=True)
class PointFacts:
    """A restore point, fixed by its seq."""

    seq: int
    time_ns: int
    kind: str
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        """The point as ``cdp points`` and ``cdp image export --json`` print it."""
        return {
            "seq": self.seq, "time": format_ns(self.time_ns),
            "source_time_unix_ns": self.time_ns, "kind": self.kind, "label": self.label,
        }  # fmt: skip


@dataclass(frozen=True)
class ImageFacts:
    """What exporting one disk at a point costs."""

    point: PointFacts
    base_seq: int
    records: int
    record_bytes: int
    capacity_bytes: int


class Replication(Protocol):
    """The calls failover makes on the target."""

    async def group(self, name: str) -> GroupFacts:
        """The group's state; NotFoundError if the target has no such group."""

    async def image_plan(self, group: str, vm: str, disk: int, at: str) -> ImageFacts:
        """Resolve ``at`` for one disk without reading data (PointOutsideHistoryError)."""

    async def export(self, group: str, vm: str, disk: int, at: str, out_path: str) -> int:
        """Write the disk at ``at`` as a flat VMDK at ``out_path``; return bytes written."""

    async def bookmark(self, group: str, name: str) -> PointFacts:
        """Bookmark the group's newest durable restore point."""

    async def plan_bookmark(
        self, groups: list[str], name: str
    ) -> tuple[dict[str, PointFacts], int]:
        """Bookmark every group's newest durable point at one instant of the target.

        Returns the point per group and that instant (target clock, Unix ns);
        BookmarkExistsError if any group already has the name (nothing is written then).
        """

    async def set_lifecycle(
        self, group: str, state: str, *, fence: bool = False, unfence: bool = False,
        note: str = "",
    ) -> int:  # fmt: skip
        """Record the group's lifecycle; return its epoch now (NotFoundError: no group).

        ``fence`` raises the epoch (old sources refused), ``unfence`` returns to the epoch
        before it (PreconditionError after a commit or with no fence open).
        """

    async def seal(self, group: str, timeout_s: float) -> dict[str, int]:
        """Have the group's sources seal; their last seq per member id ("" for one source).

        PreconditionError when a source is not connected or does not seal within
        ``timeout_s`` (frozen, hung): nothing may then be concluded about its writes.
        """

    async def release_seal(self, group: str) -> bool:
        """Lift the group's seal (its sources write again); whether one was asked."""

    async def hold_base(self, group: str, holder: str, at: str) -> PointFacts:
        """Keep the group's base at or before ``at`` (PointOutsideHistoryError if past)."""

    async def release_base(self, group: str, holder: str) -> bool:
        """Lift ``holder``'s hold; False if it held nothing."""

    async def report_progress(self, progress: OperationProgress, timeout_s: float) -> None:
        """Tell the target how an operation goes; CdpError if it cannot (callers ignore it)."""

    async def build_chain(
        self, group: str, vm: str, disk: int, at: str, folder: str, name: str
    ) -> int:
        """Write disk ``disk`` at ``at`` as a delta chain over the base in ``folder``; bytes."""
