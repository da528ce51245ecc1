"""Facts about the vSphere API that failover orchestration relies on, proven against vcsim.

No mocks: every test talks SOAP to a real govmomi simulator process (deploy/vcsim).
The flow mirrors a failover: mount the replica folder as a datastore, write a VM
folder into it, register the .vmx, attach the replicated disk and a NIC on the
DR port group, power on/off, unregister (files must survive).
Where vcsim 0.24 differs from a real vCenter the test says so and
deploy/vcsim/README.md records it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from .harness import Inventory, Vcsim, start_vcsim

pytestmark = pytest.mark.vsphere

DS_NAME = "cdp-replica"  # datastore mapped onto the test's tmp_path
VM_NAME = "app01"
DISK_MIB = 64  # size of the sparse flat extent
TASK_TIMEOUT_S = 30.0


# ---------------------------------------------------------------- helpers


def find_all(si: vim.ServiceInstance, vimtype: type) -> list[Any]:
    """All managed objects of one type in the whole inventory (via a container view)."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vimtype], True)
    try:
        return list(view.view)
    finally:
        view.DestroyView()


def find_one(si: vim.ServiceInstance, vimtype: type, name: str) -> Any:
    matches = [obj for obj in find_all(si, vimtype) if obj.name == name]
    assert len(matches) == 1, f"{vimtype.__name__} {name!r}: {len(matches)} matches"
    return matches[0]


def wait(task: vim.Task) -> Any:
    """Poll a task to completion (vcsim tasks finish in milliseconds); raise its fault."""
    deadline = time.monotonic() + TASK_TIMEOUT_S
    while task.info.state in (vim.TaskInfo.State.queued, vim.TaskInfo.State.running):
        assert time.monotonic() < deadline, f"task {task.info.descriptionId} timed out"
        time.sleep(0.01)
    if task.info.state == vim.TaskInfo.State.error:
        raise task.info.error
    return task.info.result


def dv_portgroups(si: vim.ServiceInstance) -> list[vim.dvs.DistributedVirtualPortgroup]:
    """DV port groups a VM NIC can use: all but each DVS's "<dvs>-DVUplinks-<n>" group.

    vcsim leaves config.uplink unset on the uplink group, so it is recognised by name.
    """
    return [
        pg
        for pg in find_all(si, vim.dvs.DistributedVirtualPortgroup)
        if "-DVUplinks-" not in pg.name
    ]


def cluster_hosts(si: vim.ServiceInstance) -> list[vim.HostSystem]:
    return list(find_one(si, vim.ClusterComputeResource, "DC0_C0").host)


def mount_replica(si: vim.ServiceInstance, path: Path) -> vim.Datastore:
    """CreateLocalDatastore(DS_NAME, path) on every host of the cluster."""
    for host in cluster_hosts(si):
        host.configManager.datastoreSystem.CreateLocalDatastore(name=DS_NAME, path=str(path))
    return find_one(si, vim.Datastore, DS_NAME)


def write_vm_folder(root: Path, name: str = VM_NAME) -> Path:
    """Lay out a VM folder as replication would: vmx, nvram, log, flat disk descriptor + extent."""
    vm_dir = root / name
    vm_dir.mkdir()
    (vm_dir / f"{name}.vmx").write_text(
        "\n".join(
            [
                '.encoding = "UTF-8"',
                'config.version = "8"',
                'virtualHW.version = "19"',
                f'displayName = "{name}"',
                'guestOS = "otherlinux-64"',
                'memSize = "2048"',
                'numvcpus = "2"',
                'uuid.action = "keep"',
                'uuid.bios = "42 0c 8f 6d 1a 2b 3c 4d-5e 6f 70 81 92 a3 b4 c5"',
                f'nvram = "{name}.nvram"',
            ]
        )
        + "\n"
    )
    (vm_dir / f"{name}.nvram").write_bytes(b"\x00" * 8192)
    (vm_dir / "vmware.log").write_text("replicated by cdp\n")
    sectors = DISK_MIB * 1024 * 1024 // 512
    (vm_dir / f"{name}_0.vmdk").write_text(
        "# Disk DescriptorFile\n"
        "version=1\n"
        "CID=fffffffe\n"
        "parentCID=ffffffff\n"
        'createType="vmfs"\n'
        "\n"
        "# Extent description\n"
        f'RW {sectors} VMFS "{name}_0-flat.vmdk"\n'
        "\n"
        "# The Disk Data Base\n"
        'ddb.adapterType = "lsilogic"\n'
        'ddb.virtualHWVersion = "19"\n'
    )
    with (vm_dir / f"{name}_0-flat.vmdk").open("wb") as extent:
        extent.truncate(DISK_MIB * 1024 * 1024)  # sparse: no blocks allocated
    return vm_dir


def register(
    si: vim.ServiceInstance, host: vim.HostSystem, name: str = VM_NAME
) -> vim.VirtualMachine:
    dc = find_one(si, vim.Datacenter, "DC0")
    pool = find_one(si, vim.ClusterComputeResource, "DC0_C0").resourcePool
    task = dc.vmFolder.RegisterVM_Task(
        path=f"[{DS_NAME}] {name}/{name}.vmx", name=name, asTemplate=False, pool=pool, host=host
    )
    return wait(task)


def attach_disk_and_nic(
    si: vim.ServiceInstance, vm: vim.VirtualMachine, portgroup: vim.dvs.DistributedVirtualPortgroup
) -> None:
    """One ReconfigVM: a new PVSCSI controller, the existing VMDK on it, a vmxnet3 NIC."""
    controller = vim.vm.device.ParaVirtualSCSIController(
        key=-100,  # temporary key; the disk below refers to it, the server assigns the real one
        busNumber=0,
        sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing,
    )
    disk = vim.vm.device.VirtualDisk(
        key=-101,
        controllerKey=-100,
        unitNumber=0,
        capacityInKB=DISK_MIB * 1024,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=f"[{DS_NAME}] {VM_NAME}/{VM_NAME}_0.vmdk",
            diskMode="persistent",
        ),
    )
    nic = vim.vm.device.VirtualVmxnet3(
        key=-102,
        backing=vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(
            port=vim.dvs.PortConnection(
                switchUuid=portgroup.config.distributedVirtualSwitch.uuid,
                portgroupKey=portgroup.key,
            )
        ),
        connectable=vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True),
    )
    add = vim.vm.device.VirtualDeviceSpec.Operation.add
    spec = vim.vm.ConfigSpec(
        deviceChange=[
            vim.vm.device.VirtualDeviceSpec(operation=add, device=controller),
            # no fileOperation: attach the existing file, do not create one
            vim.vm.device.VirtualDeviceSpec(operation=add, device=disk),
            vim.vm.device.VirtualDeviceSpec(operation=add, device=nic),
        ]
    )
    wait(vm.ReconfigVM_Task(spec=spec))


# ---------------------------------------------------------------- a. inventory


def test_inventory_matches_flags(vcsim: Vcsim) -> None:
    inv = vcsim.inventory
    si = vcsim.connect()

    assert [dc.name for dc in find_all(si, vim.Datacenter)] == ["DC0"]
    assert [c.name for c in find_all(si, vim.ClusterComputeResource)] == ["DC0_C0"]

    hosts = {h.name: h for h in find_all(si, vim.HostSystem)}
    expected_hosts = {f"DC0_C0_H{i}" for i in range(inv.hosts_per_cluster)}
    expected_hosts |= {f"DC0_H{i}" for i in range(inv.standalone_hosts)}
    assert set(hosts) == expected_hosts
    assert {h.name for h in cluster_hosts(si)} == {n for n in expected_hosts if "_C0_" in n}
    for host in hosts.values():
        assert host.runtime.connectionState == vim.HostSystem.ConnectionState.connected
        assert host.runtime.inMaintenanceMode is False

    datastores = find_all(si, vim.Datastore)
    assert sorted(ds.name for ds in datastores) == [f"LocalDS_{i}" for i in range(inv.datastores)]
    for ds in datastores:
        assert ds.summary.accessible
        # Model datastores are mounted on every host: each host lists them, but vcsim's
        # ds.host keeps only the last mount (see the CreateLocalDatastore test).
        for host in hosts.values():
            assert ds in host.datastore
        assert len(ds.host) == 1

    # The standard "VM Network" exists per DC; the named DR port groups live on DVS0.
    networks = {n.name: n for n in find_all(si, vim.Network)}
    assert "VM Network" in networks
    portgroups = {pg.name: pg for pg in dv_portgroups(si)}
    (uplink,) = [
        pg
        for pg in find_all(si, vim.dvs.DistributedVirtualPortgroup)
        if pg.name.startswith("DVS0-DVUplinks-")
    ]
    assert not uplink.config.uplink  # vcsim leaves the uplink flag unset
    assert set(portgroups) == set(inv.portgroups)
    for pg in portgroups.values():
        assert pg.config.distributedVirtualSwitch.name == "DVS0"
        assert {h.name for h in pg.host} == expected_hosts  # every host can back a NIC with it
    assert not find_all(si, vim.VirtualMachine)  # -vm 0


def test_inventory_flags_scale(vcsim_binary: Path, tmp_path: Path) -> None:
    """Counts follow the flags, including numbered DVPGs alongside named ones."""
    inv = Inventory(
        datacenters=2,
        clusters=2,
        hosts_per_cluster=3,
        standalone_hosts=0,
        datastores=2,
        numbered_portgroups=2,
        vms=1,
        portgroups=("DR-Prod",),
    )
    sim = start_vcsim(vcsim_binary, inv, tmp_path / "vcsim.log")
    try:
        si = sim.connect()
        assert sorted(dc.name for dc in find_all(si, vim.Datacenter)) == ["DC0", "DC1"]
        assert len(find_all(si, vim.ClusterComputeResource)) == 4
        assert len(find_all(si, vim.HostSystem)) == 12
        # Datastore names repeat per datacenter (LocalDS_0 in DC0 and in DC1).
        assert sorted(ds.name for ds in find_all(si, vim.Datastore)) == [
            "LocalDS_0",
            "LocalDS_0",
            "LocalDS_1",
            "LocalDS_1",
        ]
        pg_names = sorted(pg.name for pg in dv_portgroups(si))
        assert pg_names == sorted(
            ["DR-Prod", "DR-Prod", "DC0_DVPG0", "DC0_DVPG1", "DC1_DVPG0", "DC1_DVPG1"]
        )
        vms = find_all(si, vim.VirtualMachine)  # 1 per cluster root pool
        assert len(vms) == 4
        assert {vm.runtime.powerState for vm in vms} == {"poweredOn"}  # model VMs autostart
    finally:
        sim.close()


# ---------------------------------------------------------------- b. datastore


def test_create_local_datastore_maps_existing_folder(vcsim_fresh: Vcsim, tmp_path: Path) -> None:
    si = vcsim_fresh.connect()
    (tmp_path / "marker.txt").write_text("already here")

    ds = mount_replica(si, tmp_path)

    assert ds.summary.url == str(tmp_path)
    assert ds.info.url == str(tmp_path)
    assert ds.summary.accessible
    # Same name + path on each cluster host yields ONE datastore object (moref = path@folder),
    # but vcsim keeps only the most recent host's mount in ds.host (real vCenter lists all).
    assert len([d for d in find_all(si, vim.Datastore) if d.name == DS_NAME]) == 1
    hosts = cluster_hosts(si)
    for host in hosts:
        assert DS_NAME in [d.name for d in host.datastore]
    assert [m.key.name for m in ds.host] == [hosts[-1].name]
    # The datastore is not reformatted: pre-existing files are kept.
    assert (tmp_path / "marker.txt").read_text() == "already here"

    # A second mount with the same name on a host fails; a missing path is NotFound.
    with pytest.raises(vim.fault.DuplicateName):
        hosts[0].configManager.datastoreSystem.CreateLocalDatastore(
            name=DS_NAME, path=str(tmp_path)
        )
    with pytest.raises(vim.fault.NotFound):
        hosts[0].configManager.datastoreSystem.CreateLocalDatastore(
            name="missing", path=str(tmp_path / "does-not-exist")
        )


# ---------------------------------------------------------------- c. register


def test_register_vm_from_replicated_folder(vcsim_fresh: Vcsim, tmp_path: Path) -> None:
    si = vcsim_fresh.connect()
    mount_replica(si, tmp_path)
    write_vm_folder(tmp_path)
    host = cluster_hosts(si)[0]

    vm = register(si, host)

    assert find_one(si, vim.VirtualMachine, VM_NAME) == vm
    assert vm.config.files.vmPathName == f"[{DS_NAME}] {VM_NAME}/{VM_NAME}.vmx"
    assert vm.runtime.host == host
    assert vm.runtime.powerState == vim.VirtualMachine.PowerState.poweredOff
    assert vm.resourcePool == find_one(si, vim.ClusterComputeResource, "DC0_C0").resourcePool
    assert [d.name for d in vm.datastore] == [DS_NAME]

    # vcsim does NOT parse the .vmx: the registered VM gets simulator defaults
    # (1 vCPU, 32 MiB, a path-derived BIOS uuid, no disks/NICs), not memSize/numvcpus/uuid.bios.
    assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (1, 32)
    assert vm.config.uuid != "420c8f6d-1a2b-3c4d-5e6f-708192a3b4c5"
    devices = vm.config.hardware.device
    assert not [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
    assert not [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]


@pytest.mark.parametrize("missing", [f"{VM_NAME}.vmx", f"{VM_NAME}.nvram", "vmware.log"])
def test_register_requires_vmx_nvram_and_log(
    vcsim_fresh: Vcsim, tmp_path: Path, missing: str
) -> None:
    """RegisterVM opens <path>.vmx, <name>.nvram and vmware.log; any missing -> NotFound."""
    si = vcsim_fresh.connect()
    mount_replica(si, tmp_path)
    (write_vm_folder(tmp_path) / missing).unlink()

    with pytest.raises(vim.fault.NotFound):
        register(si, cluster_hosts(si)[0])
    assert not [vm for vm in find_all(si, vim.VirtualMachine) if vm.name == VM_NAME]


def test_register_name_must_match_nvram_file(vcsim_fresh: Vcsim, tmp_path: Path) -> None:
    """vcsim 0.24 looks for "<registered name>.nvram", ignoring the vmx's nvram key.

    Registering app01's folder as "app01-dr" therefore fails on vcsim (real vCenter
    accepts any display name), unless an app01-dr.nvram is provided too.
    """
    si = vcsim_fresh.connect()
    mount_replica(si, tmp_path)
    vm_dir = write_vm_folder(tmp_path)
    dc = find_one(si, vim.Datacenter, "DC0")
    pool = find_one(si, vim.ClusterComputeResource, "DC0_C0").resourcePool
    path = f"[{DS_NAME}] {VM_NAME}/{VM_NAME}.vmx"

    with pytest.raises(vim.fault.NotFound):
        wait(dc.vmFolder.RegisterVM_Task(path=path, name="app01-dr", asTemplate=False, pool=pool))

    (vm_dir / "app01-dr.nvram").write_bytes(b"\x00" * 8192)
    vm = wait(dc.vmFolder.RegisterVM_Task(path=path, name="app01-dr", asTemplate=False, pool=pool))
    assert vm.name == "app01-dr"
    assert vm.runtime.host in cluster_hosts(si)  # no host given: vcsim picks one with the DS


# ---------------------------------------------------------------- d. reconfigure


def test_reconfigure_attaches_existing_vmdk_and_dr_nic(vcsim_fresh: Vcsim, tmp_path: Path) -> None:
    si = vcsim_fresh.connect()
    mount_replica(si, tmp_path)
    vm_dir = write_vm_folder(tmp_path)
    vm = register(si, cluster_hosts(si)[0])
    portgroup = find_one(si, vim.dvs.DistributedVirtualPortgroup, "DR-Prod")
    flat_before = (vm_dir / f"{VM_NAME}_0-flat.vmdk").stat()
    vmx_before = (vm_dir / f"{VM_NAME}.vmx").read_text()

    attach_disk_and_nic(si, vm, portgroup)

    devices = vm.config.hardware.device
    (controller,) = [d for d in devices if isinstance(d, vim.vm.device.ParaVirtualSCSIController)]
    (disk,) = [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
    (nic,) = [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]

    assert disk.backing.fileName == f"[{DS_NAME}] {VM_NAME}/{VM_NAME}_0.vmdk"
    assert disk.backing.datastore.name == DS_NAME
    assert disk.capacityInKB == DISK_MIB * 1024  # as given in the spec (vcsim reads no descriptor)
    # Temporary negative keys are replaced by positive ones and the disk follows its controller.
    assert controller.key > 0 and disk.key > 0 and nic.key > 0
    assert disk.controllerKey == controller.key
    assert disk.unitNumber == 0

    assert isinstance(nic, vim.vm.device.VirtualVmxnet3)
    assert nic.backing.port.portgroupKey == portgroup.key
    assert nic.backing.port.switchUuid == portgroup.config.distributedVirtualSwitch.uuid
    assert nic.macAddress  # generated
    assert portgroup in vm.network

    # Attaching (no fileOperation) leaves the replicated files untouched.
    flat_after = (vm_dir / f"{VM_NAME}_0-flat.vmdk").stat()
    assert (flat_after.st_size, flat_after.st_mtime_ns) == (
        flat_before.st_size,
        flat_before.st_mtime_ns,
    )
    assert 'createType="vmfs"' in (vm_dir / f"{VM_NAME}_0.vmdk").read_text()
    # vcsim keeps the device configuration in memory only; real ESXi rewrites the .vmx.
    assert (vm_dir / f"{VM_NAME}.vmx").read_text() == vmx_before


def test_reconfigure_rejects_missing_vmdk(vcsim_fresh: Vcsim, tmp_path: Path) -> None:
    """Attaching needs <name>-flat.vmdk on the datastore; without it the task fails."""
    si = vcsim_fresh.connect()
    mount_replica(si, tmp_path)
    vm_dir = write_vm_folder(tmp_path)
    (vm_dir / f"{VM_NAME}_0-flat.vmdk").unlink()
    vm = register(si, cluster_hosts(si)[0])

    with pytest.raises(vim.fault.FileNotFound):
        attach_disk_and_nic(si, vm, find_one(si, vim.dvs.DistributedVirtualPortgroup, "DR-Prod"))


# ---------------------------------------------------------------- e. power + unregister


def test_power_cycle_and_unregister_keeps_files(vcsim_fresh: Vcsim, tmp_path: Path) -> None:
    si = vcsim_fresh.connect()
    ds = mount_replica(si, tmp_path)
    vm_dir = write_vm_folder(tmp_path)
    vm = register(si, cluster_hosts(si)[0])
    attach_disk_and_nic(si, vm, find_one(si, vim.dvs.DistributedVirtualPortgroup, "DR-Prod"))

    wait(vm.PowerOnVM_Task())
    assert vm.runtime.powerState == vim.VirtualMachine.PowerState.poweredOn
    # A powered-on VM cannot be unregistered.
    with pytest.raises(vim.fault.InvalidPowerState):
        vm.UnregisterVM()

    wait(vm.PowerOffVM_Task())
    assert vm.runtime.powerState == vim.VirtualMachine.PowerState.poweredOff
    vm.UnregisterVM()

    assert not [v for v in find_all(si, vim.VirtualMachine) if v.name == VM_NAME]
    assert list(ds.vm) == []
    expected = {
        f"{VM_NAME}.vmx",
        f"{VM_NAME}.nvram",
        "vmware.log",
        f"{VM_NAME}_0.vmdk",
        f"{VM_NAME}_0-flat.vmdk",
    }
    assert expected <= set(os.listdir(vm_dir))
    assert (vm_dir / f"{VM_NAME}_0-flat.vmdk").stat().st_size == DISK_MIB * 1024 * 1024
    # vcsim appended its own lines to vmware.log but kept ours.
    assert (vm_dir / "vmware.log").read_text().startswith("replicated by cdp\n")

    # The same folder can be registered again (e.g. a second failover test run).
    again = register(si, cluster_hosts(si)[1])
    assert again.name == VM_NAME
    # ...but the disk and NIC attached above are gone: vcsim never wrote them to the .vmx.
    devices = again.config.hardware.device
    assert not [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
    assert not [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]


# ---------------------------------------------------------------- f. auth + maintenance


def test_bad_credentials_rejected(vcsim: Vcsim) -> None:
    with pytest.raises(vim.fault.InvalidLogin):
        vcsim.connect(password="wrong")
    with pytest.raises(vim.fault.InvalidLogin):
        vcsim.connect(user="someone-else")
    assert vcsim.connect().content.about.apiType == "VirtualCenter"


def test_maintenance_mode(vcsim_fresh: Vcsim) -> None:
    si = vcsim_fresh.connect()
    host, other = cluster_hosts(si)[:2]

    wait(host.EnterMaintenanceMode_Task(timeout=0))
    assert host.runtime.inMaintenanceMode is True
    assert other.runtime.inMaintenanceMode is False

    wait(host.ExitMaintenanceMode_Task(timeout=0))
    assert host.runtime.inMaintenanceMode is False


def test_maintenance_mode_ignores_running_vms(vcsim_binary: Path, tmp_path: Path) -> None:
    """vcsim enters maintenance with a powered-on VM still on the host (vCenter would not)."""
    sim = start_vcsim(vcsim_binary, Inventory(vms=1, standalone_hosts=0), tmp_path / "vcsim.log")
    try:
        si = sim.connect()
        (vm,) = find_all(si, vim.VirtualMachine)
        assert vm.runtime.powerState == vim.VirtualMachine.PowerState.poweredOn
        host = vm.runtime.host

        wait(host.EnterMaintenanceMode_Task(timeout=0))

        assert host.runtime.inMaintenanceMode is True
        assert vm.runtime.host == host
        assert vm.runtime.powerState == vim.VirtualMachine.PowerState.poweredOn
    finally:
        sim.close()


def test_fresh_simulator_starts_fast(vcsim_fresh: Vcsim) -> None:
    """Guards the cost of ``vcsim_fresh`` (measured ~0.05 s; generous bound for slow CI)."""
    assert vcsim_fresh.startup_seconds < 5.0
    assert vcsim_fresh.url.startswith(f"https://{vcsim_fresh.user}:")
