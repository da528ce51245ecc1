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

from cdp.errors import CdpError, RemoteError
from cdp.failover import vsphere
from cdp.failover.datastore import ensure_marker
from cdp.failover.faults import server_thumbprint
from cdp.failover.guards import DISCARD
from cdp.failover.plan import Credentials

from .drsite import GROUP, VMS, DrSite, inventory, mount, register_protected_vms
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
