"""``cdp suspicions list|mark|dismiss``: ransomware alerts on a group's history.

``list`` shows what the detector or an outside tool raised; ``mark`` says a range is
compromised (an EDR or SIEM alert, or the on-call engineer's judgement); ``dismiss`` says
a suspicion was a false alarm. Marks and dismissals are recorded in the target's audit
log under the caller's certificate identity.
"""

from __future__ import annotations

import argparse
from typing import Any

from cdp.cli import common
from cdp.errors import InvalidInputError
from cdp.restore.spec import parse_time
from cdp.rpc.convert import suspicion_to_dict
from cdp.v1 import replication_pb2 as pb


def add_parser(sub: Any) -> None:
    """Register ``suspicions list``, ``suspicions mark`` and ``suspicions dismiss``."""
    p = sub.add_parser("suspicions", help="ransomware alerts: list, mark a range, dismiss")
    ssub = p.add_subparsers(dest="suspicions_command", required=True, metavar="SUBCOMMAND")
    ls = ssub.add_parser("list", help="a group's suspicions, oldest first")
    common.add_target_group(ls)
    ls.add_argument("--standing", action="store_true", help="only those not dismissed")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(handler=list_)
    mk = ssub.add_parser("mark", help="mark a range of the group's history compromised")
    common.add_target_group(mk)
    start = mk.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "--from", dest="since", metavar="TIME",
        help="ISO-8601 start time, matched against point times as `cdp points` lists them: "
        "every write after the newest point before it is suspect",
    )  # fmt: skip
    start.add_argument("--from-seq", type=int, metavar="SEQ", help="first suspect seq")
    mk.add_argument("--to", dest="until", metavar="TIME", help="ISO-8601 end time (default: open)")
    mk.add_argument("--to-seq", type=int, metavar="SEQ", help="last suspect seq (default: open)")
    mk.add_argument("--reason", required=True, help="why, e.g. the EDR's alert id")
    mk.add_argument("--json", action="store_true", help="print one JSON object")
    mk.set_defaults(handler=mark)
    dm = ssub.add_parser("dismiss", help="dismiss a suspicion as a false alarm")
    common.add_target_group(dm)
    dm.add_argument("id", help="the suspicion's id, e.g. s-1")
    dm.add_argument("--member", default="", help="the member (a group on several hosts)")
    dm.add_argument("--reason", required=True, help="why it is a false alarm")
    dm.add_argument("--json", action="store_true", help="print one JSON object")
    dm.set_defaults(handler=dismiss)


async def list_(args: argparse.Namespace) -> int:
    """Print the group's suspicions."""
    async with common.connect(args) as client:
        found = await client.list_suspicions(args.group, args.standing)
    rows = [suspicion_to_dict(s) for s in found]
    if args.json:
        common.emit_json({"group": args.group, "suspicions": rows})
        return common.EXIT_OK
    if not rows:
        print(f"no suspicions on group {args.group!r}")
        return common.EXIT_OK
    cells = [
        [r["id"] + (f"@{r['member_id']}" if r["member_id"] else ""), r["start"] or "-",
         f"{r['start_seq']}-{r['end_seq'] or ''}", _state(r), r["signal"], r["raised_by"],
         r["reason"]]
        for r in rows
    ]  # fmt: skip
    print(
        common.table(["ID", "FROM (UTC)", "SEQS", "STATE", "SIGNAL", "RAISED BY", "REASON"], cells)
    )
    return common.EXIT_OK


def _state(r: dict[str, Any]) -> str:
    if r["dismissed"]:
        return f"dismissed by {r['dismissed_by']}"
    return "STANDING (open)" if r["open"] else "STANDING"


def mark_request(args: argparse.Namespace) -> pb.MarkCompromisedRequest:
    """The request for ``mark``'s flags (a time range or a seq range)."""
    if args.since is not None:
        if args.to_seq is not None:
            raise InvalidInputError("--to-seq", "goes with --from-seq, not --from")
        start = parse_time("--from", args.since)
        end = parse_time("--to", args.until) if args.until else 0
        return pb.MarkCompromisedRequest(
            group_id=args.group, start_time_unix_ns=start, end_time_unix_ns=end,
            reason=args.reason,
        )  # fmt: skip
    if args.until is not None:
        raise InvalidInputError("--to", "goes with --from, not --from-seq")
    if args.from_seq < 1 or (args.to_seq is not None and args.to_seq < args.from_seq):
        raise InvalidInputError("--from-seq", "must be 1 or more, and not after --to-seq")
    return pb.MarkCompromisedRequest(
        group_id=args.group, start_seq=args.from_seq, end_seq=args.to_seq or 0,
        reason=args.reason,
    )  # fmt: skip


async def mark(args: argparse.Namespace) -> int:
    """Mark the range; print what was recorded."""
    req = mark_request(args)
    async with common.connect(args) as client:
        made = [suspicion_to_dict(s) for s in await client.mark_compromised(req)]
    if args.json:
        common.emit_json({"group": args.group, "suspicions": made})
        return common.EXIT_OK
    for r in made:
        where = f"@{r['member_id']}" if r["member_id"] else ""
        print(f"marked {r['id']}{where}: every restore point from seq {r['start_seq']} on is "
              "suspect until it is dismissed")  # fmt: skip
    return common.EXIT_OK


async def dismiss(args: argparse.Namespace) -> int:
    """Dismiss the suspicion; print it."""
    async with common.connect(args) as client:
        found = await client.dismiss_suspicion(args.group, args.id, args.reason, args.member)
    r = suspicion_to_dict(found)
    if args.json:
        common.emit_json({"group": args.group, "suspicion": r})
        return common.EXIT_OK
    print(f"dismissed {r['id']} (by {r['dismissed_by']} at {r['dismissed_at']}): {r['reason']}")
    return common.EXIT_OK
