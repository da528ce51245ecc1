"""``cdp points list`` and ``cdp points bookmark``: a group's restore points."""

from __future__ import annotations

import argparse
from typing import Any

from cdp.cli import common
from cdp.errors import InvalidInputError
from cdp.failover.export import point_facts
from cdp.restore.spec import format_ns, parse_time
from cdp.rpc.convert import VERDICT_NAMES
from cdp.v1 import replication_pb2 as pb
from cdp.verdict import SUSPECT


def add_parser(sub: Any) -> None:
    """Register ``points list`` and ``points bookmark``."""
    p = sub.add_parser("points", help="list restore points, create bookmarks")
    psub = p.add_subparsers(dest="points_command", required=True, metavar="SUBCOMMAND")
    ls = psub.add_parser("list", help="restorable points of a group, oldest first")
    common.add_target_group(ls)
    ls.add_argument("--since", help="ISO-8601 time; only points at or after it")
    ls.add_argument("--until", help="ISO-8601 time; only points at or before it")
    ls.add_argument(
        "--all", action="store_true",
        help="every batch boundary, not only labelled points (checkpoints, bookmarks, app)",
    )  # fmt: skip
    ls.add_argument("--limit", type=int, default=0, help="at most this many points")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(handler=list_points)
    bm = psub.add_parser("bookmark", help="name the group's newest durable restore point")
    bm.add_argument("name", help="1-128 printable characters, unique within the group")
    bm.add_argument("--target", required=True, help="HOST:PORT of the target")
    bm.add_argument(
        "--group", required=True, action="append", dest="groups", metavar="GROUP",
        help="consistency group name; repeat it to bookmark several groups at one instant",
    )  # fmt: skip
    common.add_tls_flags(bm, "an operator's folder from `cdp certs init`, e.g. DIR/operators/admin")
    bm.add_argument("--json", action="store_true", help="print one JSON object")
    bm.set_defaults(handler=bookmark)


def point_dict(p: pb.RestorePoint) -> dict[str, Any]:
    """A restore point as JSON-able data."""
    return point_facts(p).to_json()


def listed_dict(p: pb.RestorePoint) -> dict[str, Any]:
    """A listed restore point as JSON-able data, with its verdict (clean, suspect, unknown)."""
    return {**point_dict(p), "verdict": VERDICT_NAMES.get(p.verdict, "")}


async def list_points(args: argparse.Namespace) -> int:
    """Print the points."""
    start = parse_time("--since", args.since) if args.since else 0
    end = parse_time("--until", args.until) if args.until else 0
    if args.limit < 0:
        raise InvalidInputError("--limit", "cannot be negative")
    async with common.connect(args) as client:
        points = await client.list_points(
            args.group, start, end, labelled_only=not args.all, limit=args.limit
        )
    rows = [listed_dict(p) for p in points]
    if args.json:
        common.emit_json({"group": args.group, "points": rows})
        return common.EXIT_OK
    if not rows:
        print("no restorable points in that range (try --all)")
        return common.EXIT_OK
    cells = [
        [f"{r['seq']}", r["time"], r["kind"], _verdict(r["verdict"]), r["label"]] for r in rows
    ]
    print(common.table(["SEQ", "TIME (UTC)", "KIND", "VERDICT", "LABEL"], cells))
    return common.EXIT_OK


def _verdict(verdict: str) -> str:
    """A verdict as the table shows it: suspect stands out."""
    return verdict.upper() if verdict == SUSPECT else verdict or "-"


async def bookmark(args: argparse.Namespace) -> int:
    """Create the bookmark and print where it points (one instant for several groups)."""
    if len(args.groups) > 1:
        return await plan_bookmark(args)
    group = args.groups[0]
    async with common.connect(args) as client:
        point = await client.create_bookmark(group, args.name)
    row = point_dict(point)
    if args.json:
        common.emit_json({"group": group, "bookmark": row})
    else:
        print(f"bookmark {args.name!r} -> restore point {row['seq']} at {row['time']}")
    return common.EXIT_OK


async def plan_bookmark(args: argparse.Namespace) -> int:
    """One bookmark name in every ``--group``, at one instant of the target."""
    async with common.connect(args) as client:
        made = await client.create_plan_bookmark(args.groups, args.name)
    rows = {g.group_id: point_dict(g.point) for g in made.groups}
    if args.json:
        common.emit_json(
            {"groups": rows, "bookmark": args.name, "taken": format_ns(made.taken_unix_ns)}
        )
        return common.EXIT_OK
    print(f"bookmark {args.name!r} at {format_ns(made.taken_unix_ns)} (one instant, target clock)")
    for group, row in rows.items():
        print(f"  {group}: restore point {row['seq']} at {row['time']}")
    return common.EXIT_OK
