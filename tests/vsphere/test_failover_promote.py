"""``cdp failover promote`` after a committed copy-free live failover (vcsim, real target).

The recovered VMs run on chains over the held base. Promote is refused before commit and
while a VM runs, changing nothing; once the VMs are off it rewrites every chain as a flat
disk holding exactly what the chain read (the guest's writes included, checked against
``qemu-img convert``) and lifts the holds, so the target applies past the point again.
The VM then powers on again from the same disk path (read back through pyVmomi).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyVmomi import vim

from cdp.errors import PreconditionError
from cdp.failover.errors import OperationStateError
from cdp.failover.promote import promote

from .drsite import VMS, DrSite, find_one, tree, wait
from .test_failover_chain import _chain_plan, _holds

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_promote_consolidates_the_chains_and_lifts_the_holds(site: DrSite) -> None:
    plan = site.plan(_chain_plan(site))
    orch = site.orchestrator(plan)
    await orch.failover("live", force_split_brain=True)
    with pytest.raises(OperationStateError, match="promote follows `cdp failover commit`"):
        await promote(orch.log, orch.vcenter, orch.replication)
    await orch.commit()
    assert set(_holds(site)) == {f"failover/live/{vm}" for vm in VMS}
    folders = {vm: site.replicas / f"{vm}-dr" for vm in VMS}
    before = {vm: tree(f) for vm, f in folders.items()}
    with pytest.raises(PreconditionError, match="runs on its copy-free disks"):
        await promote(orch.log, orch.vcenter, orch.replication)  # the VMs still run
    assert {vm: tree(f) for vm, f in folders.items()} == before and _holds(site)

    want = {}
    for vm in VMS:  # the guest wrote, then the VM is powered off for the promotion
        top = folders[vm] / f"{vm}_0.vmdk"
        _run("qemu-io", "-c", f"write -P 0x{len(vm):02x} 65536 12k", str(top))
        _run("qemu-img", "convert", "-O", "raw", str(top), str(site.root / f"{vm}.raw"))
        want[vm] = (site.root / f"{vm}.raw").read_bytes()
        wait(find_one(site.si, vim.VirtualMachine, vm).PowerOffVM_Task())
    orch.close()

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", "failover", "promote", "--plan", str(site.plans[-1]),
        "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)

    assert proc.returncode == 0, err.decode()
    rows = {r["vm"]: r for r in json.loads(out)["vms"]}
    assert {vm: (r["promoted"], r["released"]) for vm, r in rows.items()} == {
        vm: (1, True) for vm in VMS
    }
    assert _holds(site) == {}  # the applier may move the base on again
    for vm in VMS:
        top = folders[vm] / f"{vm}_0.vmdk"
        assert 'createType="vmfs"' in top.read_text()
        assert (folders[vm] / f"{vm}_0-flat.vmdk").read_bytes() == want[vm]
        assert not list(folders[vm].glob("*tail*")) and not list(folders[vm].glob("*.promoted"))
        assert "backing file" not in _run("qemu-img", "info", str(top))
        dev = find_one(site.si, vim.VirtualMachine, vm)
        disks = [d for d in dev.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        assert [d.backing.fileName for d in disks] == [f"[cdp-replica] {vm}-dr/{vm}_0.vmdk"]
        wait(dev.PowerOnVM_Task())
        assert str(dev.runtime.powerState) == "poweredOn"
