"""``cdp audit``: the target's audit trail (who did what, when, how it ended)."""

from __future__ import annotations

import argparse
from typing import Any

from cdp.cli import common
from cdp.errors import InvalidInputError
from cdp.restore.spec import parse_time
from cdp.rpc.convert import audit_from_pb


def add_parser(sub: Any) -> None:
    """Register ``audit``."""
    p = sub.add_parser("audit", help="operator actions recorded at the target, oldest first")
    p.add_argument("--target", required=True, help="HOST:PORT of the target")
    common.add_tls_flags(p, "an operator's folder from `cdp certs init`, e.g. DIR/operators/admin")
    p.add_argument("--since", metavar="TIME", help="only entries at or after this UTC time")
    p.add_argument("--limit", type=int, default=0, help="only the newest N entries (0: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    """Print the audit entries."""
    since_ns = parse_time("--since", args.since) if args.since else 0
    if args.limit < 0:
        raise InvalidInputError("--limit", "must not be negative")
    async with common.connect(args) as client:
        found = [audit_from_pb(e) for e in await client.list_audit(since_ns, args.limit)]
    if args.json:
        common.emit_json({"entries": [
            {"time": e.time_utc, "time_unix_ns": e.time_ns, "identity": e.identity,
             "action": e.action, "object": e.object, "outcome": e.outcome} for e in found
        ]})  # fmt: skip
        return common.EXIT_OK
    rows = [[e.time_utc, e.identity, e.action, e.object, e.outcome] for e in found]
    print(common.table(["TIME (UTC)", "WHO", "ACTION", "OBJECT", "OUTCOME"], rows))
    return common.EXIT_OK
