"""``cdp target scrub``: check every replica extent and journal segment of a stopped target."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Any

from cdp.cli import common, journal_keys
from cdp.errors import InvalidInputError
from cdp.group import GroupSpec
from cdp.journal.store.rocksdb import RocksIndex
from cdp.target.scrub import DEFAULT_SCRUB_RATE_BYTES_S, ScrubReport, scrub_group

REPAIR = (
    "  repair: start the target; the next handshake of each damaged group's source answers "
    "resync_required and the resync rewrites the marked regions"
)
"""What the operator does about damage."""
EXIT_DAMAGE = 1
"""Exit code when damage was found."""


def add_parser(tsub: Any) -> None:
    """Register ``target scrub`` under ``target``."""
    s = tsub.add_parser(
        "scrub", help="check replica extents against their sums and journal records against "
        "their CRCs (target stopped); exit 1 if anything is damaged",
    )  # fmt: skip
    s.add_argument("--data-dir", required=True, help="the stopped target's data dir")
    s.add_argument(
        "--rate", default=f"{DEFAULT_SCRUB_RATE_BYTES_S // 2**20}MiB", metavar="SIZE",
        help="replica bytes read per second at most (default 200MiB; 0 for no limit)",
    )  # fmt: skip
    journal_keys.add_flag(s, "--key-file")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(handler=run)


def scrub(data_dir: str, rate_bytes_s: int, key_file: str | None = None) -> ScrubReport:
    """Scrub every group stored in a data dir (``key_file``: the journal keyring)."""
    index_dir = os.path.join(data_dir, "index")
    if not os.path.isdir(index_dir):
        raise InvalidInputError("--data-dir", f"{data_dir!r} holds no target index")
    keys = journal_keys.load_keyring(key_file, "--key-file")
    index = RocksIndex(index_dir)
    report = ScrubReport()
    try:
        names: list[str] = json.loads(index.get_meta("groups") or b"[]")
        for name in names:
            raw = index.get_meta(f"group/{name}")
            assert raw is not None, name
            spec = GroupSpec.from_json(json.loads(raw))
            scrub_group(
                spec, os.path.join(data_dir, "replicas"), os.path.join(data_dir, "journal"),
                index, report, rate_bytes_s, keys,
            )  # fmt: skip
    finally:
        index.close()
    return report


async def run(args: argparse.Namespace) -> int:
    """Scrub, print the findings, exit 1 on damage."""
    rate = common.parse_size("--rate", args.rate)
    report = scrub(os.path.abspath(args.data_dir), rate, args.journal_key_file)
    if args.json:
        common.emit_json(dataclasses.asdict(report))
    else:
        print(f"scrub: {report.regions_checked:,} replica regions, {report.records_checked:,} "
              f"journal records in {report.segments_checked} segments checked; "
              f"{len(report.damage)} damaged")  # fmt: skip
        for d in report.damage:
            where = f"VM {d.vm_id} disk {d.disk}" if d.what == "replica" else "journal"
            region = f" region {d.region}" if d.region is not None else ""
            print(f"  DAMAGED group {d.group} {where}{region}: {d.detail}")
        if report.damage:
            print(REPAIR)
    return EXIT_DAMAGE if report.damage else common.EXIT_OK
