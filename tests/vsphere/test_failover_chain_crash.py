"""A copy-free (chain) failover crashed after EACH step of its design, then resumed.

The crash is injected by composition, in process (the way test_failover_resume.py
crashes after a vCenter call): a step's action completes, and the "process dies" before
the step log records it — the window where a resumed run must redo or adopt the work.
Two wrappers cover every step:

- ``CrashingActions`` wraps the operation's step handlers (``Actions.run``): the crash
  comes right after ``prepare``, ``export`` (the chain built), ``register``,
  ``reconfigure``, ``delay`` or ``power-on`` returned;
- ``CrashingReplication`` wraps the target edge: the crash comes right after
  ``HoldBase`` succeeded, before the tail delta is built (inside the export step).

A real SIGKILL of ``cdp failover test`` is here too, while the command waits between
boot groups (one VM on); during the delta build it is in test_failover_chain.py.

Between the crash and the resume of a test the source writes more, so the held base
must keep the point (a live failover fences the source). After each resume, with the
same call: the recovered chain opens with qemu-img and equals ``export`` at the point
byte for byte, each VM is registered once and powered on, the target holds exactly one
base hold per VM at the point (no leaked or doubled holds), and after ``stop-test`` /
``rollback`` there are no holds and every earlier restore point exports the same bytes
as before the first run.

Test and live failovers crash at the first step of each kind (db01's) and at the last
(app01's), one site per mode (~15 s per mode).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cdp.failover import steps as st
from cdp.failover.actions import Actions
from cdp.failover.export import export_image
from cdp.failover.guards import DISCARD
from cdp.failover.orchestrator import Orchestrator
from cdp.failover.records import StepEntry
from cdp.failover.replication import PointFacts, Replication

from .drsite import GROUP, VMS, DrSite, inventory
from .test_failover_chain import _cdp, _chain_plan, _exports, _holds
from .test_failover_resume import SimulatedCrash, step_log

HOLD = "hold-base"
"""The crash point inside the export step: the base held, the tail not yet built."""
CRASH_POINTS = (st.PREPARE, HOLD, st.EXPORT, st.REGISTER, st.RECONFIGURE, st.DELAY, st.POWER_ON)


def _last(nth: int, op: Any, kind: str) -> int:
    """``nth`` (1-based), or for -1 the number of steps of ``kind`` in ``op``."""
    return nth if nth > 0 else sum(s.kind == kind for s in op.steps)


class CrashingActions:
    """Step handlers that 'die' right after the ``nth`` step of ``kind`` (-1: the last) did
    its work."""

    def __init__(self, inner: Actions, kind: str, nth: int) -> None:
        self.inner, self.kind, self.seen = inner, kind, 0
        self.nth = _last(nth, inner.op, kind)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def run(self, step: StepEntry) -> dict[str, Any]:
        result = await self.inner.run(step)
        if step.kind == self.kind:
            self.seen += 1
            if self.seen == self.nth:
                raise SimulatedCrash(f"crashed after {step.id}, before the log recorded it")
        return result


class CrashingReplication:
    """A target edge that 'dies' right after the ``nth`` successful HoldBase (the
    orchestrator resolves -1, the last, once it knows the steps)."""

    def __init__(self, inner: Replication, nth: int) -> None:
        self.inner, self.nth, self.seen = inner, nth, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def hold_base(self, group: str, holder: str, at: str) -> PointFacts:
        held = await self.inner.hold_base(group, holder, at)
        self.seen += 1
        if self.seen == self.nth:
            raise SimulatedCrash(f"crashed after HoldBase({holder}), before the tail")
        return held


class CrashingOrchestrator(Orchestrator):
    """The real orchestrator whose step handlers crash as told (composition only)."""

    crash: tuple[str, int] = ("", 0)

    def _actions(self, op: Any) -> Any:
        actions = super()._actions(op)
        kind, nth = self.crash
        if kind == HOLD and isinstance(self.replication, CrashingReplication):
            self.replication.nth = _last(nth, op, st.EXPORT)  # one HoldBase per export
        return CrashingActions(actions, kind, nth) if kind != HOLD else actions


def crashing(site: DrSite, kind: str, nth: int) -> Orchestrator:
    """``site.orchestrator`` (real vCenter and target) that crashes after that step."""
    orch = site.orchestrator(site.plan(_chain_plan(site)))
    orch.__class__ = CrashingOrchestrator
    assert isinstance(orch, CrashingOrchestrator)
    orch.crash = (kind, nth)
    if kind == HOLD:
        orch.replication = CrashingReplication(orch.replication, nth)  # type: ignore[assignment]
    return orch


async def _run(orch: Orchestrator, mode: str) -> dict[str, Any]:
    if mode == st.MODE_LIVE:
        return await orch.failover(mode, force_split_brain=True)
    return await orch.failover(mode)


def _qemu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=120)


async def _check_recovered(site: DrSite, mode: str, root: Path) -> None:
    """The chain equals the point's export; one hold per VM at the point; VMs on, once."""
    log = step_log(site)
    seqs = {s["result"]["seq"] for s in log["steps"] if s["kind"] == st.EXPORT}
    (seq,) = seqs  # every disk of the group at the same point
    holders = {f"failover/{mode}/{vm}" for vm in VMS}
    assert _holds(site) == dict.fromkeys(holders, seq), (_holds(site), seq)
    for vm in VMS:
        point = root / f"{vm}-point.vmdk"
        await export_image(site.target.client, GROUP, vm, 0, str(seq), str(point))
        folder = site.replicas / st.folder_name(vm, mode)
        top = folder / st.disk_file(vm, mode, 0)
        info = _qemu("info", "--backing-chain", str(top))
        assert info.returncode == 0 and info.stdout.count("vmfsSparse") == 2, info.stderr
        same = _qemu("compare", str(top), str(point))
        assert same.returncode == 0, same.stdout + same.stderr
        assert not list(folder.glob("*.tmp"))
    assert Counter(v[0] for v in inventory(site.si)) == Counter(
        st.registration_name(vm, mode) for vm in VMS
    )
    assert {v[2] for v in inventory(site.si)} == {"poweredOn"}


async def _crash_resume_undo(site: DrSite, mode: str, kind: str, nth: int, root: Path) -> list[str]:
    """One cycle; returns the step kinds the resumed operation recorded."""
    assert site.source is not None
    orch = crashing(site, kind, nth)
    with pytest.raises(SimulatedCrash):
        await _run(orch, mode)
    orch.close()
    assert step_log(site)["status"] == "running"
    if mode == st.MODE_TEST:  # replication goes on; the held base must keep the point
        await site.source.write(20)  # (a live failover fences the source: it cannot write)

    again = site.orchestrator(site.plan(_chain_plan(site)))
    result = await _run(again, mode)

    want = "testing" if mode == st.MODE_TEST else "awaiting-commit"
    assert result["status"] == want, result
    assert any("resumed" in e["what"] for e in step_log(site)["events"])
    root.mkdir()
    await _check_recovered(site, mode, root)
    kinds = [s["kind"] for s in step_log(site)["steps"]]
    if mode == st.MODE_TEST:
        assert (await again.stop_test())["status"] == "test-stopped"
    else:
        assert (await again.rollback(DISCARD))["status"] == "rolled-back"
    again.close()
    assert _holds(site) == {}  # no leaked hold
    assert inventory(site.si) == []
    return kinds


async def _matrix(site: DrSite, mode: str, nths: tuple[int, ...]) -> None:
    points = [p.seq for p in await site.target.client.list_points(GROUP)]
    earlier = sorted({points[0], points[len(points) // 2], points[-1]})
    before = await _exports(site, earlier, site.root)
    covered: set[str] = set()
    for nth in nths:
        for kind in CRASH_POINTS:
            root = site.root / f"{mode}-{kind}-{nth}"
            covered |= set(await _crash_resume_undo(site, mode, kind, nth, root))
            (root / "after").mkdir()
            assert await _exports(site, earlier, root / "after") == before, (kind, nth)
    # every step kind the chain design runs has a crash point
    assert covered <= set(CRASH_POINTS), covered - set(CRASH_POINTS)


@pytest.mark.parametrize("mode", [st.MODE_TEST, st.MODE_LIVE])
async def test_crash_after_each_chain_step_then_resume(site: DrSite, mode: str) -> None:
    await _matrix(site, mode, (1, -1))


async def test_kill_9_of_cdp_failover_test_between_boot_groups_then_same_command(
    site: DrSite,
) -> None:
    """A real SIGKILL of `cdp failover test` (chain) once db01 is on and the command waits
    for the next boot group; the same command then finishes with the same checks."""
    points = [p.seq for p in await site.target.client.list_points(GROUP)]
    earlier = sorted({points[0], points[-1]})
    before = await _exports(site, earlier, site.root)
    data = _chain_plan(site)
    data["boot_order"][1]["delay_s"] = 1.5  # type: ignore[index]
    plan_path = str(site.write_plan(data))
    log_path = site.state_dir / "dr-test" / "operation.json"
    proc = await _cdp("test", "--plan", plan_path)
    deadline = time.monotonic() + 30
    while not (log_path.exists() and _done(log_path, f"{st.POWER_ON}:db01")):
        assert proc.returncode is None, (await proc.communicate())[1].decode()
        assert time.monotonic() < deadline, "the test never reached the boot-group delay"
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    await proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert set(_holds(site)) == {f"failover/test/{vm}" for vm in VMS}  # the run died holding

    again = await _cdp("test", "--plan", plan_path)
    out, err = await asyncio.wait_for(again.communicate(), 60)

    assert again.returncode == 0, err.decode() + out.decode()
    assert "power on app01-test" in out.decode() and "register db01" not in out.decode()
    (site.root / "resumed").mkdir()
    await _check_recovered(site, st.MODE_TEST, site.root / "resumed")
    stop = await _cdp("stop-test", "--plan", plan_path)
    _, err = await asyncio.wait_for(stop.communicate(), 60)
    assert stop.returncode == 0, err.decode()
    assert _holds(site) == {}
    (site.root / "after").mkdir()
    assert await _exports(site, earlier, site.root / "after") == before


def _done(log_path: Path, step_id: str) -> bool:
    steps = json.loads(log_path.read_text())["steps"]
    return any(s["id"] == step_id and s["done"] for s in steps)
