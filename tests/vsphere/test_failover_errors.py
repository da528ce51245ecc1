"""Each error an engineer meets, against vcsim and a real target, with a clear message."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import free_port
from pyVmomi import vim

from cdp.errors import NotFoundError, PointOutsideHistoryError, PreconditionError
from cdp.failover import vsphere
from cdp.failover.errors import (
    ReadinessError,
    VCenterLoginError,
    VCenterTlsError,
    VCenterUnreachableError,
    VmAlreadyRegisteredError,
)
from cdp.failover.plan import Credentials
from cdp.failover.vcenter import Placement

from .drsite import DS_NAME, DrSite, find_one, inventory, make_site, wait, write_vm_files
from .harness import Vcsim


def rows(survey: Any) -> dict[str, tuple[str, str]]:
    return {r.name: (r.status, r.detail) for r in survey.rows}


async def test_vcenter_unreachable(site: DrSite) -> None:
    data = site.plan_dict()
    data["vcenter"]["url"] = f"https://127.0.0.1:{free_port()}/sdk"
    orch = site.orchestrator(site.plan(data))

    survey = await orch.check()
    status, detail = rows(survey)["vCenter reachable"]
    assert status == "fail" and "Connection refused" in detail
    assert rows(survey)["port groups"] == ("skip", "vCenter not reachable")
    with pytest.raises(
        VCenterUnreachableError, match="UNAVAILABLE: vCenter 127.0.0.1:.*refused"
    ) as e:
        await orch.failover("test")
    assert "check vcenter.url" in e.value.hint
    assert not (site.state_dir / "dr-test" / "operation.json").exists()
    orch.close()


async def test_bad_credentials(site: DrSite) -> None:
    cred = site.root / "vcenter.cred"
    cred.write_text(yaml.safe_dump({"user": site.vcsim.user, "password": "wrong"}))
    plan = site.plan()
    creds = Credentials(site.vcsim.user, "wrong", "file")
    orch = site.orchestrator(plan, connect=lambda: vsphere.connect(plan.vcenter, creds))

    with pytest.raises(VCenterLoginError, match="login failed") as e:
        await orch.failover("test")
    assert "vcenter.credentials" in e.value.hint
    orch.close()


async def test_untrusted_certificate_names_its_thumbprint(site: DrSite) -> None:
    data = site.plan_dict()
    data["vcenter"]["tls"] = {}  # default: verify against the system CAs
    orch = site.orchestrator(site.plan(data))

    with pytest.raises(VCenterTlsError, match=f"thumbprint {site.thumbprint}") as e:
        await orch.failover("test")
    assert "tls.thumbprint" in e.value.hint and "ca_file" in e.value.hint
    orch.close()

    data["vcenter"]["tls"] = {"verify": False}  # the explicit opt-out works, and is flagged
    orch = site.orchestrator(site.plan(data))
    assert rows(await orch.check())["TLS verification"][0] == "warn"
    orch.close()


async def test_host_in_maintenance_is_skipped_and_none_left_fails(site: DrSite) -> None:
    h0, h1 = list(find_one(site.si, vim.ClusterComputeResource, "DC0_C0").host)
    wait(h0.EnterMaintenanceMode_Task(timeout=0))
    orch = site.orchestrator()

    survey = await orch.check()
    assert rows(survey)[f"host {h0.name}"] == ("warn", "is in maintenance mode; not used")
    result = await orch.failover("test")
    assert {v["host"] for v in result["vms"]} == {h1.name}  # placed on the usable host only
    await orch.stop_test()

    wait(h1.EnterMaintenanceMode_Task(timeout=0))
    with pytest.raises(ReadinessError, match="no usable standby host .*maintenance mode"):
        await orch.failover("test")
    orch.close()


async def test_host_disconnected(site: DrSite) -> None:
    dc = find_one(site.si, vim.Datacenter, "DC0")
    spec = vim.host.ConnectSpec(hostName="standby-9", userName="root", password="x", force=True)
    wait(dc.hostFolder.AddStandaloneHost_Task(spec=spec, addConnected=False))
    data = site.plan_dict()
    data["recovery"].pop("cluster")
    data["recovery"]["hosts"] = ["standby-9"]
    orch = site.orchestrator(site.plan(data))

    with pytest.raises(ReadinessError, match="no usable standby host .standby-9 is disconnected"):
        await orch.failover("live")
    orch.close()


async def test_datastore_missing(site: DrSite) -> None:
    data = site.plan_dict()
    data["recovery"]["datastore"]["name"] = "no-such-ds"
    orch = site.orchestrator(site.plan(data))

    with pytest.raises(ReadinessError, match="datastore no-such-ds: not in the datacenter"):
        await orch.failover("live")
    orch.close()


@pytest.fixture
async def full_site(vcsim_fresh: Vcsim, tmp_path: Path) -> AsyncIterator[DrSite]:
    """A site whose target (and so the recovery datastore) lives on a 24 MiB tmpfs."""
    mnt = tmp_path / "target"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        site = await make_site(vcsim_fresh, tmp_path)
        try:
            yield site
        finally:
            await site.close()
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


async def test_datastore_full(full_site: DrSite) -> None:
    site = full_site
    free = shutil.disk_usage(site.replicas).free
    with open(site.replicas / "ballast", "wb") as f:  # leave ~100 kB: less than the images
        f.write(b"\xff" * (free - 100_000))
    orch = site.orchestrator()

    status, detail = rows(await orch.check())["datastore room"]
    assert status == "fail" and detail.startswith("datastore full: 0.1 MB free, needs 0.8 MB")
    with pytest.raises(ReadinessError, match="datastore room: datastore full"):
        await orch.failover("test")
    assert not [p for p in site.replicas.iterdir() if p.name.endswith("-test")]
    orch.close()


async def test_port_group_missing(site: DrSite) -> None:
    data = site.plan_dict()
    data["network_mappings"][0]["live"] = "DR-Missing"
    orch = site.orchestrator(site.plan(data))

    table = rows(await orch.check())
    assert table["port groups (live)"] == ("fail", "port group missing: DR-Missing")
    assert table["port groups (test)"][0] == "pass"
    with pytest.raises(ReadinessError, match="port group missing: DR-Missing"):
        await orch.failover("live")
    result = await orch.failover("test")  # the test network exists: tests still run
    assert result["status"] == "testing"
    await orch.stop_test()
    orch.close()


async def test_vm_already_registered(site: DrSite) -> None:
    dc = find_one(site.si, vim.Datacenter, "DC0")
    pool = find_one(site.si, vim.ClusterComputeResource, "DC0_C0").resourcePool
    write_vm_files(site.replicas / "app01-test", "app01-test")
    path = f"[{DS_NAME}] app01-test/app01-test.vmx"
    wait(dc.vmFolder.RegisterVM_Task(path=path, name="app01-test", asTemplate=False, pool=pool))
    orch = site.orchestrator()

    with pytest.raises(ReadinessError, match=r"VM already registered: \[cdp-replica\] app01-test"):
        await orch.failover("test")
    assert [v[0] for v in inventory(site.si)] == ["app01-test"]  # nothing else was registered

    # A name clash (same name, another path) is refused too.
    write_vm_files(site.replicas / "elsewhere", "db01")
    other = f"[{DS_NAME}] elsewhere/db01.vmx"
    wait(dc.vmFolder.RegisterVM_Task(path=other, name="db01", asTemplate=False, pool=pool))
    with pytest.raises(ReadinessError, match="name 'db01' is taken"):
        await orch.failover("live")
    orch.close()

    # vCenter's own AlreadyExists fault (a race after the check) is translated too.
    session = vsphere.connect(
        site.plan().vcenter, Credentials(site.vcsim.user, site.vcsim.password)
    )
    try:
        with pytest.raises(VmAlreadyRegisteredError, match="AlreadyExists") as e:
            session.register_vm(path, "app01-test", Placement("DC0", "DC0_C0_H0"))
        assert "unregister it first" in e.value.hint
    finally:
        session.close()


async def test_restore_point_outside_the_history(site: DrSite) -> None:
    orch = site.orchestrator()
    with pytest.raises(PointOutsideHistoryError, match="before the history window") as e:
        await orch.failover("test", at="2000-01-01T00:00:00Z")
    assert "cdp points list" in e.value.hint
    with pytest.raises(NotFoundError, match="restore point 'no-such-bookmark' not found"):
        await orch.failover("test", at="no-such-bookmark")
    with pytest.raises(NotFoundError, match="newest restore point is 200"):
        await orch.failover("live", at="999999")
    assert not (site.state_dir / "dr-test" / "operation.json").exists()
    orch.close()


async def test_plan_names_unknown_group_or_vm(site: DrSite) -> None:
    data = site.plan_dict()
    data["groups"][0]["name"] = "nope"
    orch = site.orchestrator(site.plan(data))
    with pytest.raises(ReadinessError, match=r"groups\[0\]\.name: .*no group 'nope'"):
        await orch.failover("test")
    orch.close()

    data = site.plan_dict()
    data["groups"][0]["vms"].append({"name": "ghost"})
    data["boot_order"][1]["vms"].append("ghost")
    orch = site.orchestrator(site.plan(data))
    with pytest.raises(ReadinessError, match=r"groups\[0\]\.vms\[2\]\.name: group 'g1' has no VM"):
        await orch.failover("test")
    orch.close()


async def test_rpo_over_sla_fails_check_but_only_warns_an_operation(site: DrSite) -> None:
    assert site.source is not None
    await site.source.stop()  # the source is lost: RPO grows from its last durable write
    site.source = None
    orch = site.orchestrator(site.plan(site.plan_dict(rpo_sla_s=0.01)))

    assert rows(await orch.check())["RPO g1"][0] == "fail"
    result = await orch.failover("test")
    assert result["status"] == "testing"
    await orch.stop_test()
    orch.close()


async def test_planned_needs_the_protected_site(site: DrSite) -> None:
    orch = site.orchestrator()
    with pytest.raises(PreconditionError, match="--planned needs the protected site"):
        await orch.failover("live", planned=True)
    orch.close()
