"""The dry run prices a copy-free (chain) recovery by its journal tail, not the disk's data.

A VM whose base replica holds 32 MiB of random data written through the real path (the
simulated guest, the source, the target with no history), then a journal tail of 4 KiB
writes. ``run --dry-run`` with ``recovery.disks: chain`` must ask for the tail plus grain
metadata (``bytes_to_prepare``, also the datastore room check) and estimate the RTO from
that, while ``copy`` still asks for the data.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from conftest import start_target

from bench.rto import write_source
from cdp.failover.datastore import ensure_marker
from cdp.failover.faults import server_thumbprint
from cdp.failover.steps import DISK_FIXED_S

from .drsite import DrSite, mount
from .harness import Vcsim

DATA = 32 * 2**20
VM = "db01"
GROUP = "bench"  # bench.rto.write_source's group


@pytest.fixture
async def data_site(vcsim_fresh: Vcsim, tmp_path: Path) -> AsyncIterator[tuple[DrSite, int]]:
    """One VM whose base holds DATA bytes, and its journal tail's size."""
    target = await start_target(str(tmp_path / "target"), history_window_s=0.0)
    site = DrSite(
        vcsim_fresh, target, tmp_path, server_thumbprint(vcsim_fresh.host, vcsim_fresh.port, 5)
    )
    try:
        cred = tmp_path / "vcenter.cred"
        cred.write_text(
            yaml.safe_dump({"user": vcsim_fresh.user, "password": vcsim_fresh.password})
        )
        cred.chmod(0o600)
        tail = await write_source(target.address, tmp_path / "src", [VM], 3, DATA, target.target)
        site.si = vcsim_fresh.connect()
        mount(site.si, site.replicas)
        ensure_marker(str(site.replicas))
        yield site, tail
    finally:
        await site.close()


def _plan(site: DrSite, disks: str) -> dict[str, object]:
    nic = [{"network": "VM Network"}]
    plan = site.plan_dict(
        groups=[{"name": GROUP, "vms": [{"name": VM, "cpus": 1, "memory_mb": 256, "nics": nic}]}],
        boot_order=[{"name": "db", "vms": [VM]}],
    )
    plan["recovery"] = {**plan["recovery"], "disks": disks}
    return plan


async def test_the_chain_estimate_follows_the_tail_not_the_data(
    data_site: tuple[DrSite, int],
) -> None:
    site, tail = data_site
    plans = {}
    for disks in ("chain", "copy"):
        orch = site.orchestrator(site.plan(_plan(site, disks)))
        survey = await orch.dry_run("live")
        orch.close()
        assert survey.operation is not None, survey
        plans[disks] = survey.operation
    chain, copy = plans["chain"], plans["copy"]
    assert copy.bytes_to_prepare >= DATA  # a copy writes the data the base holds
    # The tail plus grain metadata: one 16 KiB table per tail record at most, two headers
    # and grain directories (4 bytes per 2 MiB each) and descriptors.
    records = tail // 4096
    assert tail <= chain.bytes_to_prepare <= tail + records * 16 * 2**10 + 64 * 2**10
    rate = site.plan(_plan(site, "chain")).recovery.estimate_export_bytes_per_s
    saved = (copy.bytes_to_prepare - chain.bytes_to_prepare) / rate
    fixed = DISK_FIXED_S["copy"] - DISK_FIXED_S["chain"]  # one disk: a chain costs more
    assert copy.rto_estimate_s - chain.rto_estimate_s == pytest.approx(saved + fixed, abs=1e-3)

    # The figure is an upper bound of what the chain build then really writes.
    orch = site.orchestrator(site.plan(_plan(site, "chain")))
    assert (await orch.failover("test"))["status"] == "testing"
    log = json.loads((site.state_dir / "dr-test" / "operation.json").read_text())
    written = sum(s["result"]["bytes"] for s in log["steps"] if s["kind"] == "export")
    assert tail <= written <= chain.bytes_to_prepare
    assert (await orch.stop_test())["status"] == "test-stopped"
    orch.close()
