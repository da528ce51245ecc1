"""What ``cdp failover`` and ``cdp failover verify`` share: the session and the dry-run printer.

A :class:`Session` wires a plan file to the orchestrator (the vCenter connector, the
target through :class:`cdp.failover.remote.TargetReplication`, the progress printer);
:func:`print_dry_run` renders a readiness table and an operation plan. Both command
modules import this one; it imports neither.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from cdp import audit
from cdp.cli import common
from cdp.errors import CdpError
from cdp.failover import steps as st
from cdp.failover.checks import FAIL, CheckRow
from cdp.failover.orchestrator import Event, Orchestrator
from cdp.failover.plan import Plan, VCenterSettings, load_plan, resolve_credentials
from cdp.failover.remote import TargetReplication
from cdp.failover.steplog import StepLog
from cdp.failover.survey import SurveyResult
from cdp.failover.vcenter import VCenter
from cdp.rpc.client import ReplicationClient
from cdp.tls import identity_of, load_client_tls

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
        who = identity_of(tls.cert_pem) if tls is not None and tls.cert_pem else None
        self.identity = str(who) if who else audit.INSECURE
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
            operator=f"{self.identity} ({getpass.getuser()}@{socket.gethostname()})",
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
        """Send the last progress report (briefly), log out of vCenter, close the channel."""
        await self.orch.progress.drain()
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


AUDITED = ("test", "stop-test", "run", "commit", "rollback", "failback", "verify", "promote")
"""``cdp failover`` subcommands that change something: each run is audited (not dry runs)."""
AUDIT_TIMEOUT_S = 10.0
"""How long recording an operation at the target may take before the CLI gives up on it."""


async def with_session(args: argparse.Namespace, body: Callable[[Session], Any]) -> int:
    """Run ``body`` with a session for the plan ``args.plan``; always close it.

    The one place where failover operations are audited: a subcommand of :data:`AUDITED`
    (not a dry run) is recorded with its outcome at the target and in the plan's folder.
    """
    session = Session(args)
    command = getattr(args, "failover_command", "")
    try:
        if command not in AUDITED or getattr(args, "dry_run", False):
            code: int = await body(session)
            return code
        return await _audited(session, args, f"failover.{command}", body)
    finally:
        await session.close()


async def _audited(
    s: Session, args: argparse.Namespace, action: str, body: Callable[[Session], Any]
) -> int:
    """Run ``body`` and record it, whatever way it ends (an exception is re-raised)."""
    code, error = common.EXIT_FAILED, None
    try:
        code = int(await body(s))
        return code
    except BaseException as exc:
        error = exc
        raise
    finally:
        outcome = _outcome(error, code)
        await record_operation(s, action, _audit_object(s, args), outcome)


def _outcome(error: BaseException | None, code: int) -> str:
    if error is not None:  # Ctrl-C raises a CancelledError without a message
        return audit.outcome_of(error) if str(error) else f"error: {type(error).__name__}"
    return audit.OK if code == common.EXIT_OK else f"error: exit {code}"


def _audit_object(s: Session, args: argparse.Namespace) -> str:
    what = f"plan {s.plan.name} ({s.plan.source_path})"
    if hasattr(args, "at"):  # test/run without --at: latest, or the point a resumed run fixed
        what += f" at {args.at or 'default point'}"
    return what


async def record_operation(s: Session, action: str, obj: str, outcome: str) -> None:
    """Record an operation at the target (RecordAudit) and beside the plan's step log.

    Never raises: an unreachable target is said in the local entry's object; a local
    file that cannot be written is logged.
    """
    identity, cap = s.identity, audit.MAX_FIELD_CHARS
    obj, outcome = obj[:cap], outcome[:cap]  # the target refuses longer fields
    try:
        entry = await asyncio.wait_for(s.client.record_audit(action, obj, outcome), AUDIT_TIMEOUT_S)
        identity = entry.identity or identity
    except (CdpError, TimeoutError) as exc:
        obj += f"; not recorded at the target: {exc or 'timed out'}"
    folder = StepLog(s.plan.state_dir, s.plan.name).folder
    try:
        os.makedirs(folder, exist_ok=True)
        audit.AuditLog(os.path.join(folder, audit.FILE_NAME)).append(identity, action, obj, outcome)
    except (CdpError, OSError) as exc:
        log.error("%s of plan %s not audited locally: %s", action, s.plan.name, exc)


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
