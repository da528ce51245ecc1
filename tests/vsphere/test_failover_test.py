"""Test failover against vcsim and a real target: point-in-time copies boot on the
isolated network, the base replica and journal stay untouched, replication goes on, and
stop-test leaves the inventory and the datastore as they were."""

from __future__ import annotations

import json

import pytest
from pyVmomi import vim

from cdp.failover.errors import OperationStateError
from cdp.failover.export import export_image

from .drsite import DS_NAME, GROUP, VMS, DrSite, find_one, inventory, tree


def _vm_devices(vm: vim.VirtualMachine) -> tuple[list[vim.vm.device.VirtualDisk], list[object]]:
    devices = vm.config.hardware.device
    disks = [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
    nics = [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    return disks, nics


async def test_test_failover_then_stop_test_leaves_everything_as_it_was(site: DrSite) -> None:
    before = inventory(site.si)
    base_before = {vm: tree(site.replicas / vm) for vm in VMS}
    journal_before = tree(site.journal)
    orch = site.orchestrator()

    result = await orch.failover("test")

    assert result["status"] == "testing" and result["steps_done"] == result["steps"]
    assert result["rto_s"] > 0
    for vm, cpus, memory in (("db01", 2, 512), ("app01", 1, 256)):
        v = find_one(site.si, vim.VirtualMachine, f"{vm}-test")
        assert v.config.files.vmPathName == f"[{DS_NAME}] {vm}-test/{vm}-test.vmx"
        assert v.runtime.powerState == "poweredOn"
        assert (v.config.hardware.numCPU, v.config.hardware.memoryMB) == (cpus, memory)
        assert [n.name for n in v.network] == ["DR-Test-Isolated"]  # isolated, never production
        disks, nics = _vm_devices(v)
        assert [d.backing.fileName for d in disks] == [f"[{DS_NAME}] {vm}-test/{vm}-test_0.vmdk"]
        assert len(nics) == 1
        # The scratch disk holds the image at the restore point: here, everything written.
        scratch = site.replicas / f"{vm}-test" / f"{vm}-test_0-flat.vmdk"
        assert site.source is not None
        assert scratch.read_bytes() == site.source.disk_path(vm).read_bytes()
    # The base replica and the journal were only read.
    assert {vm: tree(site.replicas / vm) for vm in VMS} == base_before
    assert tree(site.journal) == journal_before

    # Replication keeps running while the test VMs run.
    durable = (await site.target.client.status(GROUP)).groups[0].durable_seq
    assert site.source is not None
    await site.source.write(20)
    assert (await site.target.client.status(GROUP)).groups[0].durable_seq == durable + 20

    stopped = await orch.stop_test()

    assert stopped["status"] == "test-stopped"
    assert inventory(site.si) == before
    assert not [p for p in site.replicas.iterdir() if p.name.endswith("-test")]
    assert {vm: tree(site.replicas / vm) for vm in VMS} == base_before
    assert not (site.state_dir / "dr-test" / "operation.json").exists()
    (archived,) = (site.state_dir / "dr-test" / "history").iterdir()
    log = json.loads(archived.read_text())
    assert log["status"] == "test-stopped" and all(s["done"] for s in log["undo"]["steps"])
    orch.close()


async def test_test_failover_at_a_bookmark_shows_that_point(site: DrSite) -> None:
    """--at a bookmark: the test VM's disk is the image at the bookmark, not the latest."""
    await site.target.client.create_bookmark(GROUP, "before-upgrade")
    assert site.source is not None
    await site.source.write(50)
    expected = site.root / "expected.vmdk"
    await export_image(site.target.client, GROUP, "app01", 0, "before-upgrade", str(expected))
    orch = site.orchestrator()

    result = await orch.failover("test", at="before-upgrade")

    assert result["points"][GROUP]["label"] == "before-upgrade"
    scratch = site.replicas / "app01-test" / "app01-test_0-flat.vmdk"
    assert scratch.read_bytes() == (site.root / "expected-flat.vmdk").read_bytes()
    assert scratch.read_bytes() != site.source.disk_path("app01").read_bytes()
    await orch.stop_test()
    orch.close()


async def test_dry_run_changes_nothing(site: DrSite) -> None:
    before = inventory(site.si)
    files_before = tree(site.replicas)
    orch = site.orchestrator()

    survey = await orch.dry_run("test")

    op = survey.operation
    assert op is not None and not [r for r in survey.rows if r.status == "fail"]
    assert op.points[GROUP] is not None and op.points[GROUP].seq == 200
    assert [s.kind for s in op.steps][:2] == ["prepare", "prepare"]
    assert {v.host for v in op.vms} <= {"DC0_C0_H0", "DC0_C0_H1"}
    assert op.bytes_to_prepare > 0 and op.rto_estimate_s > 0
    assert inventory(site.si) == before
    assert tree(site.replicas) == files_before
    assert not site.state_dir.exists()  # not even a step log or a lock file
    orch.close()


async def test_stop_test_without_a_test_and_run_during_a_test(site: DrSite) -> None:
    orch = site.orchestrator()
    with pytest.raises(OperationStateError, match="no test failover .* is active"):
        await orch.stop_test()
    await orch.failover("test")
    with pytest.raises(OperationStateError, match="test failover of plan 'dr-test' is active"):
        await orch.failover("live")
    with pytest.raises(OperationStateError, match="no live failover"):
        await orch.commit()
    # Running the same test again is a no-op: it is already up.
    again = await orch.failover("test")
    assert again["status"] == "testing"
    assert len([v for v in inventory(site.si) if v[0] == "app01-test"]) == 1
    await orch.stop_test()
    orch.close()
