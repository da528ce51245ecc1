"""What ``cdp failover`` and ``cdp failover verify`` share: the session and the dry-run printer.

A :class:`Session` wires a plan file to the orchestrator (the vCenter connector, the
target through :class:`cdp.failover.remote.TargetReplication`, the progress printer);
:func:`print_dry_run` renders a readiness table and an operation plan. Both command
modules import this one; it imports neither.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from cdp.cli import common
from cdp.failover import steps as st
from cdp.failover.checks import FAIL, CheckRow
from cdp.failover.orchestrator import Event, Orchestrator
from cdp.failover.plan import Plan, VCenterSettings, load_plan, resolve_credentials
from cdp.failover.remote import TargetReplication
from cdp.failover.survey import SurveyResult
from cdp.failover.vcenter import VCenter
from cdp.rpc.client import ReplicationClient
from cdp.tls import load_client_tls

log = logging.getLogger(__name__)


def connector(settings: VCenterSettings, pool: int) -> Callable[[], VCenter]:
    """A vCenter connector for ``settings`` (credentials resolved when it is called)."""

    def connect() -> VCenter:
        from cdp.failover import vsphere  # pyVmomi costs ~60 ms: only when vCenter is used

        credentials = resolve_credentials(settings.credentials, os.environ)
        return vsphere.connect(settings, credentials, pool)

    return connect


def login_text(plan: Plan) -> str:
    """Where the plan's vCenter credentials come from, for error messages."""
    c = plan.vcenter.credentials
    source = f"file {c.file}" if c.file else f"env {c.user_env}/{c.password_env}"
    return f"credentials from {source}"


class Session:
    """An orchestrator and its target channel for one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.plan = load_plan(args.plan)
        self.json = bool(args.json)
        self.out: TextIO = sys.stderr if self.json else sys.stdout
        tls = load_client_tls(self.plan.target_tls_dir) if self.plan.target_tls_dir else None
        if tls is None:
            log.warning("plan target.insecure: talking to the target in plain text")
        self.client = ReplicationClient(self.plan.target_address, tls)
        protected = self.plan.protected_site
        self.orch = Orchestrator(
            self.plan,
            connector(self.plan.vcenter, self.plan.recovery.parallel),
            TargetReplication(self.client),
            connect_protected=connector(protected.vcenter, 2) if protected else None,
            login=login_text(self.plan),
            report=self.progress,
        )

    def progress(self, e: Event) -> None:
        """Print one progress event."""
        if e.kind == "step":
            line = f"[{e.index:>3}/{e.total}] {e.seconds:7.3f} s  {e.text}"
        elif e.kind == "step-failed":
            line = f"[{e.index:>3}/{e.total}]  FAILED    {e.text}"
        elif e.kind == "phase":
            line = f"-- {e.text}"
        else:
            line = ("warning: " if e.kind == "warn" else "") + e.text
        if e.scope:  # an operation inside another: set apart from the outer counter
            line = f"  {e.scope} {line}"
        say(line, self.out)

    async def close(self) -> None:
        """Log out of vCenter, close the channel."""
        self.orch.close()
        await self.client.close()


def say(line: str, out: Any) -> None:
    """Print a progress line; a closed terminal (EPIPE) never stops an operation.

    The line is dropped (the step log records the step anyway) and stdout is pointed at
    /dev/null so later writes cannot fail either.
    """
    try:
        print(line, file=out, flush=True)
    except (BrokenPipeError, OSError):
        with contextlib.suppress(OSError):  # stdout is gone: point it at /dev/null
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())


async def with_session(args: argparse.Namespace, body: Callable[[Session], Any]) -> int:
    """Run ``body`` with a session for the plan ``args.plan``; always close it."""
    session = Session(args)
    try:
        code: int = await body(session)
        return code
    finally:
        await session.close()


def render_checks(rows: list[CheckRow]) -> str:
    """The readiness table, with hints under it for rows that are not pass."""
    table = common.table(
        ["CHECK", "RESULT", "DETAIL"], [[r.name, r.status.upper(), r.detail] for r in rows]
    )
    hints = [f"  {r.name}: {r.hint}" for r in rows if r.hint and r.status != "pass"]
    return table + ("\n\nhints:\n" + "\n".join(hints) if hints else "")


def print_dry_run(
    s: Session, survey: SurveyResult, extra: dict[str, Any] | None = None, more: str = ""
) -> int:
    """Print a dry run's readiness table and operation plan; exit 1 if a check failed.

    JSON gets ``extra``'s keys added; text gets ``more`` after the plan.
    """
    failed = any(r.status == FAIL for r in survey.rows)
    op = survey.operation
    if s.json:
        common.emit_json(
            {
                "plan": s.plan.name,
                "ready": not failed,
                "dry_run": True,
                "checks": [dataclasses.asdict(r) for r in survey.rows],
                "operation": op.to_json() if op else None,
                **(extra or {}),
            }
        )
        return common.EXIT_FAILED if failed else common.EXIT_OK
    print(render_checks(survey.rows))
    if op is not None:
        print("\n" + render_operation(op))
    if more:
        print("\n" + more)
    print("\ndry run: nothing was changed")
    return common.EXIT_FAILED if failed else common.EXIT_OK


def render_operation(op: st.OperationPlan) -> str:
    """The plan of an operation: point, placement, steps, bytes, RTO estimate."""
    lines = [f"{'planned ' if op.planned else ''}{op.operation} failover"]
    for group, p in op.points.items():
        if p is None:
            lines.append(f"  group {group}: restore point bookmarked after the drain")
            continue
        label = f" {p.label!r}" if p.label else ""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(p.time_ns / 1e9))
        lines.append(f"  group {group}: restore point seq {p.seq} ({p.kind}{label}, {when} UTC)")
    rows = [
        [
            v.vm,
            v.name,
            v.host,
            v.boot_group,
            str(len(v.hardware.disks)),
            ", ".join(n.network for n in v.hardware.nics) or "-",
        ]
        for v in op.vms
    ]
    lines.append(
        common.table(["VM", "REGISTERED AS", "HOST", "BOOT GROUP", "DISKS", "NETWORKS"], rows)
    )
    lines.append("steps:")
    lines += [f"  {n:>3}. phase {s.phase}: {s.describe()}" for n, s in enumerate(op.steps, 1)]
    lines.append(
        f"bytes to prepare: {common.fmt_bytes(op.bytes_to_prepare)}; "
        f"RTO estimate: {op.rto_estimate_s:.1f} s"
    )
    return "\n".join(lines)
