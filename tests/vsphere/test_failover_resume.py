"""Crash half-way, run the same command again: it continues from the last recorded step
and never registers a VM twice.

Two kinds of crash: a real SIGKILL of the ``cdp failover run`` process (it is killed while
it waits between boot groups), and a crash injected by composition right after a vCenter
call succeeded but before the step log recorded it (the window where a naive tool would
register the VM again).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cdp.failover import vsphere
from cdp.failover.guards import DISCARD
from cdp.failover.plan import Credentials, Plan
from cdp.failover.vcenter import VCenter

from .drsite import VMS, DrSite, inventory

REPO = Path(__file__).resolve().parents[2]


class SimulatedCrash(Exception):
    """Stands for the process dying at this instant."""


class CrashAfter:
    """A VCenter that 'dies' right after the n-th successful call of one method."""

    def __init__(self, inner: VCenter, method: str, n: int = 1) -> None:
        self.inner, self.method, self.n, self.calls = inner, method, n, 0

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)
        if name != self.method:
            return fn

        def wrapped(*args: Any) -> Any:
            result = fn(*args)
            self.calls += 1
            if self.calls >= self.n:
                raise SimulatedCrash(f"crashed after {name} #{self.calls}")
            return result

        return wrapped


def connector(site: DrSite, plan: Plan, method: str, n: int = 1) -> Any:
    creds = Credentials(site.vcsim.user, site.vcsim.password)
    return lambda: CrashAfter(vsphere.connect(plan.vcenter, creds), method, n)


def names(site: DrSite) -> Counter[str]:
    return Counter(v[0] for v in inventory(site.si))


def step_log(site: DrSite) -> dict[str, Any]:
    return json.loads((site.state_dir / "dr-test" / "operation.json").read_text())


@pytest.mark.parametrize("method", ["register_vm", "reconfigure_vm", "power_on"])
async def test_crash_after_a_vcenter_call_then_resume(site: DrSite, method: str) -> None:
    plan = site.plan()
    crashing = site.orchestrator(plan, connect=connector(site, plan, method))
    with pytest.raises(SimulatedCrash):
        await crashing.failover("live", force_split_brain=True)
    crashing.close()
    first = step_log(site)
    assert first["status"] == "running"  # the log knows the operation is unfinished

    orch = site.orchestrator(plan)
    result = await orch.failover("live", force_split_brain=True)

    assert result["status"] == "awaiting-commit"
    assert names(site) == Counter(VMS)  # each VM registered exactly once
    assert {v[2] for v in inventory(site.si)} == {"poweredOn"}
    log = step_log(site)
    assert any("resumed" in e["what"] for e in log["events"])
    if method == "register_vm":  # the VM registered before the crash was adopted, not redone
        adopted = [s["result"]["adopted"] for s in log["steps"] if s["kind"] == "register"]
        assert adopted.count(True) >= 1
    await orch.rollback(DISCARD)
    orch.close()


async def test_crash_during_stop_test_then_resume(site: DrSite) -> None:
    before = inventory(site.si)
    plan = site.plan()
    orch = site.orchestrator(plan)
    await orch.failover("test")
    orch.close()
    crashing = site.orchestrator(plan, connect=connector(site, plan, "unregister"))
    with pytest.raises(SimulatedCrash):
        await crashing.stop_test()
    crashing.close()
    assert step_log(site)["status"] == "undoing"

    again = site.orchestrator(plan)
    with pytest.raises(Exception, match="stop-test of plan 'dr-test' is half done"):
        await again.failover("test")  # the test cannot be resumed while half stopped
    await again.stop_test()

    assert inventory(site.si) == before
    again.close()


async def _cdp(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cdp",
        "failover",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(REPO),
    )


async def test_kill_9_mid_run_then_same_command_resumes(site: DrSite) -> None:
    """SIGKILL `cdp failover run` while it waits between boot groups; run it again."""
    data = site.plan_dict()
    data["boot_order"][1]["delay_s"] = 1.5
    plan_path = str(site.write_plan(data))
    log_path = site.state_dir / "dr-test" / "operation.json"

    proc = await _cdp("run", "--plan", plan_path, "--no-wait", "--force-split-brain")
    deadline = time.monotonic() + 30
    while True:  # wait until db01 is powered on: the command now sleeps in the delay step
        assert proc.returncode is None, (await proc.communicate())[1].decode()
        if log_path.exists():
            done = {s["id"] for s in json.loads(log_path.read_text())["steps"] if s["done"]}
            if "power-on:db01" in done:
                break
        assert time.monotonic() < deadline, "the run never reached the boot-group delay"
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    await proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert {v[0]: v[2] for v in inventory(site.si)} == {"db01": "poweredOn", "app01": "poweredOff"}

    again = await _cdp("run", "--plan", plan_path, "--no-wait", "--force-split-brain")
    out, err = await asyncio.wait_for(again.communicate(), 60)

    assert again.returncode == 0, err.decode()
    text = out.decode()
    assert "resuming live failover: " in text
    assert "power on app01" in text and "register db01" not in text  # only what was left
    assert "RTO " in text
    assert names(site) == Counter(VMS)
    assert {v[2] for v in inventory(site.si)} == {"poweredOn"}

    rollback = await _cdp("rollback", "--plan", plan_path, "--discard-recovered-data", "--json")
    out, err = await asyncio.wait_for(rollback.communicate(), 60)
    assert rollback.returncode == 0, err.decode()
    assert json.loads(out.decode().splitlines()[-1])["status"] == "rolled-back"
    assert inventory(site.si) == []


async def test_crash_between_commit_and_archive_keeps_the_record(site: DrSite) -> None:
    """A log left with a final status is archived on next read, never overwritten."""
    orch = site.orchestrator()
    await orch.failover("live", force_split_brain=True)
    path = site.state_dir / "dr-test" / "operation.json"
    data = json.loads(path.read_text())
    data["status"] = "committed"  # recorded, then the command died before archiving
    path.write_text(json.dumps(data))

    status = orch.status()

    assert status["active"] is False and status["last"].endswith("-live-committed.json")
    assert not path.exists()
    assert {v[0] for v in inventory(site.si)} == set(VMS)  # committed VMs stay
    orch.close()
