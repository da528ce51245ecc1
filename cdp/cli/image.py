"""``cdp image export``: a disk at a restore point, written as a VMDK.

The image is written as a flat VMDK (descriptor at --out, extent beside it) whose extent
is sparse: only the regions the target sends (data present in the base or written by
the journal) are written, so the cost follows the data, not the disk's size.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from cdp.cli import common
from cdp.cli.points import point_dict
from cdp.errors import InvalidInputError
from cdp.fsutil import write_atomic
from cdp.rpc.client import ReplicationClient
from cdp.vmdk import format_descriptor


def add_parser(sub: Any) -> None:
    """Register ``image export``."""
    p = sub.add_parser("image", help="point-in-time images of protected disks")
    isub = p.add_subparsers(dest="image_command", required=True, metavar="SUBCOMMAND")
    ex = isub.add_parser("export", help="write one disk at a restore point as a VMDK")
    common.add_target_group(ex)
    ex.add_argument("--vm", required=True, help="VM name")
    ex.add_argument("--disk", type=int, default=0, help="disk index within the VM (0-based)")
    ex.add_argument(
        "--at", default="latest",
        help="latest, a restore point seq, an ISO-8601 time (newest point at or before it) "
        "or a bookmark name",
    )  # fmt: skip
    ex.add_argument("--out", required=True, help="path of the VMDK descriptor to write (*.vmdk)")
    ex.add_argument("--force", action="store_true", help="overwrite an existing image")
    ex.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ex.set_defaults(handler=run)


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
) -> dict[str, Any]:
    """Stream the image into ``out`` (None: plan only); return the plan and figures."""
    t0 = time.monotonic()
    stream = client.read_image(group, vm, disk, at, dry_run=out is None)
    first = await anext(stream)
    plan = first.plan
    result: dict[str, Any] = {
        "group": group, "vm": vm, "disk": disk, "at": at, "point": point_dict(plan.point),
        "base_seq": plan.base_seq, "records": plan.records, "record_bytes": plan.record_bytes,
        "capacity_bytes": plan.capacity_bytes,
    }  # fmt: skip
    if out is None:
        return result
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
    result.update(out=os.path.abspath(out), bytes_written=written,
                  seconds=round(time.monotonic() - t0, 3))  # fmt: skip
    return result


async def run(args: argparse.Namespace) -> int:
    """Export (or plan) the image and print what happened."""
    if args.disk < 0:
        raise InvalidInputError("--disk", "cannot be negative")
    if not args.dry_run:
        check_out(args.out, args.force)
    async with common.connect(args) as client:
        result = await export_image(
            client, args.group, args.vm, args.disk, args.at, None if args.dry_run else args.out
        )
    if args.json:
        common.emit_json(result)
        return common.EXIT_OK
    p = result["point"]
    print(
        f"{'plan' if args.dry_run else 'image'}: {args.vm} disk {args.disk} at restore point "
        f"{p['seq']} ({p['time']}, {p['kind']}{' ' + repr(p['label']) if p['label'] else ''})\n"
        f"  base replica at seq {result['base_seq']} + {result['records']:,} journal records "
        f"({common.fmt_bytes(result['record_bytes'])}) on a "
        f"{common.fmt_bytes(result['capacity_bytes'])} disk"
    )
    if not args.dry_run:
        print(f"  wrote {result['out']} ({common.fmt_bytes(result['bytes_written'])} of data "
              f"in {result['seconds']} s)")  # fmt: skip
    return common.EXIT_OK
