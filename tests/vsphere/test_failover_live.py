"""Live failover against vcsim and a real target: register, reconfigure (disks, NICs on
the mapped production networks), power on by boot group; then commit, rollback, and the
commit policy's default action at its timeout."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from pyVmomi import vim

from cdp.failover.guards import DISCARD

from .drsite import DS_NAME, GROUP, VMS, DrSite, find_one, inventory, tree


async def test_run_registers_reconfigures_and_boots_in_order(site: DrSite) -> None:
    orch = site.orchestrator()

    result = await orch.failover("live", force_split_brain=True)

    assert result["status"] == "awaiting-commit"
    placed = {v["vm"]: v["host"] for v in result["vms"]}
    for vm, cpus, memory in (("db01", 2, 512), ("app01", 1, 256)):
        v = find_one(site.si, vim.VirtualMachine, vm)  # production name at the recovery site
        assert v.config.files.vmPathName == f"[{DS_NAME}] {vm}-dr/{vm}.vmx"
        assert v.runtime.powerState == "poweredOn"
        assert v.runtime.host.name == placed[vm]
        assert (v.config.hardware.numCPU, v.config.hardware.memoryMB) == (cpus, memory)
        devices = v.config.hardware.device
        (disk,) = [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
        assert disk.backing.fileName == f"[{DS_NAME}] {vm}-dr/{vm}_0.vmdk"
        assert disk.capacityInKB == 4 * 1024
        (nic,) = [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        assert isinstance(nic, vim.vm.device.VirtualVmxnet3)
        assert [n.name for n in v.network] == ["DR-Prod"]  # "VM Network" mapped to DR-Prod
    # Boot order: db01's group first, app01's 0.2 s after db01 was running.
    boot = {vm: find_one(site.si, vim.VirtualMachine, vm).summary.runtime.bootTime for vm in VMS}
    assert boot["app01"] - boot["db01"] >= dt.timedelta(seconds=0.2)
    log = json.loads((site.state_dir / "dr-test" / "operation.json").read_text())
    ends = {s["id"]: s for s in log["steps"]}
    assert ends["power-on:db01"]["finished_unix"] + 0.2 <= ends["power-on:app01"]["started_unix"]

    committed = await orch.commit()

    assert committed["status"] == "committed"
    assert {v[0] for v in inventory(site.si)} == set(VMS)  # they stay: they are production now
    assert "committed" in committed["archived"]
    orch.close()


async def test_rollback_removes_the_recovered_vms_and_protection_goes_on(site: DrSite) -> None:
    before = inventory(site.si)
    base_before = {vm: tree(site.replicas / vm) for vm in VMS}
    orch = site.orchestrator()
    await orch.failover("live", force_split_brain=True)
    assert len(inventory(site.si)) == len(before) + 2

    rolled = await orch.rollback(DISCARD)

    assert rolled["status"] == "rolled-back"
    assert inventory(site.si) == before
    assert not [p for p in site.replicas.iterdir() if p.name.endswith("-dr")]
    assert {vm: tree(site.replicas / vm) for vm in VMS} == base_before
    # Protection goes on: the source still replicates into the same group...
    assert site.source is not None
    durable = (await site.target.client.status(GROUP)).groups[0].durable_seq
    await site.source.write(10)
    assert (await site.target.client.status(GROUP)).groups[0].durable_seq == durable + 10
    # ...and the plan can fail over again, to the newer point.
    again = await orch.failover("live", force_split_brain=True)
    assert again["points"][GROUP]["seq"] == durable + 10
    await orch.rollback(DISCARD)
    orch.close()


async def test_commit_from_another_command_ends_the_wait(site: DrSite) -> None:
    orch = site.orchestrator()
    await orch.failover("live", force_split_brain=True)
    waiting = asyncio.ensure_future(orch.await_decision(poll_s=0.02))
    await asyncio.sleep(0.1)
    assert not waiting.done()

    other = site.orchestrator()  # as `cdp failover commit` in another terminal
    await other.commit()

    decided = await asyncio.wait_for(waiting, 5)
    assert decided["status"] == "committed" and decided["decided_by"] == "another command"
    orch.close()
    other.close()


async def test_commit_timeout_applies_the_default_action(site: DrSite) -> None:
    before = inventory(site.si)
    plan = site.plan(site.plan_dict(commit={"timeout_s": 0.3, "default_action": "rollback"}))
    orch = site.orchestrator(plan)
    await orch.failover("live", force_split_brain=True)

    decided = await asyncio.wait_for(orch.await_decision(poll_s=0.02), 10)

    assert decided["status"] == "rolled-back"
    assert inventory(site.si) == before
    orch.close()
