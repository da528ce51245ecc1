"""The recovery datastore (issue 14): attached to every standby host and proven by a marker;
after failover/failback the VMs leave it by Storage vMotion. Real ``cdp`` subprocesses,
read back through pyVmomi.

vcsim 0.24 (simulator/host_datastore_system.go, host_datastore_browser.go,
virtual_machine.go): ``CreateLocalDatastore(name, path)`` mounts a local folder on one
host (refuses a name the host has, ``DuplicateName``, and a missing folder,
``NotFound``); each host's ``datastoreBrowser`` searches only that host's datastores,
``SearchDatastore_Task`` lists files matching ``matchPattern``; ``RelocateVM_Task``
changes the VM's ``datastore`` (and host, pool, folder) but moves no file and leaves
``config.files.vmPathName`` as it was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pyVmomi import vim

from cdp.failover.datastore import MARKER_PREFIX, ensure_marker

from .drsite import DS_NAME, DrSite, find_all, find_one, mount
from .test_failover_cli import cdp


def host_datastores(si: Any) -> dict[str, dict[str, str]]:
    """Host -> {datastore name: url} as vCenter reports it."""
    return {
        h.name: {d.name: d.info.url for d in h.datastore}
        for h in find_one(si, vim.ClusterComputeResource, "DC0_C0").host
    }


async def test_attach_mounts_the_replica_folder_on_every_host_and_check_proves_it(
    site: DrSite, tmp_path: Path
) -> None:
    name = "cdp-dr"
    folder = tmp_path / "replicas2"
    folder.mkdir()
    data = site.plan_dict()
    data["recovery"]["datastore"] = {"name": name, "path": str(folder)}
    plan = site.write_plan(data, "attach.yaml")

    code, out, err = await cdp("datastore", "attach", "--plan", str(plan), "--json")
    assert code == 0, err
    hosts = json.loads(out)["hosts"]
    assert {h["done"] for h in hosts} == {"local"}
    markers = [n for n in os.listdir(folder) if n.startswith(MARKER_PREFIX)]
    assert len(markers) == 1 and hosts[0]["marker"] == markers[0]
    mounted = host_datastores(site.si)
    assert all(ds.get(name) == str(folder) for ds in mounted.values()), mounted

    code, out, err = await cdp("datastore", "attach", "--plan", str(plan), "--json")
    assert code == 0, err  # again: nothing to do, the same marker
    assert {h["done"] for h in json.loads(out)["hosts"]} == {"present"}
    assert [n for n in os.listdir(folder) if n.startswith(MARKER_PREFIX)] == markers


async def test_check_proves_each_host_sees_this_folder(site: DrSite, tmp_path: Path) -> None:
    plan = site.write_plan()
    for name in os.listdir(site.replicas):  # the site's marker: start without one
        if name.startswith(MARKER_PREFIX):
            os.unlink(site.replicas / name)
    code, out, _ = await cdp("check", "--plan", str(plan), "--json")
    rows = {r["name"]: r for r in json.loads(out)["checks"]}
    assert rows["datastore proof"]["status"] == "warn"  # no marker yet

    marker = ensure_marker(str(site.replicas))
    code, out, _ = await cdp("check", "--plan", str(plan), "--json")
    rows = {r["name"]: r for r in json.loads(out)["checks"]}
    hosts = [h.name for h in find_one(site.si, vim.ClusterComputeResource, "DC0_C0").host]
    for h in hosts:
        assert rows[f"datastore proof {h}"]["status"] == "pass", rows[f"datastore proof {h}"]
        assert marker in rows[f"datastore proof {h}"]["detail"]

    # a datastore of the right name on another folder (another target's) is caught
    other = tmp_path / "other-replicas"
    other.mkdir()
    ensure_marker(str(other))
    new_host = _add_host(site.si, other)
    data = site.plan_dict()
    data["recovery"]["cluster"] = ""
    data["recovery"]["hosts"] = [*hosts, new_host]
    code, out, _ = await cdp("check", "--plan", str(site.write_plan(data, "p2.yaml")), "--json")
    rows = {r["name"]: r for r in json.loads(out)["checks"]}
    assert code == 1
    assert rows[f"datastore proof {new_host}"]["status"] == "fail"
    assert marker in rows[f"datastore proof {new_host}"]["detail"]
    assert all(rows[f"datastore proof {h}"]["status"] == "pass" for h in hosts)


def _add_host(si: Any, folder: Path) -> str:
    """A standalone host whose ``cdp-replica`` datastore is another folder."""
    from .drsite import wait

    dc = find_one(si, vim.Datacenter, "DC0")
    spec = vim.host.ConnectSpec(hostName="dr-stray", userName="root", password="x", force=True)
    wait(dc.hostFolder.AddStandaloneHost_Task(spec=spec, addConnected=True))
    host = find_one(si, vim.HostSystem, "dr-stray")
    mount(si, folder, DS_NAME, [host])
    return "dr-stray"


async def test_relocate_moves_the_vms_off_the_cdp_datastore(site: DrSite, tmp_path: Path) -> None:
    orch = site.orchestrator()
    await orch.failover("live", planned=False, force_split_brain=True)  # source still up
    await orch.commit()
    orch.close()
    prod = tmp_path / "prod"
    prod.mkdir()
    mount(site.si, prod, "prod-ds")
    plan = site.write_plan()

    code, out, err = await cdp("relocate", "--plan", str(plan), "--datastore", "prod-ds", "--json")
    assert code == 0, err
    assert {v["vm"]: v["done"] for v in json.loads(out)["vms"]} == {
        "db01": "relocated",
        "app01": "relocated",
    }
    on = {vm.name: [d.name for d in vm.datastore] for vm in find_all(site.si, vim.VirtualMachine)}
    assert on["db01"] == ["prod-ds"] and on["app01"] == ["prod-ds"]
    code, out, err = await cdp("relocate", "--plan", str(plan), "--datastore", "prod-ds", "--json")
    assert {v["done"] for v in json.loads(out)["vms"]} == {"already there"}
    code, _, err = await cdp("relocate", "--plan", str(plan), "--datastore", "nope", "--json")
    assert code == 1 and "no datastore 'nope'" in err
