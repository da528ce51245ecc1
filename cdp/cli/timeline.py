"""``cdp timeline``: restorable intervals, gaps and their causes, suspect bands, history health."""

from __future__ import annotations

import argparse
from typing import Any

from cdp.cli import common
from cdp.rpc.convert import timeline_to_dict as to_dict


def add_parser(sub: Any) -> None:
    """Register ``timeline``."""
    p = sub.add_parser("timeline", help="a group's restorable intervals and the gaps between")
    common.add_target_group(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    """Print the timeline."""
    async with common.connect(args) as client:
        data = to_dict(args.group, await client.timeline(args.group))
    if args.json:
        common.emit_json(data)
        return common.EXIT_OK
    rows = []
    for s in data["spans"]:
        what = (
            f"{s['points']:,} restore points"
            if s["restorable"]
            else f"NO RESTORE POINTS ({s['cause']})"
        )
        rows.append([s["start"] or "-", s["end"] or "-", f"{s['start_seq']}-{s['end_seq']}", what])
    for b in data["suspect_bands"]:
        where = f"@{b['member_id']}" if b["member_id"] else ""
        end = "now (open)" if b["open"] else b["end"] or "-"
        what = f"SUSPECT ({b['suspicion_id']}{where}: {b['signal']})"
        rows.append([b["start"] or "-", end, f"{b['start_seq']}-{b['end_seq']}", what])
    print(common.table(["FROM (UTC)", "TO (UTC)", "SEQS", "WHAT"], rows))
    print(
        f"history: {data['available_history_s']:.0f} s available of a "
        f"{data['history_window_s']:.0f} s "
        f"window ({data['history_health']}); journal {common.fmt_bytes(data['journal_bytes'])} "
        f"of {common.fmt_bytes(data['journal_limit_bytes'])}"
    )
    if data["history_message"]:
        print(f"{data['history_health'].upper()}: {data['history_message']}")
    return common.EXIT_OK if data["history_health"] != "error" else common.EXIT_FAILED
