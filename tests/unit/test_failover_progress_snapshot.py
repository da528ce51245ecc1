"""The progress a failover reports, from its step log (:func:`cdp.failover.progress.snapshot`):
step states, 1-based phases, the kind, and a command stopped on a failed step."""

from __future__ import annotations

import time

from cdp.failover.progress import kind_of, snapshot
from cdp.failover.records import Operation, StepEntry, Undo
from cdp.failover.steps import Step


def entry(step_id: str, kind: str, phase: int) -> StepEntry:
    return StepEntry.planned(Step(step_id, kind, phase, "db01", "g1", {"disk": 0, "name": "x"}))


def operation(**over: object) -> Operation:
    fields: dict[str, object] = {
        "plan": "dr", "plan_file": "dr.yaml", "datacenter": "DC0", "operation": "live",
        "planned": False, "origin": "", "at": "latest", "status": "running",
        "started_unix": 1_700_000_000.5, "checks_s": 0.1, "bytes_to_prepare": 0,
        "rto_estimate_s": 1.0, "points": {"g2": None, "g1": None}, "vms": [],
        "steps": [entry("prep", "prepare", 10), entry("exp0", "export", 20),
                  entry("exp1", "export", 20), entry("on", "power-on", 40)],
    }  # fmt: skip
    fields.update(over)
    return Operation(**fields)  # type: ignore[arg-type]


def test_states_phases_and_groups() -> None:
    op = operation()
    op.steps[0].record_done({}, time.time() - 2, 2.0)
    p = snapshot(op, {"exp0": time.monotonic() - 1.0}, "alice")
    assert [(s.step_id, s.state, s.phase) for s in p.steps] == [
        ("prep", "ok", 1), ("exp0", "running", 2), ("exp1", "pending", 2), ("on", "pending", 3),
    ]  # fmt: skip
    assert (p.phase, p.phases, p.kind, p.status, p.finished) == (2, 3, "live", "running", False)
    assert p.group_ids == ("g1", "g2") and p.started_ns == 1_700_000_000_500_000_000
    assert p.steps[0].seconds == 2.0 and 0.9 < p.steps[1].seconds < 5
    p.check()


def test_a_failed_step_with_nothing_running_is_a_failed_finished_operation() -> None:
    op = operation()
    op.steps[1].error = "vCenter: disk full"
    running = snapshot(op, {"exp1": time.monotonic()}, "alice")
    assert (running.status, running.finished) == ("running", False)  # its sibling still runs
    stopped = snapshot(op, {}, "alice")
    assert (stopped.status, stopped.finished, stopped.phase) == ("failed", True, 2)
    assert stopped.steps[1].error == "vCenter: disk full" and stopped.steps[1].state == "failed"


def test_kinds() -> None:
    assert kind_of(operation(operation="test")) == "test"
    assert kind_of(operation(operation="test", origin="verify")) == "verify"
    assert kind_of(operation(planned=True)) == "planned"
    undo = Undo("rollback", 1_700_000_100.0, [entry("off", "power-off", 0)])
    p = snapshot(operation(undo=undo, status="undoing"), {}, "bob")
    assert (p.kind, p.phases, p.status) == ("rollback", 1, "undoing")
    assert [s.step_id for s in p.steps] == ["off"] and p.started_ns == 1_700_000_100 * 10**9
