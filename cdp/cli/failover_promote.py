"""``cdp failover promote``: a committed copy-free failover's disks become flat disks.

Consolidates each recovered disk's chain (base replica + journal tail + the VM's writes)
into a standalone flat disk in ``<vm>-dr/`` and lifts the VM's base hold at the target
(:mod:`cdp.failover.promote`). The VMs must be powered off. See docs/FAILOVER.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from cdp.cli import common
from cdp.cli.failover_common import Session, with_session
from cdp.failover.promote import promote

COLUMNS = ("vm", "disks", "promoted", "bytes_written", "seconds", "released")


def add_parser(fsub: Any) -> None:
    """Register ``failover promote``."""
    c = fsub.add_parser(
        "promote", help="consolidate a committed copy-free failover's disks, lift the holds"
    )
    c.add_argument("--plan", required=True, help="recovery plan file (YAML)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(handler=_promote)


async def _promote(args: argparse.Namespace) -> int:
    async def body(s: Session) -> int:
        result = await promote(s.orch.log, s.orch.vcenter, s.orch.replication)
        if s.json:
            common.emit_json(result)
        else:
            rows = [[str(r[c]) for c in COLUMNS] for r in result["vms"]]
            print(common.table([c.upper() for c in COLUMNS], rows))
        return common.EXIT_OK

    return await with_session(args, body)
