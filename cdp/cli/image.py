"""``cdp image export``: a disk at a restore point, written as a VMDK.

Parses the flags and renders; the export itself is :func:`cdp.failover.export.export_image`.
"""

from __future__ import annotations

import argparse
from typing import Any

from cdp.cli import common
from cdp.errors import InvalidInputError
from cdp.failover.export import check_out, export_image
from cdp.restore.spec import format_ns


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
        help="latest, last-clean (newest point with a clean verdict), a restore point seq, an "
        "ISO-8601 time (newest point at or before it) "
        "or a bookmark name",
    )  # fmt: skip
    ex.add_argument("--out", required=True, help="path of the VMDK descriptor to write (*.vmdk)")
    ex.add_argument("--force", action="store_true", help="overwrite an existing image")
    ex.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ex.set_defaults(handler=run)


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
        common.emit_json(result.to_json())
        return common.EXIT_OK
    i, p = result.image, result.image.point
    print(
        f"{'plan' if args.dry_run else 'image'}: {args.vm} disk {args.disk} at restore point "
        f"{p.seq} ({format_ns(p.time_ns)}, {p.kind}{' ' + repr(p.label) if p.label else ''})\n"
        f"  base replica at seq {i.base_seq} + {i.records:,} journal records "
        f"({common.fmt_bytes(i.record_bytes)}) on a {common.fmt_bytes(i.capacity_bytes)} disk"
    )
    if not args.dry_run:
        print(f"  wrote {result.out} ({common.fmt_bytes(result.bytes_written)} of data "
              f"in {result.seconds} s)")  # fmt: skip
    return common.EXIT_OK
