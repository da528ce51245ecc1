"""A whole recovery site for failover tests: vcsim + a real target + simulator data + plan.

``DrSite`` owns a vcsim (recovery vCenter) whose cluster mounts the target's replica
folder as the datastore ``cdp-replica``, an in-process target (real gRPC, RocksDB and
replica files) fed by the VAIO-style simulator, a 0600 credentials file and a plan.
``LiveSource`` is a protected host that keeps writing until its VM is powered off at the
protected site (the planned-failover tests use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from conftest import Running, start_target, stop_target
from pyVmomi import vim

from cdp.failover import vsphere
from cdp.failover.datastore import ensure_marker
from cdp.failover.faults import server_thumbprint
from cdp.failover.orchestrator import Event, Orchestrator
from cdp.failover.plan import Credentials, Plan, load_plan
from cdp.failover.remote import TargetReplication
from cdp.rpc.client import ReplicationClient
from cdp.source.buffer import SourceBuffer
from cdp.source.protection import Mode, ProtectionConfig
from cdp.source.shipper import Shipper, ShipperConfig
from sim.agent import QuiesceGate
from sim.filter import ReplicationFilter
from sim.runner import make_protection
from sim.vm import SimHost, SimVM

from .harness import Vcsim

DS_NAME = "cdp-replica"
GROUP = "g1"
VMS = ("db01", "app01")
DISK_BYTES = 4 * 2**20
TASK_TIMEOUT_S = 30.0


def find_all(si: Any, vimtype: Any) -> list[Any]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vimtype], True)
    try:
        return list(view.view)
    finally:
        view.DestroyView()


def find_one(si: Any, vimtype: Any, name: str) -> Any:
    (obj,) = [o for o in find_all(si, vimtype) if o.name == name]
    return obj


def wait(task: Any) -> Any:
    deadline = time.monotonic() + TASK_TIMEOUT_S
    while task.info.state in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    if task.info.state == "error":
        raise task.info.error
    return task.info.result


def inventory(si: Any) -> list[tuple[str, str, str]]:
    """Every VM as (name, .vmx path, power state), sorted."""
    return sorted(
        (vm.name, vm.config.files.vmPathName, str(vm.runtime.powerState))
        for vm in find_all(si, vim.VirtualMachine)
    )


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime ns) of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def mount(si: Any, path: Path, name: str = DS_NAME, hosts: list[Any] | None = None) -> None:
    """CreateLocalDatastore(name, path) on the cluster's hosts."""
    for host in hosts or list(find_one(si, vim.ClusterComputeResource, "DC0_C0").host):
        host.configManager.datastoreSystem.CreateLocalDatastore(name=name, path=str(path))


def write_vm_files(folder: Path, name: str) -> None:
    """What vcsim needs to register a folder: .vmx, <name>.nvram, vmware.log."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.vmx").write_text(f'displayName = "{name}"\n')
    (folder / f"{name}.nvram").write_bytes(b"")
    (folder / "vmware.log").write_text("")


def register_protected_vms(si: Any, source: Path) -> None:
    """The simulator's VMs (folders under ``source``) registered and powered on at the
    protected site, on a datastore ``prod-ds`` mapped onto ``source``."""
    for vm in VMS:
        write_vm_files(source / vm, vm)
    mount(si, source, "prod-ds")
    dc = find_one(si, vim.Datacenter, "DC0")
    pool = find_one(si, vim.ClusterComputeResource, "DC0_C0").resourcePool
    for vm in VMS:
        path = f"[prod-ds] {vm}/{vm}.vmx"
        made = wait(dc.vmFolder.RegisterVM_Task(path=path, name=vm, asTemplate=False, pool=pool))
        wait(made.PowerOnVM_Task())


@dataclass
class DrSite:
    """A recovery site ready for failover (see the module docstring)."""

    vcsim: Vcsim
    target: Running
    root: Path
    thumbprint: str
    source: LiveSource | None = None
    si: Any = None
    plans: list[Path] = field(default_factory=list)
    _clients: list[ReplicationClient] = field(default_factory=list)

    @property
    def replicas(self) -> Path:
        return Path(self.target.data_dir) / "replicas"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def journal(self) -> Path:
        return Path(self.target.data_dir) / "journal"

    def plan_dict(self, **over: Any) -> dict[str, Any]:
        """A plan for this site (db01 boots first, app01 0.2 s later); ``over`` replaces keys."""
        nic = [{"network": "VM Network"}]
        plan: dict[str, Any] = {
            "version": 1,
            "name": "dr-test",
            "target": {"address": self.target.address, "insecure": True},
            "state_dir": str(self.state_dir),
            "rpo_sla_s": 300,
            "vcenter": {
                "url": f"https://{self.vcsim.host}:{self.vcsim.port}/sdk",
                "credentials": {"file": str(self.root / "vcenter.cred")},
                "tls": {"thumbprint": self.thumbprint},
                "timeout_s": 10,
            },
            "recovery": {
                "datacenter": "DC0",
                "cluster": "DC0_C0",
                "datastore": {"name": DS_NAME, "path": str(self.replicas)},
                "power_on_timeout_s": 10,
                "disks": "copy",  # these tests read the flat export; see test_failover_chain
            },
            "network_mappings": [
                {"source": "VM Network", "live": "DR-Prod", "test": "DR-Test-Isolated"}
            ],
            "groups": [
                {
                    "name": GROUP,
                    "vms": [
                        {"name": "db01", "cpus": 2, "memory_mb": 512, "nics": nic},
                        {"name": "app01", "cpus": 1, "memory_mb": 256, "nics": nic},
                    ],
                }
            ],
            "boot_order": [
                {"name": "db", "vms": ["db01"]},
                {"name": "app", "vms": ["app01"], "delay_s": 0.2},
            ],
            "commit": {"timeout_s": 60, "default_action": "commit"},
        }
        plan.update(over)
        return plan

    def write_plan(self, data: dict[str, Any] | None = None, name: str = "plan.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(data or self.plan_dict(), sort_keys=False))
        self.plans.append(path)
        return path

    def plan(self, data: dict[str, Any] | None = None) -> Plan:
        return load_plan(str(self.write_plan(data)))

    def orchestrator(
        self, plan: Plan | None = None, events: list[Event] | None = None, **kw: Any
    ) -> Orchestrator:
        """An in-process orchestrator wired like the CLI (real vCenter and target clients)."""
        plan = plan or self.plan()
        creds = Credentials(self.vcsim.user, self.vcsim.password, "test")
        client = ReplicationClient(plan.target_address)
        self._clients.append(client)
        connect = kw.pop("connect", None) or (lambda: vsphere.connect(plan.vcenter, creds))
        return Orchestrator(
            plan,
            connect,
            TargetReplication(client),
            report=(events.append if events is not None else None),
            rpo_probe_s=0.05,
            **kw,
        )

    async def close(self) -> None:
        if self.source is not None:
            await self.source.stop()
        for c in self._clients:
            await c.close()
        await stop_target(self.target)


async def make_site(vcsim: Vcsim, root: Path, writes: int = 200) -> DrSite:
    """A site whose target holds a group g1 (db01, app01) written by the simulator."""
    target = await start_target(str(root / "target"), history_window_s=3600.0)
    site = DrSite(vcsim, target, root, server_thumbprint(vcsim.host, vcsim.port, 5))
    cred = root / "vcenter.cred"
    cred.write_text(yaml.safe_dump({"user": vcsim.user, "password": vcsim.password}))
    cred.chmod(0o600)
    site.source = LiveSource(target.address, root / "source")
    await site.source.start()
    await site.source.write(writes)
    site.si = vcsim.connect()
    mount(site.si, site.replicas)
    ensure_marker(str(site.replicas))  # as `cdp failover datastore attach` leaves it
    return site


class LiveSource:
    """A protected host (the simulator's VMs + filter + shipper) that writes on demand."""

    def __init__(
        self, address: str, folder: Path, seed: int = 7,
        protection: ProtectionConfig | None = None, epoch: int = 0,
    ) -> None:  # fmt: skip
        """With ``protection``, writes go through the source's dirty map and resync (as
        ``cdp sim run``): a source restarted on the same disks rejoins the target.
        ``epoch``: the fencing epoch it writes under (``cdp sim run --epoch``)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.host = SimHost("src-host", [SimVM(str(folder), vm, [DISK_BYTES]) for vm in VMS])
        self.buffer = SourceBuffer(64 * 2**20)
        self.seal_gates = [QuiesceGate() for _ in self.host.vms]  # a seal holds guest writes
        resync_gates = [QuiesceGate() for _ in self.host.vms]  # a resync's last pass holds them
        self.protection = (
            None if protection is None
            else make_protection(self.host, self.buffer, resync_gates, protection)
        )  # fmt: skip
        for vm, gate, held in zip(self.host.vms, self.seal_gates, resync_gates, strict=True):
            if self.protection is not None:
                vm.attach(held)
            vm.attach(gate)
            vm.attach(
                ReplicationFilter(self.buffer, self.host.disk_numbers(), protection=self.protection)
            )
        self.client = ReplicationClient(address)
        spec = self.host.group_spec(GROUP)
        config = ShipperConfig("src-host", epoch=epoch)
        self.shipper = Shipper(spec, self.buffer, self.client, config)
        self.shipper.hold_writes = lambda: [g.hold() for g in self.seal_gates] and None
        self.shipper.release_writes = lambda: [g.release() for g in self.seal_gates] and None
        if self.protection is not None:
            self.shipper.on_resync_required = self.protection.rejoin
        self.rng = random.Random(seed)
        self.task: asyncio.Future[None] | None = None
        self.guard: asyncio.Future[None] | None = None
        self.writes = 0

    async def start(self) -> None:
        self.task = asyncio.ensure_future(self.shipper.run())
        if self.protection is not None and self.guard is None:
            self.guard = asyncio.ensure_future(self.protection.run(self.shipper, self.client))

    async def drained(self) -> None:
        """Every write the source took is durable at the target (resync included)."""
        await self.shipper.drain()
        p = self.protection
        while p is not None and (p.mode is not Mode.JOURNALING or len(p.dirty) or len(self.buffer)):
            await asyncio.sleep(0.01)

    async def write(self, count: int, pause_s: float = 0.0) -> None:
        """``count`` 4 KiB writes of random bytes at random places on both VMs' disks."""
        for _ in range(count):
            vm = self.host.vms[self.rng.randrange(len(self.host.vms))]
            offset = self.rng.randrange(DISK_BYTES // 4096) * 4096
            await vm.write(0, offset, self.rng.randbytes(4096))
            self.writes += 1
            if pause_s:
                await asyncio.sleep(pause_s)
        await asyncio.wait_for(self.drained(), 30)

    async def write_until_off(self, si: Any, pause_s: float = 0.005) -> None:
        """Keep writing to each VM until it is powered off at the protected site ``si``.

        Models a guest: once its VM is off it writes no more. Writes issued before the
        power-off is noticed (one poll, ~20 ms) are real writes and must be replicated; a
        write held by the seal when its VM goes off never completes (not counted).
        """
        off: set[str] = set()

        def states() -> dict[str, str]:
            return {v.name: str(v.runtime.powerState) for v in find_all(si, vim.VirtualMachine)}

        async def watch() -> None:
            while len(off) < len(VMS):
                now = await asyncio.to_thread(states)
                off.update(n for n in VMS if now.get(n) == "poweredOff")
                await asyncio.sleep(0.02)

        async def guest_write(vm: SimVM) -> None:
            offset = self.rng.randrange(DISK_BYTES // 4096) * 4096
            task = asyncio.ensure_future(vm.write(0, offset, self.rng.randbytes(4096)))
            while not task.done() and vm.vm_id not in off:
                await asyncio.wait([task], timeout=0.02)
            if not task.done():  # held by the seal, then powered off: never completed
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return
            task.result()
            self.writes += 1

        watcher = asyncio.ensure_future(watch())
        while len(off) < len(VMS):
            for vm in self.host.vms:
                if vm.vm_id not in off:
                    await guest_write(vm)
            await asyncio.sleep(pause_s)
        await watcher

    async def stop(self) -> None:
        for task in (self.guard, self.task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.client.close()
        self.host.close()

    def disk_path(self, vm: str) -> Path:
        return Path(self.host.vms[VMS.index(vm)].disks[0].extent_path)


def ssl_unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


FAILBACK_SOURCE = "dr-reverse"
"""The source certificate ``failback_pki`` makes for the failback's reverse group."""
FAILBACK_OPERATOR = "dr-oncall"
"""The operator certificate ``failback_pki`` makes (reads status at the original site)."""


def failback_pki(root: Path) -> Path:
    """``cdp certs init`` into ``root/pki``: the target's folder, a source ``dr-reverse``
    for the reverse group ``<GROUP>-failback`` and an operator ``FAILBACK_OPERATOR``."""
    pki = root / "pki"
    subprocess.run(
        [sys.executable, "-m", "cdp", "certs", "init", str(pki), "--source",
         f"{FAILBACK_SOURCE}={GROUP}-failback", "--operator", FAILBACK_OPERATOR],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return pki


def failback_tls_dir(pki: Path) -> Path:
    """The folder the plan's ``failback.target.tls_dir`` names: the reverse source's."""
    return pki / "sources" / FAILBACK_SOURCE
