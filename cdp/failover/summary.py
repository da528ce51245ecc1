"""The operator's view of a failover operation's log: :func:`summary` and its parts.

Read from the typed record (:class:`cdp.failover.records.Operation`); the dict returned is
what ``--json`` prints and what the CLI renders.
"""

from __future__ import annotations

import time
from typing import Any

from cdp.failover import steplog as sl
from cdp.failover import steps as st
from cdp.failover.records import Operation, StepEntry
from cdp.failover.replication import PointFacts


def summary(op: Operation) -> dict[str, Any]:
    """The operator's view of an operation's log."""
    out: dict[str, Any] = {
        "plan": op.plan,
        "operation": op.operation,
        "planned": op.planned,
        "status": op.status,
        "points": {g: p and point_json(p) for g, p in op.points.items()},
        "rto_s": op.rto_s,
        "rto_estimate_s": op.rto_estimate_s,
        "bytes_to_prepare": op.bytes_to_prepare,
        "steps_done": op.done_steps(),
        "steps": len(op.steps),
        "time_by_step": time_by_kind(op.steps, op.checks_s),
        "vms": [_vm_summary(op, v) for v in op.vms],
    }
    if op.status == sl.AWAITING_COMMIT:
        out["commit_deadline_unix"] = op.commit_deadline_unix
        out["commit_default"] = op.commit_default
    if op.undo is not None:
        u = op.undo.steps
        out["undo"] = {
            "operation": op.undo.operation,
            "steps": len(u),
            "steps_done": sum(1 for s in u if s.done),
        }
    if op.production is not None:
        out["production"] = op.production
        out["production_restart"] = f"cdp failover rollback --plan {op.plan_file}"
    failed = next((s for s in (*op.steps, *(op.undo.steps if op.undo else ())) if s.error), None)
    if failed is not None:
        out["failed_step"] = {"id": failed.id, "step": failed.describe(), "error": failed.error}
    return out


def point_json(p: PointFacts) -> dict[str, Any]:
    """A point as the step log (and ``status --json``) holds it."""
    return {"seq": p.seq, "time_ns": p.time_ns, "kind": p.kind, "label": p.label}


def time_by_kind(steps: list[StepEntry], checks_s: float) -> dict[str, float]:
    """Wall-clock seconds spent in each step kind (overlapping steps counted once)."""
    out: dict[str, float] = {"checks": round(checks_s, 3)}
    for kind in dict.fromkeys(s.kind for s in steps):
        spans = sorted(
            (s.started_unix, s.finished_unix)
            for s in steps
            if s.kind == kind and s.done and s.started_unix is not None
            and s.finished_unix is not None
        )  # fmt: skip
        if spans:
            out[kind] = round(_union_s(spans), 3)
    return out


def _union_s(spans: list[tuple[float, float]]) -> float:
    """Length of the union of sorted intervals."""
    total, (start, end) = 0.0, spans[0]
    for s, e in spans[1:]:
        if s > end:
            total, start = total + end - start, s
        end = max(end, e)
    return total + end - start


def _vm_summary(op: Operation, v: st.RecoveredVm) -> dict[str, Any]:
    reg = op.step(f"{st.REGISTER}:{v.vm}")
    return {
        "vm": v.vm,
        "name": v.name,
        "host": v.host,
        "vmx_path": v.vmx_path,
        "boot_group": v.boot_group,
        "ref": reg.result["ref"] if reg and reg.done and reg.result else "",
    }


def last_power_on(op: Operation) -> float:
    """When the last recovered VM was powered on (now, if none was)."""
    ends = [
        s.finished_unix
        for s in op.steps
        if s.kind == st.POWER_ON and s.done and s.finished_unix is not None
    ]
    return max(ends) if ends else time.time()


def next_command(op: Operation, plan_file: str, holder_alive: bool) -> str:
    """The next safe command for an active operation (what ``status`` prints as next)."""
    plan = f"--plan {plan_file}"
    test = op.operation == st.MODE_TEST
    if op.status == sl.RUNNING:
        if holder_alive:
            return "wait: a cdp failover command is running it"
        verb = "test" if test else "run" + (" --planned" if op.planned else "")
        return f"cdp failover {verb} {plan}"
    if op.status == sl.UNDOING:
        return f"cdp failover {'stop-test' if test else 'rollback'} {plan}"
    if op.status == sl.TESTING:
        return f"cdp failover stop-test {plan}"
    return f"cdp failover commit {plan} (then failback), or cdp failover rollback {plan}"
