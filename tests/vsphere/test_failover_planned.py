"""Planned failover: stop the source VMs through the protected site's vCenter, drain the
journal, fail over at a bookmark after the last write: zero data loss.

Two simulators: the protected site's vCenter runs the source VMs (their folders are the
simulator's production disks), the recovery site's is the usual ``site``. The simulated
guests write until vCenter reports their VM powered off (``LiveSource.write_until_off``),
which is how "stopping the source's writes" is modelled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdp.failover import vsphere
from cdp.failover.errors import ReadinessError
from cdp.failover.faults import server_thumbprint
from cdp.failover.guards import DISCARD
from cdp.failover.plan import Credentials

from .drsite import GROUP, VMS, DrSite, inventory, register_protected_vms
from .harness import Inventory, Vcsim, start_vcsim


@pytest.fixture
def protected(vcsim_binary: Path, tmp_path: Path) -> Iterator[Vcsim]:
    """The protected site's vCenter (no DR port groups)."""
    sim = start_vcsim(vcsim_binary, Inventory(portgroups=()), tmp_path / "prod-vcsim.log")
    try:
        yield sim
    finally:
        sim.close()


def run_sources(site: DrSite, prod: Vcsim) -> Any:
    """Register the simulator's VMs (their real disks) at the protected site, powered on."""
    si = prod.connect()
    register_protected_vms(si, site.root / "source")
    return si


def planned_orchestrator(site: DrSite, prod: Vcsim, **protected_over: Any) -> Any:
    protected_site = {
        "vcenter": {
            "url": f"https://{prod.host}:{prod.port}/sdk",
            "credentials": {"file": str(site.root / "vcenter.cred")},
            "tls": {"thumbprint": server_thumbprint(prod.host, prod.port, 5)},
        },
        "datacenter": "DC0",
        "drain_quiet_s": 0.5,
        "drain_timeout_s": 20,
        **protected_over,
    }
    plan = site.plan(site.plan_dict(protected_site=protected_site))
    assert plan.protected_site is not None
    creds = Credentials(prod.user, prod.password)
    vc = plan.protected_site.vcenter
    return site.orchestrator(plan, connect_protected=lambda: vsphere.connect(vc, creds))


def power(si: Any) -> dict[str, str]:
    return {name: state for name, _, state in inventory(si)}


async def test_planned_failover_loses_no_write_and_rollback_restarts_sources(
    site: DrSite, protected: Vcsim
) -> None:
    prod_si = run_sources(site, protected)
    assert site.source is not None
    writer = asyncio.ensure_future(site.source.write_until_off(prod_si))
    await asyncio.sleep(0.3)  # the guests are busy writing
    orch = planned_orchestrator(site, protected)

    result = await orch.failover("live", planned=True)
    await asyncio.wait_for(writer, 5)

    assert power(prod_si) == {"db01": "poweredOff", "app01": "poweredOff"}
    point = result["points"][GROUP]
    assert point["label"].startswith("cdp-planned-dr-test-")
    durable = (await site.target.client.status(GROUP)).groups[0].durable_seq
    assert point["seq"] == durable == site.source.writes  # every write, nothing after
    for vm in VMS:  # zero data loss: the recovered disks are the source disks, byte for byte
        recovered = site.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk"
        assert recovered.read_bytes() == site.source.disk_path(vm).read_bytes()
    assert power(site.si) == {"db01": "poweredOn", "app01": "poweredOn"}
    log = json.loads((site.state_dir / "dr-test" / "operation.json").read_text())
    kinds = [s["kind"] for s in log["steps"]]
    assert kinds.index("seal") < kinds.index("stop-source")  # sealed before vCenter is touched
    assert log["steps"][0]["result"] == {"sealed": {"": point["seq"]}}
    stops = {s["vm"]: s["result"] for s in log["steps"] if s["kind"] == "stop-source"}
    assert stops == {vm: {"was": "poweredOn", "how": "guest shutdown"} for vm in VMS}

    rolled = await orch.rollback(DISCARD)

    assert rolled["status"] == "rolled-back"
    assert inventory(site.si) == []
    assert power(prod_si) == {"db01": "poweredOn", "app01": "poweredOn"}  # as before
    orch.close()


async def test_planned_failover_refuses_when_the_source_is_not_connected(
    site: DrSite, protected: Vcsim
) -> None:
    prod_si = run_sources(site, protected)
    assert site.source is not None
    await site.source.stop()  # link lost: the target cannot tell whether writes are missing
    site.source = None
    orch = planned_orchestrator(site, protected, shutdown="power_off")

    with pytest.raises(ReadinessError, match="drain g1: the source is disconnected: cdp cannot"):
        await orch.failover("live", planned=True)
    # Refused before anything changed: the sources still run, nothing was registered.
    assert power(prod_si) == {"db01": "poweredOn", "app01": "poweredOn"}
    assert inventory(site.si) == []
    assert not (site.state_dir / "dr-test" / "operation.json").exists()
    orch.close()


async def test_planned_failover_link_lost_after_the_seal_loses_nothing_then_rollback(
    site: DrSite, protected: Vcsim
) -> None:
    """The source drops as its VMs stop: the seal came first, so every write is proven.

    (Under the old timing drain this refused; the seal proved the last seq before vCenter
    was touched, and a source that cannot seal is refused: test_failover_seal.py.)
    """
    prod_si = run_sources(site, protected)
    orch = planned_orchestrator(site, protected, shutdown="power_off")
    source = site.source
    assert source is not None
    site.source = None

    async def drop_link_when_stopped() -> None:  # the link dies as the sources stop
        while power(prod_si) != {"db01": "poweredOff", "app01": "poweredOff"}:
            await asyncio.sleep(0.01)
        await source.stop()

    dropper = asyncio.ensure_future(drop_link_when_stopped())
    result = await orch.failover("live", planned=True)
    await dropper
    log = json.loads((site.state_dir / "dr-test" / "operation.json").read_text())
    (sealed,) = [s["result"]["sealed"] for s in log["steps"] if s["kind"] == "seal"]
    assert result["points"][GROUP]["seq"] == sealed[""] == source.writes  # every write
    for vm in VMS:  # zero data loss although the link was gone before the export
        recovered = site.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk"
        assert recovered.read_bytes() == source.disk_path(vm).read_bytes()

    await orch.rollback(DISCARD)  # undo the planned failover: the sources run again
    assert power(prod_si) == {"db01": "poweredOn", "app01": "poweredOn"}
    orch.close()
