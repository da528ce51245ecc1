"""``cdp journal verify`` (prove a stopped target's journal intact) and ``cdp journal keygen``."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from cdp.cli import common, journal_keys
from cdp.errors import InvalidInputError
from cdp.journal.journal import checkpoint_head
from cdp.journal.seal import new_key_line, parse_keyring
from cdp.journal.store.rocksdb import RocksIndex
from cdp.journal.verify import GroupVerdict, verify_group

EXIT_TAMPERED = 1
"""Exit code when a record was found altered, removed or reordered (or unverifiable)."""


def add_parser(sub: Any) -> None:
    """Register ``journal verify`` and ``journal keygen``."""
    p = sub.add_parser("journal", help="check or key the journal of a stopped target")
    jsub = p.add_subparsers(dest="journal_command", required=True, metavar="SUBCOMMAND")
    v = jsub.add_parser(
        "verify", help="prove that no acknowledged record was altered, removed or reordered "
        "(target stopped); exit 1 naming segment and seq if one was",
    )  # fmt: skip
    v.add_argument("--data-dir", required=True, help="the stopped target's data dir")
    v.add_argument("--group", help="only this group (member key as in the journal dir)")
    journal_keys.add_flag(v, "--key-file")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(handler=run_verify)
    k = jsub.add_parser("keygen", help="print a new random journal key line KEY_ID:HEX")
    k.add_argument("key_id", help="1-16 of [A-Za-z0-9._-], recorded in each segment header")
    k.set_defaults(handler=run_keygen)


def verify(data_dir: str, group: str | None, key_file: str | None) -> list[GroupVerdict]:
    """Verify every group's journal (or one) in a stopped target's data dir."""
    index_dir, journal_dir = os.path.join(data_dir, "index"), os.path.join(data_dir, "journal")
    if not os.path.isdir(index_dir):
        raise InvalidInputError("--data-dir", f"{data_dir!r} holds no target index")
    keys = journal_keys.load_keyring(key_file, "--key-file")
    groups = sorted(os.listdir(journal_dir)) if os.path.isdir(journal_dir) else []
    if group is not None:
        if group not in groups:
            raise InvalidInputError("--group", f"no journal of {group!r} in {journal_dir}")
        groups = [group]
    index = RocksIndex(index_dir)
    try:
        return [
            verify_group(journal_dir, g, index, keys, checkpoint_head(index, g)) for g in groups
        ]
    finally:
        index.close()


async def run_verify(args: argparse.Namespace) -> int:
    """Verify, print the findings, exit 1 when anything was found."""
    verdicts = verify(os.path.abspath(args.data_dir), args.group, args.journal_key_file)
    if args.json:
        common.emit_json({"groups": [dataclasses.asdict(v) for v in verdicts]})
    else:
        for v in verdicts:
            _render(v)
    return EXIT_TAMPERED if any(not v.intact for v in verdicts) else common.EXIT_OK


def _render(v: GroupVerdict) -> None:
    chained = sum(s.chained for s in v.segments)
    keyed = sorted({s.key_id for s in v.segments if s.key_id})
    state = "INTACT" if v.intact else "NOT INTACT"
    cp = ""
    if v.intact and v.checkpoint_seq:
        cp = f"checkpoint head at seq {v.checkpoint_seq} matches"
    print(f"group {v.group}: {state}: {v.records:,} records in {len(v.segments)} segments "
          f"({chained} chained, keys {keyed or 'none'}), acked up to seq {v.acked_seq}"
          f"{'; ' + cp if cp else ''}")  # fmt: skip
    for f in v.problems:
        at = f" seq {f.seq}" if f.seq is not None else ""
        print(f"  DATA_LOSS {f.path}{at}: {f.problem}")
    for note in v.notes:
        print(f"  note: {note}")


async def run_keygen(args: argparse.Namespace) -> int:
    """Print a new key line (append it to the key file to rotate)."""
    line = new_key_line(args.key_id)
    parse_keyring(line, "KEY_ID")  # names a bad id before printing
    print(line)
    return common.EXIT_OK
