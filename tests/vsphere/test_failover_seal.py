"""The seal handshake of a planned failover (issue 13 #6), against a real ``cdp sim run``.

The source is a ``cdp sim run`` SUBPROCESS (real filter, buffer and shipper) writing group
g1 (db01, app01) to an in-process target; its VMs are registered, powered on, at a second
vcsim (the protected site). A planned failover must not pass on a source that is frozen
(SIGSTOP: its TCP session stays open, it holds writes it never sent): it asks the source
to seal, and a source that does not answer within ``seal_timeout_s`` stops the failover
before anything at either vCenter changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import start_target, stop_target
from pyVmomi import vim

from cdp.errors import CdpError, RemoteError
from cdp.failover import vsphere
from cdp.failover.datastore import ensure_marker
from cdp.failover.faults import server_thumbprint
from cdp.failover.guards import DISCARD
from cdp.failover.plan import Credentials

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
DISK = "4MiB"


@pytest.fixture
def protected(vcsim_binary: Path, tmp_path: Path) -> Iterator[Vcsim]:
    """The protected site's vCenter (no DR port groups)."""
    sim = start_vcsim(vcsim_binary, Inventory(portgroups=()), tmp_path / "prod-vcsim.log")
    try:
        yield sim
    finally:
        sim.close()


@pytest.fixture
async def bare_site(vcsim_fresh: Vcsim, tmp_path: Path) -> AsyncIterator[DrSite]:
    """A recovery site whose target holds nothing yet: the sim subprocess is the source."""
    target = await start_target(str(tmp_path / "target"), history_window_s=3600.0)
    site = DrSite(vcsim_fresh, target, tmp_path, server_thumbprint(vcsim_fresh.host,
                  vcsim_fresh.port, 5))  # fmt: skip
    cred = tmp_path / "vcenter.cred"
    cred.write_text(yaml.safe_dump({"user": vcsim_fresh.user, "password": vcsim_fresh.password}))
    cred.chmod(0o600)
    site.si = vcsim_fresh.connect()
    mount(site.si, site.replicas)
    ensure_marker(str(site.replicas))
    try:
        yield site
    finally:
        await stop_target(target)


def start_sim(site: DrSite, *extra: str, iops: int = 200) -> subprocess.Popen[str]:
    """``cdp sim run`` writing g1 (db01, app01; one 4 MiB disk each) to the site's target."""
    return subprocess.Popen(
        [sys.executable, "-m", "cdp", "sim", "run", "--target", site.target.address,
         "--insecure", "--group", GROUP, "--vm", VMS[0], "--vm", VMS[1], "--disks", "1",
         "--disk-size", DISK, "--iops", str(iops), "--seconds", "600",
         "--dir", str(site.root / "source"), "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


async def durable_seq(site: DrSite) -> int:
    try:
        groups = (await site.target.client.status(GROUP)).groups
    except RemoteError as exc:  # before the sim's first handshake
        assert exc.code == "NOT_FOUND"
        return 0
    return groups[0].durable_seq if groups else 0


async def wait_durable(site: DrSite, above: int, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    while (seq := await durable_seq(site)) <= above:
        assert time.monotonic() < deadline, f"durable seq stuck at {seq}"
        await asyncio.sleep(0.05)
    return seq


def planned_orchestrator(site: DrSite, prod: Vcsim, **protected_over: Any) -> Any:
    protected_site = {
        "vcenter": {
            "url": f"https://{prod.host}:{prod.port}/sdk",
            "credentials": {"file": str(site.root / "vcenter.cred")},
            "tls": {"thumbprint": server_thumbprint(prod.host, prod.port, 5)},
        },
        "datacenter": "DC0",
        "shutdown": "power_off",
        **protected_over,
    }
    plan = site.plan(site.plan_dict(protected_site=protected_site))
    assert plan.protected_site is not None
    creds = Credentials(prod.user, prod.password)
    vc = plan.protected_site.vcenter
    return site.orchestrator(plan, connect_protected=lambda: vsphere.connect(vc, creds))


def power(si: Any) -> dict[str, str]:
    return {name: state for name, _, state in inventory(si)}


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGCONT)
    proc.kill()
    proc.communicate()


async def test_planned_failover_refuses_a_frozen_source(
    bare_site: DrSite, protected: Vcsim
) -> None:
    """A SIGSTOP'd source stays connected and quiet: the old drain passed it; the seal not."""
    site = bare_site
    sim = start_sim(site)
    try:
        await wait_durable(site, 50)
        prod_si = protected.connect()
        register_protected_vms(prod_si, site.root / "source")
        sim.send_signal(signal.SIGSTOP)  # frozen, not dead: its session stays open
        orch = planned_orchestrator(site, protected, seal_timeout_s=2)

        t0 = time.monotonic()
        with pytest.raises(CdpError, match="sim-host-1 of the group did not seal within 2 s"):
            await orch.failover("live", planned=True)

        assert time.monotonic() - t0 < 15
        assert power(prod_si) == {"db01": "poweredOn", "app01": "poweredOn"}  # untouched
        assert inventory(site.si) == []  # nothing registered at the recovery site
        await orch.rollback(DISCARD)  # the half-started operation goes; nothing to restart
        assert power(prod_si) == {"db01": "poweredOn", "app01": "poweredOn"}
        orch.close()
    finally:
        stop(sim)


async def failover(*args: str, timeout_s: float = 90) -> tuple[int, str, str]:
    """``cdp failover ARGS`` as an operator runs it (the loop keeps serving the target)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", "failover", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def planned_plan_file(site: DrSite, prod: Vcsim) -> str:
    protected_site = {
        "vcenter": {
            "url": f"https://{prod.host}:{prod.port}/sdk",
            "credentials": {"file": str(site.root / "vcenter.cred")},
            "tls": {"thumbprint": server_thumbprint(prod.host, prod.port, 5)},
        },
        "datacenter": "DC0",
        "shutdown": "power_off",
        "seal_timeout_s": 10,
    }
    return str(site.write_plan(site.plan_dict(protected_site=protected_site)))


async def test_planned_run_end_to_end_from_the_cli_with_a_sim_run_source(
    bare_site: DrSite, protected: Vcsim
) -> None:
    """`cdp sim run --power-plan` is the source, `cdp failover run --planned` the operator.

    The failover seals the sim, powers its VMs off through the protected vCenter (the sim
    sees it and its guests stop), and brings up recovered disks equal, byte for byte, to
    the sim's disks — every write the guests completed, acked before the seal. Rollback
    powers the VMs on again and lifts the seal: the sim writes again.
    """
    site = bare_site
    prod_si = protected.connect()
    register_protected_vms(prod_si, site.root / "source")
    plan = planned_plan_file(site, protected)
    sim = start_sim(site, "--power-plan", plan)
    try:
        await wait_durable(site, 100)

        code, out, err = await failover("run", "--plan", plan, "--planned", "--no-wait")

        assert code == 0, out + err
        assert power(prod_si) == {"db01": "poweredOff", "app01": "poweredOff"}
        assert "seal group g1: its source stops writing" in out + err
        assert power(site.si) == {"db01": "poweredOn", "app01": "poweredOn"}
        log = json.loads((site.state_dir / "dr-test" / "operation.json").read_text())
        (sealed,) = [s["result"]["sealed"][""] for s in log["steps"] if s["kind"] == "seal"]
        assert log["points"][GROUP]["seq"] == sealed == await durable_seq(site)
        assert f"sealed at seq {sealed}" in out + err  # the run says which seq it was
        await asyncio.sleep(1.0)  # the sim runs on, sealed and powered off: not one write
        assert await durable_seq(site) == sealed and sim.poll() is None
        for vm in VMS:  # zero loss: the recovered disks are the sim's disks
            source = site.root / "source" / vm / f"{vm}_0-flat.vmdk"
            recovered = site.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk"
            assert recovered.read_bytes() == source.read_bytes(), vm

        code, out, err = await failover(
            "rollback", "--plan", plan, "--discard-recovered-data", timeout_s=90
        )

        assert code == 0, out + err
        assert power(prod_si) == {"db01": "poweredOn", "app01": "poweredOn"}
        await wait_durable(site, sealed + 20)  # powered on, seal lifted: writing again
        assert sim.poll() is None
    finally:
        stop(sim)


def digest(site: DrSite, vm: str) -> bytes:
    return hashlib.sha256((site.root / "source" / vm / f"{vm}_0-flat.vmdk").read_bytes()).digest()


async def test_sim_run_obeys_the_power_state_at_the_protected_vcenter(
    bare_site: DrSite, protected: Vcsim
) -> None:
    """Powered off at the protected vCenter (by anyone), a sim guest stops writing; the
    other guest goes on; powered on again, it writes again."""
    site = bare_site
    prod_si = protected.connect()
    register_protected_vms(prod_si, site.root / "source")
    sim = start_sim(site, "--power-plan", planned_plan_file(site, protected))
    try:
        await wait_durable(site, 50)
        wait(find_one(prod_si, vim.VirtualMachine, "db01").PowerOffVM_Task())
        await asyncio.sleep(1.0)  # the sim polls every 0.25 s
        db01, app01 = digest(site, "db01"), digest(site, "app01")
        seq = await durable_seq(site)
        await asyncio.sleep(1.0)
        assert digest(site, "db01") == db01  # off: not one write
        assert digest(site, "app01") != app01  # on: writing
        await wait_durable(site, seq + 20)

        wait(find_one(prod_si, vim.VirtualMachine, "db01").PowerOnVM_Task())
        await asyncio.sleep(1.0)
        assert digest(site, "db01") != db01  # on again: writing again
        assert sim.poll() is None
    finally:
        stop(sim)
