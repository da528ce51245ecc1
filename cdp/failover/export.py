"""Export one disk at a restore point as a flat VMDK, read from the target (ReadImage).

The image is written as a flat VMDK (descriptor at ``out``, extent beside it) whose
extent is sparse: only the regions the target sends (data present in the base or written
by the journal) are written, so the cost follows the data, not the disk's size. Reading
an image is read-only at the target. ``cdp image export``, ``cdp demo``, failover (through
:class:`cdp.failover.remote.TargetReplication`) and the benchmarks call
:func:`export_image`; this module never imports grpc (the client is passed in).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cdp.errors import InvalidInputError
from cdp.failover.replication import ImageFacts, PointFacts
from cdp.fsutil import write_atomic
from cdp.v1 import replication_pb2 as pb
from cdp.vmdk import format_descriptor

if TYPE_CHECKING:
    from cdp.rpc.client import ReplicationClient

KIND_NAMES = {
    pb.POINT_KIND_CRASH_CONSISTENT: "crash-consistent",
    pb.POINT_KIND_CHECKPOINT: "checkpoint",
    pb.POINT_KIND_BOOKMARK: "bookmark",
    pb.POINT_KIND_APP_CONSISTENT: "app-consistent",
}
"""Restore point kinds by their wire value, as the CLI and the step log name them."""


def point_facts(p: pb.RestorePoint) -> PointFacts:
    """A restore point off the wire as a plain value."""
    return PointFacts(p.seq, p.source_time_unix_ns, KIND_NAMES.get(p.kind, "unknown"), p.label)


@dataclass(frozen=True)
class ImageExport:
    """What one export did: the disk, the point it resolved to, and (unless a plan) the files."""

    group: str
    vm: str
    disk: int
    at: str
    """The restore point as asked for (latest, a seq, a time or a bookmark name)."""
    image: ImageFacts
    out: str | None = None
    """Absolute path of the descriptor written; None for a plan (nothing written)."""
    bytes_written: int = 0
    seconds: float = 0.0
    """Wall time of the export, rounded to ms (0 for a plan)."""

    def to_json(self) -> dict[str, Any]:
        """The export as ``cdp image export --json`` prints it."""
        i = self.image
        out: dict[str, Any] = {
            "group": self.group, "vm": self.vm, "disk": self.disk, "at": self.at,
            "point": i.point.to_json(), "base_seq": i.base_seq, "records": i.records,
            "record_bytes": i.record_bytes, "capacity_bytes": i.capacity_bytes,
        }  # fmt: skip
        if self.out is not None:
            out.update(out=self.out, bytes_written=self.bytes_written, seconds=self.seconds)
        return out


def extent_of(out: str) -> str:
    """The flat extent's path beside a descriptor path."""
    return out[: -len(".vmdk")] + "-flat.vmdk"


def check_out(out: str, force: bool) -> None:
    """Reject an --out that would fail late or overwrite by surprise."""
    if not out.endswith(".vmdk"):
        raise InvalidInputError("--out", f"{out!r} must end with .vmdk")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise InvalidInputError("--out", f"folder {folder!r} does not exist")
    if not force and (os.path.exists(out) or os.path.exists(extent_of(out))):
        raise InvalidInputError("--out", f"{out!r} exists; pass --force to overwrite")


async def export_image(
    client: ReplicationClient, group: str, vm: str, disk: int, at: str, out: str | None
) -> ImageExport:
    """Stream the image into ``out`` (None: plan only); return the plan and figures."""
    t0 = time.monotonic()
    stream = client.read_image(group, vm, disk, at, dry_run=out is None)
    plan = (await anext(stream)).plan
    image = ImageFacts(
        point=point_facts(plan.point),
        base_seq=plan.base_seq,
        records=plan.records,
        record_bytes=plan.record_bytes,
        capacity_bytes=plan.capacity_bytes,
    )
    if out is None:
        return ImageExport(group, vm, disk, at, image)
    written = 0
    extent = extent_of(out)
    fd = os.open(extent, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, plan.capacity_bytes)
        async for msg in stream:
            os.pwrite(fd, msg.data, msg.offset_bytes)
            written += len(msg.data)
        os.fsync(fd)
    finally:
        os.close(fd)
    write_atomic(out, format_descriptor(plan.capacity_bytes, os.path.basename(extent)).encode())
    return ImageExport(
        group=group,
        vm=vm,
        disk=disk,
        at=at,
        image=image,
        out=os.path.abspath(out),
        bytes_written=written,
        seconds=round(time.monotonic() - t0, 3),
    )
