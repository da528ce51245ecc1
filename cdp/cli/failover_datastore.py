"""``cdp failover datastore attach`` and ``cdp failover relocate``.

``datastore attach`` writes the replica folder's marker (once) and mounts the folder as
the recovery datastore on every standby host; ``failover check`` then proves each host
sees it. ``relocate`` Storage-vMotions the plan's VMs off a cdp datastore onto production
storage (after failback: ``--site original``; after a committed failover: ``recovery``).
See docs/FAILOVER.md. Exit codes as for every failover command.
"""

from __future__ import annotations

import argparse
from typing import Any

from cdp.cli import common
from cdp.cli.failover_common import connector
from cdp.errors import ConfigError
from cdp.failover import datastore
from cdp.failover.plan import load_plan

SITES = ("recovery", "original")


def add_parser(fsub: Any) -> None:
    """Register ``failover datastore`` and ``failover relocate``."""
    d = fsub.add_parser("datastore", help="the recovery datastore on the standby hosts")
    dsub = d.add_subparsers(dest="datastore_command", required=True, metavar="SUBCOMMAND")
    a = dsub.add_parser("attach", help="mount the target's replica folder on every standby host")
    a.add_argument("--plan", required=True, help="recovery plan file (YAML)")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(handler=_attach)
    r = fsub.add_parser("relocate", help="Storage vMotion the plan's VMs onto a datastore")
    r.add_argument("--plan", required=True, help="recovery plan file (YAML)")
    r.add_argument("--datastore", required=True, help="the production datastore to move onto")
    r.add_argument(
        "--site",
        choices=SITES,
        default="recovery",
        help="recovery: the recovery vCenter (after commit); original: the protected "
        "site's vCenter and failback.site's datacenter (after failback)",
    )
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(handler=_relocate)


async def _attach(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    rows = await datastore.attach(plan, connector(plan.vcenter, 2))
    _print(args, {"plan": plan.name, "hosts": rows}, rows, ["host", "datastore", "done"])
    return common.EXIT_OK


async def _relocate(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    if args.site == "original":
        if plan.protected_site is None or plan.failback is None:
            raise ConfigError("--site", "original needs protected_site and failback in the plan")
        vc, dc = plan.protected_site.vcenter, plan.failback.site.datacenter
    else:
        vc, dc = plan.vcenter, plan.recovery.datacenter
    rows = await datastore.relocate(plan, connector(vc, 2), dc, args.datastore)
    _print(args, {"plan": plan.name, "datastore": args.datastore, "vms": rows}, rows,
           ["vm", "done"])  # fmt: skip
    return common.EXIT_OK


def _print(args: argparse.Namespace, data: dict[str, Any], rows: list[dict[str, Any]],
           columns: list[str]) -> None:  # fmt: skip
    if args.json:
        common.emit_json(data)
    else:
        print(common.table([c.upper() for c in columns], [[str(r.get(c, "")) for c in columns]
                                                          for r in rows]))  # fmt: skip
