"""Issue 13, the target-side half: the split-brain guard, fencing by epoch and failback
under mutual TLS, driven through the ``cdp failover`` CLI against vcsim and a real target.

Copied from the defect tests on branch h-lifecycle-tests (tests/vsphere/
test_lifecycle_defects.py, which failed on ece6b4a), with their helpers; plus the
fencing and lifecycle as status shows them after each operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import TargetProcess, free_port
from pyVmomi import vim

from cdp.errors import CdpError
from cdp.failover.faults import server_thumbprint
from cdp.rpc.client import ReplicationClient
from cdp.rpc.convert import LIFECYCLE_NAMES
from cdp.source.shipper import Shipper, ShipperConfig

from .drsite import (
    GROUP,
    VMS,
    DrSite,
    find_one,
    inventory,
    mount,
    register_protected_vms,
    wait,
)
from .harness import Inventory, Vcsim, start_vcsim

REPO = Path(__file__).resolve().parents[2]
MARK = b"written-by-the-recovered-guest-after-failover".ljust(4096, b"!")
"""What a recovered guest writes into its disk after the failover (data only it holds)."""
MARK_OFFSET = 64 * 1024 + 512


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


async def cdp(*args: str, timeout: float = 90.0) -> tuple[int, str, str]:
    """Run ``cdp ARGS`` as a subprocess (the test's event loop keeps serving the target)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, cwd=str(REPO), env=_env(),
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def failover(*args: str, timeout: float = 90.0) -> tuple[int, str, str]:
    """``cdp failover ARGS``."""
    return await cdp("failover", *args, timeout=timeout)


def dr_disk(site: DrSite, vm: str) -> Path:
    """The recovered VM's writable disk (the flat file a live failover exports)."""
    return site.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk"


def guest_writes(site: DrSite) -> None:
    """The recovered guests write data that exists nowhere else (not in the journal)."""
    for vm in VMS:
        with open(dr_disk(site, vm), "r+b") as f:
            f.seek(MARK_OFFSET)
            f.write(MARK)


def holds_guest_writes(site: DrSite, vm: str) -> bool:
    """Whether ``vm``'s recovered disk still holds what its guest wrote after the failover."""
    path = dr_disk(site, vm)
    if not path.exists():
        return False
    with open(path, "rb") as f:
        f.seek(MARK_OFFSET)
        return f.read(len(MARK)) == MARK


def power(si: Any) -> dict[str, str]:
    """Registered VMs by name -> power state, read from vCenter with pyVmomi."""
    return {name: state for name, _, state in inventory(si)}


def unregister_all(si: Any) -> None:
    """Power off and unregister every VM (what `check`'s hint "or unregister it" leads to)."""
    for vm in [find_one(si, vim.VirtualMachine, name) for name, _, _ in inventory(si)]:
        if vm.runtime.powerState == "poweredOn":
            wait(vm.PowerOffVM_Task())
        vm.UnregisterVM()


async def live_failover(site: DrSite, plan: str) -> None:
    """`run --no-wait` from the CLI, after the source host is lost (unplanned failover)."""
    assert site.source is not None
    await site.source.stop()  # the protected site is gone: the case `run` is made for
    site.source = None
    code, out, err = await failover("run", "--plan", plan, "--no-wait")
    assert code == 0, out + err
    assert power(site.si) == {"db01": "poweredOn", "app01": "poweredOn"}


# ---------------------------------------------------------------- defect 3: split brain


async def test_unplanned_run_refuses_while_the_source_replicates(site: DrSite) -> None:
    """An unplanned `run` while the group's source is connected and replicating must be
    refused (exit 1, saying the source is connected) unless an override is given: nothing
    is registered at the recovery site."""
    plan = str(site.write_plan())
    assert site.source is not None
    await site.source.write(5)  # the source is alive and replicating

    code, out, err = await failover("run", "--plan", plan, "--no-wait")

    assert code == 1, out + err
    assert "connected" in err
    assert inventory(site.si) == []


async def test_old_source_is_fenced_after_commit(site: DrSite) -> None:
    """The link to the source drops, the plan fails over and commits; then the old source
    comes back. It must never write into the failed-over group again: its writes do not
    become durable, and a new session of it is refused with FAILED_PRECONDITION naming
    the failover."""
    plan = str(site.write_plan())
    source = site.source
    assert source is not None and source.task is not None
    source.task.cancel()  # the link drops; the host and its buffer live on
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await source.task
    code, out, err = await failover("run", "--plan", plan, "--no-wait")
    assert code == 0, out + err
    code, out, err = await failover("commit", "--plan", plan)
    assert code == 0, out + err
    durable = (await site.target.client.status(GROUP)).groups[0].durable_seq
    spec = source.host.group_spec(GROUP)
    await source.client.close()
    source.client = ReplicationClient(site.target.address)  # the old source reconnects
    source.shipper = Shipper(spec, source.buffer, source.client, ShipperConfig("src-host"))
    await source.start()

    with contextlib.suppress(TimeoutError):  # its drain never finishes once it is fenced
        await asyncio.wait_for(source.write(10), 5)
    after = (await site.target.client.status(GROUP)).groups[0].durable_seq

    assert after == durable, f"the old source wrote {after - durable} records after commit"
    try:
        await source.client.open_session("src-host", spec, 0, after + 1)
    except CdpError as exc:
        assert "FAILED_PRECONDITION" in str(exc) and "failover" in str(exc), exc
    else:
        pytest.fail("a new session of the old source was accepted after the failover")


# ---------------------------------------------------------------- defect 4: planned failure


@pytest.fixture
def protected(vcsim_binary: Path, tmp_path: Path) -> Iterator[Vcsim]:
    """The protected site's vCenter (no DR port groups)."""
    sim = start_vcsim(vcsim_binary, Inventory(portgroups=()), tmp_path / "prod-vcsim.log")
    try:
        yield sim
    finally:
        sim.close()


def planned_plan(
    site: DrSite, prod: Vcsim, failback: dict[str, Any] | None = None, **protected_over: Any
) -> str:
    """A plan with ``protected_site`` = ``prod`` (power off, short drain), written to disk."""
    protected_site = {
        "vcenter": {
            "url": f"https://{prod.host}:{prod.port}/sdk",
            "credentials": {"file": str(site.root / "vcenter.cred")},
            "tls": {"thumbprint": server_thumbprint(prod.host, prod.port, 5)},
        },
        "datacenter": "DC0",
        "shutdown": "power_off",
        "drain_quiet_s": 0.5,
        "drain_timeout_s": 20,
        **protected_over,
    }
    extra = {"failback": failback} if failback else {}
    return str(site.write_plan(site.plan_dict(protected_site=protected_site, **extra)))


# ---------------------------------------------------------------- defect 2: failback, mTLS


@pytest.fixture
def home_mtls(site: DrSite) -> Iterator[tuple[TargetProcess, Path]]:
    """The original-site target as `cdp target serve --tls-dir` (a subprocess) with the
    folders of `cdp certs init`: a source `dr-reverse` for the reverse groups, an operator."""
    pki = site.root / "pki"
    subprocess.run(
        [sys.executable, "-m", "cdp", "certs", "init", str(pki), "--source",
         f"dr-reverse={GROUP}-failback", "--operator", "dr-oncall"],
        env=_env(), check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    data = site.root / "home-target"
    home = TargetProcess(str(data), free_port(), "--tls-dir", str(pki / "target"))
    home.start()
    try:
        yield home, pki
    finally:
        home.stop_or_kill()


async def test_failback_over_mtls_with_certs_init_certificates(
    site: DrSite, protected: Vcsim, home_mtls: tuple[TargetProcess, Path]
) -> None:
    """Failback to an original-site target that serves mutual TLS, with the certificate
    folders `cdp certs init` writes and the documented plan key
    (`failback.target.tls_dir` = a source's folder): the failback completes (exit 0) and
    the VMs run at the original site; no PERMISSION_DENIED at the seed step."""
    home, pki = home_mtls
    prod_si = protected.connect()
    register_protected_vms(prod_si, site.root / "source")
    replicas = Path(home.data_dir) / "replicas"
    replicas.mkdir(parents=True, exist_ok=True)
    mount(prod_si, replicas, "fb-ds")
    failback = {
        "target": {"address": home.address, "tls_dir": str(pki / "sources" / "dr-reverse")},
        "seed_path": str(site.root / "source"),
        "site": {
            "datacenter": "DC0",
            "cluster": "DC0_C0",
            "datastore": {"name": "fb-ds", "path": str(replicas)},
            "power_on_timeout_s": 10,
        },
    }
    plan = planned_plan(site, protected, drain_quiet_s=0.3, failback=failback)
    code, out, err = await failover("run", "--plan", plan, "--planned", "--no-wait")
    assert code == 0, out + err
    code, out, err = await failover("commit", "--plan", plan)
    assert code == 0, out + err
    assert site.source is not None
    await site.source.stop()  # the original host is down: no forward replication
    site.source = None
    guest_writes(site)

    code, out, err = await failover("failback", "--plan", plan, timeout=180)

    assert code == 0, out + err
    assert "PERMISSION_DENIED" not in err
    assert power(prod_si) == {"db01": "poweredOn", "app01": "poweredOn"}


# ---------------------------------------------------------------- lifecycle and fencing


async def lifecycle_of(site: DrSite) -> tuple[str, int]:
    """The group's lifecycle name and epoch, as the target's status says."""
    (g,) = (await site.target.client.status(GROUP)).groups
    return LIFECYCLE_NAMES[g.lifecycle], g.epoch


async def test_lifecycle_through_run_and_rollback_unfences_the_source(site: DrSite) -> None:
    """run marks failing over then awaiting commit (epoch 1, the source fenced); a rollback
    returns the group to protecting at epoch 0, so the original source writes again."""
    plan = str(site.write_plan())
    source = site.source
    assert source is not None and source.task is not None
    assert await lifecycle_of(site) == ("protecting", 0)
    source.task.cancel()  # the link drops
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await source.task
    code, out, err = await failover("run", "--plan", plan, "--no-wait")
    assert code == 0, out + err
    assert await lifecycle_of(site) == ("failed_over_awaiting_commit", 1)
    spec = source.host.group_spec(GROUP)
    with pytest.raises(CdpError, match="FAILED_PRECONDITION.*fenced by that failover"):
        await source.client.open_session("src-host", spec, 0, 1)

    code, out, err = await failover("rollback", "--plan", plan, "--discard-recovered-data")

    assert code == 0, out + err
    assert await lifecycle_of(site) == ("protecting", 0)
    assert (await source.client.open_session("src-host", spec, 0, 1)).session_id


async def test_fence_protected_powers_off_production_then_fails_over(
    site: DrSite, protected: Vcsim
) -> None:
    """`run --fence-protected` while the source replicates: the protected VMs are powered
    off through the protected vCenter first, then the failover goes on (exit 0)."""
    prod_si = protected.connect()
    register_protected_vms(prod_si, site.root / "source")
    for name in ("db01", "app01"):
        vm = find_one(prod_si, vim.VirtualMachine, name)
        if vm.runtime.powerState != "poweredOn":
            wait(vm.PowerOnVM_Task())
    plan = planned_plan(site, protected)
    assert site.source is not None
    await site.source.write(5)  # connected and replicating

    code, out, err = await failover("run", "--plan", plan, "--no-wait", "--fence-protected")

    assert code == 0, out + err
    assert "powered off db01 at the protected site" in out + err
    assert power(prod_si) == {"db01": "poweredOff", "app01": "poweredOff"}
    assert power(site.si) == {"db01": "poweredOn", "app01": "poweredOn"}
    assert await lifecycle_of(site) == ("failed_over_awaiting_commit", 1)
