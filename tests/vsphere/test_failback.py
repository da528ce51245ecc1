"""Failback against two real vcsims and two real targets.

The protected (original) site is its own vcsim running the simulator's VMs from
``<root>/source`` (datastore ``prod-ds``); the recovery site is the usual ``site``. A
planned failover moves the VMs to the recovery site and is committed; the "DR guests"
then write into their ``<vm>-dr`` flat files. Failback streams the recovered disks to a
second in-process target (the original-site target, whose replica folder is mounted at
the original site as ``fb-ds``), seeded with the original disks, so only the regions
written at the DR site travel; then the VMs come up at the original site.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import Running, start_target, stop_target
from grpc_health.v1.health_pb2 import HealthCheckRequest
from grpc_health.v1.health_pb2_grpc import HealthStub
from pyVmomi import vim

from cdp.errors import ConfigError, PreconditionError, RemoteError
from cdp.failover import vsphere
from cdp.failover.checks import FAIL, PASS
from cdp.failover.errors import OperationStateError
from cdp.failover.failback import Failback, back_plan
from cdp.failover.faults import server_thumbprint
from cdp.failover.orchestrator import Orchestrator
from cdp.failover.plan import Credentials, parse_plan
from cdp.failover.remote import TargetReplication
from cdp.failover.vcenter import VCenter
from cdp.rpc.client import ReplicationClient
from cdp.source.protection import Mode, ProtectionConfig
from cdp.tls import load_client_tls, load_server_tls
from cdp.v1 import replication_pb2 as pb

from .drsite import (
    DISK_BYTES,
    FAILBACK_OPERATOR,
    GROUP,
    VMS,
    DrSite,
    LiveSource,
    failback_pki,
    failback_tls_dir,
    find_one,
    inventory,
    mount,
    register_protected_vms,
    wait,
)
from .harness import Inventory, Vcsim, start_vcsim

REPO = Path(__file__).resolve().parents[2]
REGION = 64 * 1024
DR_WRITES = {"db01": (3, 17, 40), "app01": (9,)}
"""Regions the DR guests write after the failover (one 4 KiB write in each)."""


@pytest.fixture
def protected(vcsim_binary: Path, tmp_path: Path) -> Iterator[Vcsim]:
    """The original (protected) site's vCenter."""
    sim = start_vcsim(vcsim_binary, Inventory(portgroups=()), tmp_path / "prod-vcsim.log")
    try:
        yield sim
    finally:
        sim.close()


@dataclass
class Home:
    """The original site: its vCenter session and its cdp target."""

    si: Any
    target: Running
    client: ReplicationClient
    pki: Path
    """The folders of ``cdp certs init``: the target serves mutual TLS with them."""
    operator: ReplicationClient
    """The test's own eyes on the original-site target (``client`` is the reverse source)."""

    @property
    def replicas(self) -> Path:
        return Path(self.target.data_dir) / "replicas"


@pytest.fixture
async def home(protected: Vcsim, site: DrSite) -> AsyncIterator[Home]:
    """Original VMs running at the protected site; an original-site target, mounted."""
    si = protected.connect()
    register_protected_vms(si, site.root / "source")
    pki = failback_pki(site.root)
    target = await start_target(
        str(site.root / "home-target"),
        tls=load_server_tls(str(pki / "target")),
        client_tls=load_client_tls(str(failback_tls_dir(pki))),
        history_window_s=3600.0,
    )
    operator = ReplicationClient(
        target.address, load_client_tls(str(pki / "operators" / FAILBACK_OPERATOR))
    )
    h = Home(si, target, target.client, pki, operator)
    h.replicas.mkdir(parents=True, exist_ok=True)
    mount(si, h.replicas, "fb-ds")
    try:
        yield h
    finally:
        await operator.close()
        await stop_target(target)


class CrashAfter:
    """A VCenter that 'dies' right after the n-th call of one method."""

    def __init__(self, inner: VCenter, method: str) -> None:
        self.inner, self.method = inner, method

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)
        if name != self.method:
            return fn

        def wrapped(*args: Any) -> Any:
            fn(*args)
            raise RuntimeError(f"simulated crash after {name}")

        return wrapped


def orchestrator(
    site: DrSite, prod: Vcsim, home: Home, crash: str = "", disks: str = "copy"
) -> Orchestrator:
    protected_site = {
        "vcenter": {
            "url": f"https://{prod.host}:{prod.port}/sdk",
            "credentials": {"file": str(site.root / "vcenter.cred")},
            "tls": {"thumbprint": server_thumbprint(prod.host, prod.port, 5)},
        },
        "datacenter": "DC0",
        "shutdown": "power_off",
        "drain_quiet_s": 0.3,
        "drain_timeout_s": 20,
    }
    failback = {
        "target": {"address": home.target.address, "tls_dir": str(failback_tls_dir(home.pki))},
        "seed_path": str(site.root / "source"),
        "site": {
            "datacenter": "DC0",
            "cluster": "DC0_C0",
            "datastore": {"name": "fb-ds", "path": str(home.replicas)},
            "power_on_timeout_s": 10,
        },
    }
    data = site.plan_dict(protected_site=protected_site, failback=failback)
    data["recovery"]["disks"] = disks
    plan = site.plan(data)
    assert plan.protected_site is not None
    creds = Credentials(prod.user, prod.password)
    vc = plan.protected_site.vcenter

    def connect() -> VCenter:
        inner = vsphere.connect(vc, creds)
        return CrashAfter(inner, crash) if crash else inner  # type: ignore[return-value]

    return site.orchestrator(plan, connect_protected=connect)


def failback(orch: Orchestrator, home: Home, **kw: Any) -> Failback:
    return Failback(orch, home.client, TargetReplication(home.client), rpo_probe_s=0.05, **kw)


async def fail_over_and_write(site: DrSite, prod: Vcsim, home: Home, commit: bool = True) -> None:
    """Planned failover, commit, stop the old forward source; the DR guests write."""
    orch = orchestrator(site, prod, home)
    await orch.failover("live", planned=True)
    if commit:
        await orch.commit()
    orch.close()
    assert site.source is not None
    await site.source.stop()  # the original host is down: no forward replication
    site.source = None
    for vm, regions in DR_WRITES.items():
        with open(dr_disk(site, vm), "r+b") as f:
            for r in regions:
                f.seek(r * REGION + 512)
                f.write(os.urandom(4096))


def dr_disk(site: DrSite, vm: str) -> Path:
    return site.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk"


def vms(si: Any) -> dict[str, tuple[str, str]]:
    return {name: (path, power) for name, path, power in inventory(si)}


async def test_failback_sends_only_changed_regions_and_brings_the_vms_home(
    site: DrSite, protected: Vcsim, home: Home
) -> None:
    await fail_over_and_write(site, protected, home)
    recovered = {vm: dr_disk(site, vm).read_bytes() for vm in VMS}
    orch = orchestrator(site, protected, home)

    result = await failback(orch, home).run()

    assert result["status"] == "failed-back"
    sync = result["sync"][GROUP]
    regions = 2 * DISK_BYTES // REGION
    changed = sum(len(r) for r in DR_WRITES.values())
    assert sync["pre-sync"]["regions_compared"] == regions
    assert sync["pre-sync"]["regions_sent"] == changed  # the hash compare against the seed
    assert sync["final-sync"]["regions_sent"] == 0  # nothing written since the first pass
    assert result["bytes_sent"] == changed * REGION
    for vm in VMS:  # the original site runs the recovered disks, byte for byte
        back = home.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk"
        assert back.read_bytes() == recovered[vm]
    assert vms(home.si) == {vm: (f"[fb-ds] {vm}-dr/{vm}.vmx", "poweredOn") for vm in VMS}
    assert inventory(site.si) == []  # the DR copies are unregistered...
    assert all((site.replicas / f"{vm}-dr").is_dir() for vm in VMS)  # ...their files kept
    nic = [
        d
        for d in find_one(home.si, vim.VirtualMachine, "db01").config.hardware.device
        if isinstance(d, vim.vm.device.VirtualEthernetCard)
    ]
    assert [n.deviceInfo.summary for n in nic] == ["VM Network"]  # its original network
    archived = json.loads(Path(result["archived"]).read_text())
    assert archived["status"] == "failed-back" and "committed" in archived["failover_log"]
    with pytest.raises(OperationStateError, match="already failed back"):
        await failback(orch, home).run()
    orch.close()


async def test_failback_dry_run_changes_nothing(site: DrSite, protected: Vcsim, home: Home) -> None:
    await fail_over_and_write(site, protected, home)
    before = (vms(home.si), inventory(site.si), sorted(os.listdir(home.replicas)))
    orch = orchestrator(site, protected, home)

    plan = failback(orch, home).dry_run()

    assert plan["dry_run"] and plan["groups"] == {GROUP: f"{GROUP}-failback"}
    kinds = list(dict.fromkeys(s["kind"] for s in plan["steps"]))
    assert kinds == [
        "seed",
        "pre-sync",
        "power-off-dr",
        "final-sync",
        "bookmark",
        "retire-original",
        "failover-back",
        "unregister-dr",
        "protect-again",
    ]
    assert all(d["seed_present"] for d in plan["disks"])
    assert (vms(home.si), inventory(site.si), sorted(os.listdir(home.replicas))) == before
    assert not (site.state_dir / "dr-test" / "failback").exists()
    assert not (await home.operator.status()).groups  # no reverse group yet
    orch.close()


async def test_the_original_site_target_of_these_tests_serves_only_mutual_tls(
    site: DrSite, protected: Vcsim, home: Home
) -> None:
    """The failback tests above and below run over mutual TLS: the original-site target
    refuses plain text, and the reverse source's certificate is no operator's."""
    async with grpc.aio.insecure_channel(home.target.address) as plain:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await HealthStub(plain).Check(HealthCheckRequest(), timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(RemoteError, match="PERMISSION_DENIED"):
        await home.client.status()
    assert not (await home.operator.status()).groups


async def test_failback_refuses_without_a_live_failover(
    site: DrSite, protected: Vcsim, home: Home
) -> None:
    orch = orchestrator(site, protected, home)
    with pytest.raises(OperationStateError, match="no committed live failover"):
        await failback(orch, home).run()
    assert not (site.state_dir / "dr-test" / "failback" / "operation.json").exists()
    orch.close()


async def test_failback_refuses_a_running_original_vm(
    site: DrSite, protected: Vcsim, home: Home
) -> None:
    await fail_over_and_write(site, protected, home)
    wait(find_one(home.si, vim.VirtualMachine, "app01").PowerOnVM_Task())  # split brain
    orch = orchestrator(site, protected, home)
    with pytest.raises(PreconditionError, match="app01 is running at the original site"):
        await failback(orch, home).run()
    orch.close()


async def test_crash_mid_failback_then_the_same_command_resumes(
    site: DrSite, protected: Vcsim, home: Home
) -> None:
    """Also: failback of a failover still awaiting commit commits it first."""
    await fail_over_and_write(site, protected, home, commit=False)
    recovered = {vm: dr_disk(site, vm).read_bytes() for vm in VMS}
    crashing = orchestrator(site, protected, home, crash="register_vm")  # dies at home

    with pytest.raises(RuntimeError, match="simulated crash after register_vm"):
        await failback(crashing, home).run()
    crashing.close()
    log = json.loads((site.state_dir / "dr-test" / "failback" / "operation.json").read_text())
    done = [s["id"] for s in log["steps"] if s["done"]]
    assert done[0] == "commit-failover" and "bookmark:g1" in done and "failover-back" not in done
    assert "committed" in log["failover_log"]
    plan = str(site.plans[-1])
    code, out, err = await _cdp("status", "--plan", plan, "--json")
    assert code == 0, err
    fb = json.loads(out)["failback"]
    assert fb["active"] and fb["status"] == "running"
    assert fb["steps_done"] == len(done) < fb["steps"]
    code, out, err = await _cdp("status", "--plan", plan)
    assert code == 0, err
    assert f"failback: running, {len(done)}/{fb['steps']} steps done" in out

    orch = orchestrator(site, protected, home)
    result = await failback(orch, home).run()

    assert result["status"] == "failed-back"
    code, out, err = await _cdp("status", "--plan", plan, "--json")
    assert code == 0, err
    fb = json.loads(out)["failback"]
    assert fb["active"] is False and fb["last"].endswith("-failback-failed-back.json")
    assert Counter(v[0] for v in inventory(home.si)) == Counter(VMS)  # never registered twice
    assert vms(home.si) == {vm: (f"[fb-ds] {vm}-dr/{vm}.vmx", "poweredOn") for vm in VMS}
    assert inventory(site.si) == []
    for vm in VMS:
        assert (home.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk").read_bytes() == recovered[vm]
    (back,) = (site.state_dir / "dr-test-failback" / "history").iterdir()
    registered = [s for s in json.loads(back.read_text())["steps"] if s["kind"] == "register"]
    assert all(s["result"]["adopted"] for s in registered)  # found again, not registered again
    orch.close()


async def _cdp(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cdp",
        "failover",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=str(REPO),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_failback_dry_run_then_run(site: DrSite, protected: Vcsim, home: Home) -> None:
    await fail_over_and_write(site, protected, home)
    orchestrator(site, protected, home).close()  # writes the plan file
    plan = str(site.plans[-1])

    code, out, err = await _cdp("failback", "--plan", plan, "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["dry_run"] is True
    assert inventory(site.si) != [] and not (site.state_dir / "dr-test" / "failback").exists()

    code, out, err = await _cdp("failback", "--plan", plan, "--json")

    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "failed-back" and result["regions_sent"] == 4
    assert "final reverse sync of group g1" in err  # progress lines go to stderr with --json
    # issue 13 #13: the failover inside the failback counts its own steps, set apart
    # ("  failover [ 3/11]"), so the outer counter keeps one total
    assert re.search(r"^  failover \[\s*\d+/\d+\]", err, re.M), err
    assert len(set(re.findall(r"^\[\s*\d+/(\d+)\]", err, re.M))) == 1, err
    # the reverse source's expected resync (every pass starts fresh) is no warning
    assert "lost its journal state" not in err, err
    assert not [line for line in err.splitlines() if "WARN" in line.upper() and "resync" in line]
    assert vms(home.si) == {vm: (f"[fb-ds] {vm}-dr/{vm}.vmx", "poweredOn") for vm in VMS}
    assert inventory(site.si) == []


# ---------------------------------------------------------------- the plan's failback section


def _plan_data(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": 1,
        "name": "payments",
        "target": {"address": "127.0.0.1:50051", "insecure": True},
        "vcenter": {"url": "https://vc-dr.example.com/sdk"},
        "protected_site": {
            "vcenter": {"url": "https://vc-prod.example.com/sdk"},
            "datacenter": "P",
        },
        "recovery": {
            "datacenter": "DC0",
            "cluster": "DC0_C0",
            "datastore": {"name": "cdp-replica", "path": "/srv/cdp/replicas"},
        },
        "groups": [{"name": "g1", "vms": [{"name": "db01"}]}],
        "failback": {
            "target": {"address": "prod-target:50051", "tls_dir": "certs"},
            "seed_path": "prod-ds",
            "site": {
                "datacenter": "Prod-DC",
                "hosts": ["esx1"],
                "datastore": {"name": "cdp-home", "path": "/srv/cdp-home/replicas"},
            },
        },
    }
    data.update(over)
    return data


def test_plan_failback_section(tmp_path: Path) -> None:
    plan = parse_plan(_plan_data(), str(tmp_path / "p.yaml"))
    fb = plan.failback
    assert fb is not None
    assert (fb.target_address, fb.target_tls_dir) == ("prod-target:50051", str(tmp_path / "certs"))
    assert fb.seed_path == str(tmp_path / "prod-ds") and fb.group_suffix == "-failback"
    assert fb.site.datastore.name == "cdp-home" and fb.site.hosts == ("esx1",)
    back = back_plan(plan)
    assert back.name == "payments-failback" and back.groups[0].name == "g1-failback"
    assert back.target_address == "prod-target:50051"
    assert back.recovery == dataclasses.replace(fb.site, disks="copy")  # home onto full disks


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"protected_site": None}, "failback: needs protected_site"),
        ({"failback": {"site": None}}, "failback.site: required"),
        (
            {"failback": {"target": {"address": "x:1"}}},
            "failback.target.tls_dir: give exactly one",
        ),
        ({"failback": {"target": {"address": "nope"}}}, "failback.target.address: 'nope'"),
        ({"failback": {"group_suffix": "/x"}}, "failback.group_suffix: '/x'"),
        ({"failback": {"bogus": 1}}, "failback.bogus"),
    ],
)
def test_plan_failback_errors_name_the_key(
    tmp_path: Path, change: dict[str, Any], key: str
) -> None:
    data = _plan_data()
    for k, v in change.items():  # None deletes a key
        if v is None:
            del data[k]
            continue
        for kk, vv in v.items():
            if vv is None:
                del data[k][kk]
            else:
                data[k][kk] = vv
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_plan(data, str(tmp_path / "p.yaml"))


async def image(client: ReplicationClient, vm: str, at: str = "latest") -> bytes:
    """Disk 0 of ``vm`` at ``at`` in the recovery-site target's group, assembled."""
    out = bytearray(DISK_BYTES)
    async for msg in client.read_image(GROUP, vm, 0, at):
        out[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
    return bytes(out)


async def test_after_failback_the_group_is_protected_again_from_the_original_site(
    site: DrSite, protected: Vcsim, home: Home, tmp_path: Path
) -> None:
    """Issue 13's lifecycle to its end: ... failing back -> protecting again.

    Failback marks the recovery-site group reverse protecting, failing back, then
    protecting again; a live failover to its (pre-failover) points is refused until the
    original site's source rejoins with the group's epoch, which the target asks for a
    full resync: afterwards the recovery-site image is production's disk, with what the
    DR guests wrote, byte for byte.
    """
    await fail_over_and_write(site, protected, home)
    orch = orchestrator(site, protected, home)
    seen: list[str] = []
    real_mark = orch.replication.set_lifecycle

    async def spy(group: str, state: str, **kw: Any) -> int:
        seen.append(state)
        return await real_mark(group, state, **kw)

    orch.replication.set_lifecycle = spy  # type: ignore[method-assign]
    result = await failback(orch, home).run()
    orch.close()
    assert list(dict.fromkeys(seen)) == ["reverse_protecting", "failing_back", "protecting"]
    assert result["protect_again"][GROUP]["epoch"] == 1
    (g,) = (await site.target.client.status(GROUP)).groups
    assert (g.lifecycle, g.epoch) == (pb.LIFECYCLE_STATE_PROTECTING, 1)
    assert g.lifecycle_failed_back_unix_ns > 0
    status = site.orchestrator(orch.plan).status()
    assert status["state"].startswith("failed back") and "--epoch 1" in status["next"], status

    again = orchestrator(site, protected, home)  # production runs at home: no second copy
    (row,) = [r for r in (await again.check()).rows if r.name == f"RPO {GROUP}"]
    assert row.status == FAIL and "failed back at" in row.detail and "--epoch 1" in row.hint
    with pytest.raises(OperationStateError, match=r"failed back at .* predates production"):
        await again.failover("live", overwrite_recovered=True)
    again.close()

    # The original site's source protects the group again: production's disks (the
    # failed-back ones, hard-linked: the same files) under a source of epoch 1.
    folder = tmp_path / "home-source"
    for vm in VMS:
        (folder / vm).mkdir(parents=True)
        os.link(home.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk", folder / vm / f"{vm}_0-flat.vmdk")
    production = {vm: (folder / vm / f"{vm}_0-flat.vmdk").read_bytes() for vm in VMS}
    source = LiveSource(site.target.address, folder, protection=ProtectionConfig(), epoch=1)
    await source.start()
    try:
        async with asyncio.timeout(60):
            while True:
                (g,) = (await site.target.client.status(GROUP)).groups
                if (
                    g.state == pb.GROUP_STATE_REPLICATING
                    and source.protection is not None
                    and (source.protection.mode is Mode.JOURNALING)
                ):
                    break
                await asyncio.sleep(0.05)
        await source.drained()
        for vm in VMS:
            assert await image(site.target.client, vm) == production[vm], vm
        # The guard is lifted: what refuses a run now is the live source (split brain).
        again = orchestrator(site, protected, home)
        (row,) = [r for r in (await again.check()).rows if r.name == f"RPO {GROUP}"]
        assert row.status == PASS, row
        with pytest.raises(OperationStateError, match="a source is connected"):
            await again.failover("live", overwrite_recovered=True)
        again.close()
    finally:
        await source.stop()
