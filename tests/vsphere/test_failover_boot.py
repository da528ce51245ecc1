"""Boot readiness between boot groups (issue 14): VMware Tools waits, post-power-on commands.

vcsim 0.24 creates every VM with ``guest.toolsRunningStatus = guestToolsNotRunning`` and
never changes it on power-on (no guest runs); its ``SET.<property>`` extraConfig hook
(simulator/virtual_machine.go ``applyExtraConfig``) lets a test play the guest whose
Tools start: ReconfigVM with ``SET.guest.toolsRunningStatus = guestToolsRunning``.
Everything checked is read from vCenter (pyVmomi) or the step log's typed entries.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from cdp.errors import CdpError

from .drsite import DrSite, find_all, wait


def play_guests(si: Any, names: set[str], stop: threading.Event, delay_s: float) -> None:
    """Start 'VMware Tools' in each named VM ``delay_s`` after vCenter reports it on."""
    seen: dict[str, float] = {}
    while not stop.is_set() and names:
        for vm in find_all(si, vim.VirtualMachine):
            if vm.name in names and vm.runtime.powerState == "poweredOn":
                seen.setdefault(vm.name, time.monotonic())
                if time.monotonic() - seen[vm.name] >= delay_s:
                    option = vim.option.OptionValue(
                        key="SET.guest.toolsRunningStatus", value="guestToolsRunning"
                    )
                    wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[option])))
                    names.discard(vm.name)
        time.sleep(0.02)


def boot_plan(site: DrSite, tmp_path: Path, tools_timeout_s: float) -> dict[str, Any]:
    data = site.plan_dict()
    out = tmp_path / "post.txt"
    hook = {"command": ["/bin/sh", "-c", f'echo "$CDP_NAME $CDP_REF" >> {out}']}
    data["groups"][0]["vms"][0]["post_power_on"] = hook
    data["boot_order"] = [
        {"name": "db", "vms": ["db01"], "tools_timeout_s": tools_timeout_s},
        {"name": "app", "vms": ["app01"]},
    ]
    return data


async def test_next_group_waits_for_tools_and_post_power_on(site: DrSite, tmp_path: Path) -> None:
    orch = site.orchestrator(site.plan(boot_plan(site, tmp_path, 10)))
    stop = threading.Event()
    guest = threading.Thread(
        target=play_guests, args=(site.si, {"db01-test"}, stop, 0.5), daemon=True
    )
    guest.start()
    try:
        await orch.failover("test")
    finally:
        stop.set()
        await asyncio.to_thread(guest.join, 10)
    steps = {s.id: s for s in orch.log.op.steps}
    tools, post, app_on = (
        steps["wait-tools:db01"],
        steps["post-power-on:db01"],
        steps["power-on:app01"],
    )
    assert tools.done and tools.result is not None
    assert tools.result["tools"] == "guestToolsRunning"
    assert tools.result["waited_s"] >= 0.4  # the guest took 0.5 s to start its Tools
    assert post.done and post.result is not None and post.result["exit_code"] == 0
    assert tools.finished_unix is not None and post.started_unix is not None
    assert app_on.started_unix is not None and post.finished_unix is not None
    assert tools.finished_unix <= post.started_unix <= post.finished_unix <= app_on.started_unix
    ref = tools.result["ref"]
    assert (tmp_path / "post.txt").read_text() == f"db01-test {ref}\n"
    orch.close()


async def test_tools_timeout_fails_the_step_and_stops_before_next_group(
    site: DrSite, tmp_path: Path
) -> None:
    orch = site.orchestrator(site.plan(boot_plan(site, tmp_path, 0.5)))
    with pytest.raises(CdpError, match="VMware Tools not running"):
        await orch.failover("test")
    steps = {s.id: s for s in orch.log.op.steps}
    assert not steps["wait-tools:db01"].done
    assert "guestToolsNotRunning" in (steps["wait-tools:db01"].error or "")
    assert not steps["power-on:app01"].done
    on = {v.name: str(v.runtime.powerState) for v in find_all(site.si, vim.VirtualMachine)}
    assert on["db01-test"] == "poweredOn" and on["app01-test"] == "poweredOff"
    assert not (tmp_path / "post.txt").exists()
    orch.close()
