"""``cdp failover verify``: boot a restore point in the isolated network, check it, clean up.

Wires :class:`cdp.failover.verify.Verifier` to a plan (the same session as ``failover
test``), prints a table per VM (or the record as JSON) and lists past runs
(``--history``). The first SIGINT/SIGTERM stops the checks (hooks are killed) and still
cleans up; a second one stops at once (run ``verify`` or ``stop-test`` again to clean
up). Exit codes: 0 every VM passed, 1 a check failed (or the readiness checks, or the
state of the plan), 2 bad plan or flags, 3 vCenter or the target unreachable,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
from typing import Any

from cdp.cli import common
from cdp.cli.failover_common import Session, print_dry_run, with_session
from cdp.errors import CdpError
from cdp.failover import steps as st
from cdp.failover.orchestrator import Event
from cdp.failover.plan import load_plan
from cdp.failover.steplog import StepLog
from cdp.failover.verify import INTERRUPTED, PASSED, SKIPPED, Outcome, Verifier, history
from cdp.verified import ACTION, Verification

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130
EXIT_SKIPPED = 4
"""``verify`` did not run: a live failover of the plan is active (recorded as skipped)."""


def add_parser(fsub: Any) -> None:
    """Register ``failover verify``."""
    c = fsub.add_parser(
        "verify",
        help="verify a restore point: test failover, check every VM, clean up, record",
    )
    c.add_argument("--plan", required=True, help="recovery plan file (YAML)")
    c.add_argument(
        "--at",
        default="latest",
        help="restore point: latest, last-clean (newest point with a clean verdict), a seq, an "
        "ISO-8601 time or a bookmark name (default latest)",
    )
    c.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    c.add_argument("--history", action="store_true", help="list past verification runs")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument(
        "--every", type=float, default=0.0, help=argparse.SUPPRESS
    )  # the scheduler's cadence (s), told to the target for its overdue alert
    c.set_defaults(handler=_verify)


async def _verify(args: argparse.Namespace) -> int:
    if args.history:
        return _history(args)

    async def body(s: Session) -> int:
        verifier = Verifier(s.orch, shutil.which("qemu-img"), dict(os.environ))
        if args.dry_run:
            return await _dry_run(s, verifier, args.at)
        with _interruptible(s, verifier):
            outcome = await verifier.run(args.at)
        await record_verified(s, outcome.record, args.every)
        return _report(s, outcome)

    return await with_session(args, body)


class _interruptible:
    """First SIGINT/SIGTERM: finish gracefully (cleanup runs); second: cancel the run."""

    def __init__(self, s: Session, verifier: Verifier) -> None:
        self.s, self.verifier = s, verifier
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, self._on_signal)

    def __exit__(self, *exc: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        if self.verifier.stop.is_set() and self.task is not None:
            self.task.cancel()
            return
        self.verifier.interrupt()
        self.s.progress(
            Event("warn", "interrupted: stopping the checks, cleaning up (again: stop at once)")
        )


async def record_verified(s: Session, rec: dict[str, Any], every_s: float) -> None:
    """Tell the target each group's result (its last verified point); never raises."""
    if rec.get("result") == SKIPPED:
        return
    points = rec.get("points", {})
    for g in s.plan.groups:
        p = points.get(g.name) or {}
        v = Verification(g.name, s.plan.name, rec["result"], int(p.get("seq", 0)),
                         int(p.get("time_ns", 0)), every_s)  # fmt: skip
        try:
            await asyncio.wait_for(s.client.record_audit(ACTION, v.to_object(), "ok"), 10)
        except (CdpError, TimeoutError) as exc:
            log.warning("result of group %s not recorded at the target: %s", g.name, exc)


def _report(s: Session, outcome: Outcome) -> int:
    if s.json:
        common.emit_json({**outcome.record, "record_path": outcome.path})
    else:
        print(render_outcome(outcome.record))
        print(f"recorded: {outcome.path}")
    if outcome.result == INTERRUPTED:
        return EXIT_INTERRUPTED
    if outcome.result == SKIPPED:
        return EXIT_SKIPPED
    if outcome.error is not None:
        return common.fail(outcome.error)
    return common.EXIT_OK if outcome.result == PASSED else common.EXIT_FAILED


async def _dry_run(s: Session, verifier: Verifier, at: str) -> int:
    """The test failover's dry run plus what each VM would be checked for; changes nothing."""
    survey = await s.orch.dry_run(st.MODE_TEST, at)
    checks = verifier.describe(survey.operation) if survey.operation else []
    lines = ["then, per VM: poweredOn, each disk a valid VMDK of its size, the hook; "
             "then stop-test"]  # fmt: skip
    for c in checks:
        hook = " ".join(c["hook"]["command"]) if c["hook"] else "no hook"
        lines.append(f"  {c['name']}: {len(c['disks'])} disk(s), qemu-img {c['qemu_img']}, {hook}")
    return print_dry_run(s, survey, {"verify": checks}, "\n".join(lines))


def _history(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    rows = history(StepLog(plan.state_dir, plan.name).folder)
    if args.json:
        common.emit_json({"plan": plan.name, "runs": rows})
        return common.EXIT_OK
    if not rows:
        print(f"plan {plan.name!r}: no verification recorded yet")
        return common.EXIT_OK
    table = [
        [
            r.get("started", "?"),
            r["result"].upper(),
            ", ".join(f"{g}@{seq}" for g, seq in r.get("points", {}).items()) or "-",
            f"{r.get('vms_passed', 0)}/{r.get('vms', 0)}",
            f"{r['seconds']:.1f}" if r.get("seconds") is not None else "-",
            os.path.basename(r["file"]),
        ]
        for r in rows
    ]
    print(common.table(["STARTED (UTC)", "RESULT", "POINT", "VMS OK", "SECONDS", "RECORD"], table))
    return common.EXIT_OK


# ---------------------------------------------------------------- rendering


def render_outcome(rec: dict[str, Any]) -> str:
    """A verification run: the point, a row per VM, why VMs failed, the cleanup."""
    points = ", ".join(
        f"group {g} seq {p['seq']} ({p['time']})" for g, p in rec.get("points", {}).items()
    )
    lines = [f"verification of plan {rec['plan']!r} at {points or rec['at']!r}"]
    if rec["result"] == SKIPPED:
        return "\n".join([*lines, rec["detail"]])
    rows = [
        [
            v["vm"],
            v.get("name", "-"),
            _power(v),
            _disks(v),
            _hook(v),
            "PASS" if v["passed"] else "FAIL",
        ]
        for v in rec["vms"]
    ]
    lines.append(common.table(["VM", "REGISTERED AS", "POWER", "DISKS", "HOOK", "RESULT"], rows))
    lines += [f"  {v['vm']}: {why}" for v in rec["vms"] for why in _failures(v)]
    cleanup = rec["cleanup"]
    lines.append(f"cleanup (stop-test): {cleanup['status']}" + _hint(cleanup))
    if rec.get("error"):
        lines.append(f"stopped by: {rec['error']}")
    lines.append(f"result: {rec['result'].upper()} in {rec['seconds']:.2f} s")
    return "\n".join(lines)


def _power(v: dict[str, Any]) -> str:
    p = v.get("power")
    if p is None:
        return str(v.get("power_on", "-"))
    return f"{p['state']} ({p['seconds']:.2f} s)" if p["seconds"] is not None else p["state"]


def _disks(v: dict[str, Any]) -> str:
    disks = v.get("disks")
    if disks is None:
        return "-"
    return f"{sum(1 for d in disks if d['passed'])}/{len(disks)} ok"


def _hook(v: dict[str, Any]) -> str:
    if "hook" not in v:
        return "-"
    h = v["hook"]
    return "none" if h is None else f"{h['detail']}, {h['seconds']:.2f} s"


def _failures(v: dict[str, Any]) -> list[str]:
    out = [str(v["detail"])] if v.get("detail") else []
    p = v.get("power")
    if p is not None and not p["passed"]:
        out.append(f"power: {p['state']} (timeout {p['timeout_s']:g} s)")
    out += [f"disk {d['disk']}: {d['detail']}" for d in v.get("disks") or [] if not d["passed"]]
    h = v.get("hook")
    if h is not None and not h["passed"]:
        tail = (h["stderr_tail"] or h["stdout_tail"]).strip().splitlines()[-3:]
        out.append(f"hook {h['detail']}" + (": " + " | ".join(tail) if tail else ""))
    return out


def _hint(d: dict[str, Any]) -> str:
    return f" ({d['error']}; {d['hint']})" if d.get("error") else ""
