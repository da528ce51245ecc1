"""Hardware fidelity: the recovered VMs get the protected VMs' hardware (issue 14).

The protected site is a second vcsim in which the test creates db01 and app01 through
pyVmomi with EFI + secure boot, PVSCSI and LSI Logic controllers (the disk on the second
one), SATA, vmxnet3/e1000e NICs with a manual MAC. ``check`` captures them; a test and a
live failover build the recovered VMs from the capture. Every assertion reads the
recovered VM back through pyVmomi (``config.*``), never cdp's own output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from cdp.failover import vsphere
from cdp.failover.faults import server_thumbprint
from cdp.failover.hardware import profile_path
from cdp.failover.plan import Credentials

from .drsite import DrSite, find_all, find_one, wait
from .harness import Inventory, Vcsim, start_vcsim

DB_MAC = "00:50:56:01:02:03"
DB_UUID = "4211a2b3-c4d5-e6f7-0819-2a3b4c5d6e7f"
DB_INSTANCE = "5011a2b3-c4d5-e6f7-0819-2a3b4c5d6e7f"
dev = vim.vm.device


@pytest.fixture
def protected(vcsim_binary: Path, tmp_path: Path) -> Iterator[Vcsim]:
    sim = start_vcsim(vcsim_binary, Inventory(portgroups=()), tmp_path / "prod-vcsim.log")
    try:
        yield sim
    finally:
        sim.close()


def _add(device: Any, create: bool = False) -> Any:
    spec = dev.VirtualDeviceSpec(operation="add", device=device)
    if create:
        spec.fileOperation = "create"
    return spec


def _nic(cls: Any, key: int, mac: str = "") -> Any:
    backing = dev.VirtualEthernetCard.NetworkBackingInfo(deviceName="VM Network")
    nic = cls(key=key, backing=backing)
    if mac:
        nic.macAddress, nic.addressType = mac, "manual"
    return nic


def _disk(key: int, controller: int, unit: int, path: str) -> Any:
    backing = dev.VirtualDisk.FlatVer2BackingInfo(fileName=path, diskMode="persistent")
    return dev.VirtualDisk(
        key=key, controllerKey=controller, unitNumber=unit, capacityInKB=4096, backing=backing
    )


def create_protected_vms(si: Any) -> None:
    """db01: EFI+secure boot, PVSCSI bus 0 (slot 160) + LSI Logic bus 1 (slot 224) with the
    disk on LSI 1:2, vmxnet3 (manual MAC) + e1000e; app01: BIOS, SATA disk, one e1000e."""
    dc = find_one(si, vim.Datacenter, "DC0")
    pool = find_one(si, vim.ClusterComputeResource, "DC0_C0").resourcePool
    slot = dev.VirtualDevice.PciBusSlotInfo
    db = vim.vm.ConfigSpec(
        name="db01", guestId="ubuntu64Guest", firmware="efi", numCPUs=2, numCoresPerSocket=2,
        memoryMB=768, uuid=DB_UUID, instanceUuid=DB_INSTANCE, version="vmx-15",
        bootOptions=vim.vm.BootOptions(efiSecureBootEnabled=True),
        files=vim.vm.FileInfo(vmPathName="[LocalDS_0] db01/db01.vmx"),
        deviceChange=[
            _add(dev.ParaVirtualSCSIController(key=-10, busNumber=0, sharedBus="noSharing",
                                               slotInfo=slot(pciSlotNumber=160))),
            _add(dev.VirtualLsiLogicController(key=-11, busNumber=1, sharedBus="noSharing",
                                               slotInfo=slot(pciSlotNumber=224))),
            _add(_disk(-12, -11, 2, "[LocalDS_0] db01/db01.vmdk"), create=True),
            _add(_nic(dev.VirtualVmxnet3, -13, DB_MAC)),
            _add(_nic(dev.VirtualE1000e, -14)),
        ],
    )  # fmt: skip
    app = vim.vm.ConfigSpec(
        name="app01", guestId="centos7_64Guest", numCPUs=2, memoryMB=512,
        files=vim.vm.FileInfo(vmPathName="[LocalDS_0] app01/app01.vmx"),
        deviceChange=[
            _add(dev.VirtualAHCIController(key=-10, busNumber=0)),
            _add(_disk(-12, -10, 0, "[LocalDS_0] app01/app01.vmdk"), create=True),
            _add(_nic(dev.VirtualE1000e, -13)),
        ],
    )  # fmt: skip
    for spec in (db, app):
        wait(dc.vmFolder.CreateVM_Task(config=spec, pool=pool))


def hardware_of(si: Any, name: str) -> dict[str, Any]:
    """What vCenter reports of a VM's hardware, read directly through pyVmomi."""
    vm = find_one(si, vim.VirtualMachine, name)
    cfg = vm.config
    devices = list(cfg.hardware.device)
    by_key = {d.key: d for d in devices}
    kinds = {
        dev.ParaVirtualSCSIController: "pvscsi", dev.VirtualLsiLogicController: "lsilogic",
        dev.VirtualAHCIController: "sata",
    }  # fmt: skip
    controllers = sorted(
        (kinds[type(d)], d.busNumber, d.slotInfo.pciSlotNumber if d.slotInfo else None)
        for d in devices
        if type(d) in kinds
    )
    disks = [
        (kinds[type(by_key[d.controllerKey])], by_key[d.controllerKey].busNumber, d.unitNumber)
        for d in devices
        if isinstance(d, dev.VirtualDisk)
    ]
    portgroups = {pg.key: pg.name for pg in find_all(si, vim.dvs.DistributedVirtualPortgroup)}

    def network(backing: Any) -> str:
        port = getattr(backing, "port", None)
        return portgroups[port.portgroupKey] if port is not None else str(backing.deviceName)

    nics = [
        (type(d).__name__.rsplit(".", 1)[-1], d.macAddress, network(d.backing))
        for d in devices
        if isinstance(d, dev.VirtualEthernetCard)
    ]
    return {
        "guest": cfg.guestId, "firmware": cfg.firmware,
        "secure_boot": bool(cfg.bootOptions.efiSecureBootEnabled),
        "cpus": cfg.hardware.numCPU, "cores": cfg.hardware.numCoresPerSocket,
        "memory": cfg.hardware.memoryMB, "uuid": cfg.uuid, "instance": cfg.instanceUuid,
        "controllers": controllers, "disks": disks, "nics": nics,
    }  # fmt: skip


def fidelity_plan(site: DrSite, prod: Vcsim, **recovery_over: Any) -> dict[str, Any]:
    """db01 takes everything from the capture; app01 overrides its memory in the plan."""
    data = site.plan_dict()
    data["protected_site"] = {
        "vcenter": {
            "url": f"https://{prod.host}:{prod.port}/sdk",
            "credentials": {"file": str(site.root / "vcenter.cred")},
            "tls": {"thumbprint": server_thumbprint(prod.host, prod.port, 5)},
        },
        "datacenter": "DC0",
    }
    data["groups"][0]["vms"] = [
        {"name": "db01"},
        {"name": "app01", "memory_mb": 256, "nics": [{"network": "VM Network"}]},
    ]
    data["recovery"].update(recovery_over)
    return data


def orchestrator(site: DrSite, prod: Vcsim, data: dict[str, Any]) -> Any:
    plan = site.plan(data)
    assert plan.protected_site is not None
    creds = Credentials(prod.user, prod.password)
    vc = plan.protected_site.vcenter
    return site.orchestrator(plan, connect_protected=lambda: vsphere.connect(vc, creds))


async def test_recovered_vms_have_the_protected_hardware(site: DrSite, protected: Vcsim) -> None:
    prod_si = protected.connect()
    create_protected_vms(prod_si)
    source = {vm: hardware_of(prod_si, vm) for vm in ("db01", "app01")}
    orch = orchestrator(site, protected, fidelity_plan(site, protected))

    rows = {r.name: r for r in (await orch.check()).rows}
    assert rows["hardware db01"].status == "pass", rows["hardware db01"]
    assert "captured" in rows["hardware db01"].detail
    stored = json.loads(Path(profile_path(str(site.state_dir), "dr-test", "db01")).read_text())
    assert stored["version"] == 1 and stored["profile"]["firmware"] == "efi"

    await orch.failover("test")
    got = hardware_of(site.si, "db01-test")
    want = source["db01"]
    for key in ("guest", "firmware", "secure_boot", "cpus", "cores", "memory", "uuid"):
        assert got[key] == want[key], key
    assert got["instance"] != DB_INSTANCE  # a test copy never claims the VM's identity
    assert (
        got["controllers"]
        == want["controllers"]
        == [
            ("lsilogic", 1, 224),
            ("pvscsi", 0, 160),
        ]
    )
    assert got["disks"] == want["disks"] == [("lsilogic", 1, 2)]
    # test failover: adapter types kept, MACs generated (default mac_addresses.test)
    assert [n[0] for n in got["nics"]] == ["VirtualVmxnet3", "VirtualE1000e"]
    assert DB_MAC not in [n[1] for n in got["nics"]]
    assert {n[2] for n in got["nics"]} == {"DR-Test-Isolated"}
    app = hardware_of(site.si, "app01-test")
    assert app["memory"] == 256  # the plan's explicit value overrides the capture
    assert app["cpus"] == 2 and app["guest"] == "centos7_64Guest"
    assert app["disks"] == [("sata", 0, 0)]
    assert [n[0] for n in app["nics"]] == ["VirtualE1000e"]  # no adapter in the plan
    vmx = (site.replicas / "db01-test" / "db01-test.vmx").read_text()
    assert 'firmware = "efi"' in vmx and 'scsi0.virtualDev = "pvscsi"' in vmx
    assert 'scsi1:2.fileName = "db01-test_0.vmdk"' in vmx
    await orch.stop_test()

    await orch.failover("live", force_split_brain=True)  # the simulated source still replicates
    live = hardware_of(site.si, "db01")
    assert live["instance"] == DB_INSTANCE and live["uuid"] == DB_UUID
    assert live["nics"][0] == ("VirtualVmxnet3", DB_MAC, "DR-Prod")  # live keeps the MAC
    orch.close()


async def test_check_reports_hardware_drift(site: DrSite, protected: Vcsim) -> None:
    prod_si = protected.connect()
    create_protected_vms(prod_si)
    orch = orchestrator(site, protected, fidelity_plan(site, protected))
    await orch.check()
    db = find_one(prod_si, vim.VirtualMachine, "db01")
    wait(db.ReconfigVM_Task(spec=vim.vm.ConfigSpec(memoryMB=2048)))

    rows = {r.name: r for r in (await orch.check()).rows}
    assert rows["hardware db01"].status == "warn"
    assert "memory_mb: 768 -> 2048" in rows["hardware db01"].detail
    assert rows["hardware app01"].status == "pass"
    assert "unchanged" in rows["hardware app01"].detail
    stored = json.loads(Path(profile_path(str(site.state_dir), "dr-test", "db01")).read_text())
    assert stored["profile"]["memory_mb"] == 2048
    orch.close()


def test_bad_mac_policy_is_named(site: DrSite, protected: Vcsim) -> None:
    from cdp.errors import ConfigError

    data = fidelity_plan(site, protected, mac_addresses={"live": "reuse"})
    with pytest.raises(ConfigError) as exc:
        site.plan(data)
    assert "recovery.mac_addresses.live" in str(exc.value)
