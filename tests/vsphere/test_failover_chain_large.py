"""Copy-free recovery of a VM whose disk holds 1 GiB of real data (vcsim + a real target).

The data goes through the real path: the simulated guest writes 1 GiB of random bytes
into a 2 GiB disk while the target keeps no history (window 0: the base replica holds
it all), then the target takes a one-hour window (as a config reload would) and the
guest writes a 1 MiB journal tail. A test and a live failover must then write only the
tail plus grain metadata before power-on (step log), not the data, and the recovered
chain must equal the point's export byte for byte (qemu-img compare).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from conftest import start_target

from bench.rto import write_source
from cdp.failover.datastore import ensure_marker
from cdp.failover.export import export_image
from cdp.failover.faults import server_thumbprint
from cdp.failover.guards import DISCARD

from .drsite import DrSite, mount
from .harness import Vcsim

# About 3 minutes (1 GiB written through the real path): with the long runs, behind `soak`
# (`pytest -m soak`, run with the benchmark suite), not in the default test run.
pytestmark = [pytest.mark.slow, pytest.mark.soak]
DATA = 2**30
VM = "db01"
GROUP = "bench"  # bench.rto.write_source's group


@pytest.fixture
async def big_site(vcsim_fresh: Vcsim, tmp_path: Path) -> AsyncIterator[tuple[DrSite, int]]:
    """A site whose one VM's disk holds 1 GiB in the base and a 1 MiB journal tail."""
    target = await start_target(str(tmp_path / "target"), history_window_s=0.0)
    thumbprint = server_thumbprint(vcsim_fresh.host, vcsim_fresh.port, 5)
    site = DrSite(vcsim_fresh, target, tmp_path, thumbprint)
    try:
        cred = tmp_path / "vcenter.cred"
        cred.write_text(
            yaml.safe_dump({"user": vcsim_fresh.user, "password": vcsim_fresh.password})
        )
        cred.chmod(0o600)
        tail = await write_source(target.address, tmp_path / "src", [VM], 5, DATA, target.target)
        site.si = vcsim_fresh.connect()
        mount(site.si, site.replicas)
        ensure_marker(str(site.replicas))
        yield site, tail
    finally:
        await site.close()


def _plan(site: DrSite) -> dict[str, object]:
    nic = [{"network": "VM Network"}]
    plan = site.plan_dict(
        groups=[{"name": GROUP, "vms": [{"name": VM, "cpus": 1, "memory_mb": 256, "nics": nic}]}],
        boot_order=[{"name": "db", "vms": [VM]}],
    )
    plan["recovery"] = {**plan["recovery"], "disks": "chain"}
    return plan


def _copied(site: DrSite) -> int:
    log = json.loads((site.state_dir / "dr-test" / "operation.json").read_text())
    exports = [s for s in log["steps"] if s["kind"] == "export"]
    assert exports and all(s["result"]["disks"] == "chain" for s in exports)
    return sum(int(s["result"]["bytes"]) for s in exports)


def _same(site: DrSite, top: Path, seq: int) -> None:
    info = subprocess.run(["qemu-img", "info", "--backing-chain", str(top)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert info.returncode == 0 and "vmfsSparse" in info.stdout, info.stderr
    point = site.root / f"point-{seq}.vmdk"
    same = subprocess.run(["qemu-img", "compare", str(top), str(point)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert same.returncode == 0, same.stdout + same.stderr


async def test_1gib_disk_test_and_live_failover_write_only_the_tail(
    big_site: tuple[DrSite, int],
) -> None:
    site, tail = big_site
    member = site.target.target.groups[GROUP]
    assert member.applier.applied_seq > 0  # the base holds the 1 GiB
    latest = (await site.target.client.list_points(GROUP))[-1].seq
    point = site.root / f"point-{latest}.vmdk"
    facts = await export_image(site.target.client, GROUP, VM, 0, str(latest), str(point))
    assert facts.bytes_written >= DATA  # the export copies the data; the chain must not
    assert facts.image.record_bytes <= 2 * tail  # the journal tail only (1 MiB of 4 KiB writes)
    # Bound: the tail, one 16 KiB grain table per tail record at most, the two grain
    # directories (4 bytes per 2 MiB each) and headers/descriptors.
    records = facts.image.records
    bound = facts.image.record_bytes + records * (16 * 2**10 + 32) + 2 * 4096 + 64 * 2**10
    orch = site.orchestrator(site.plan(_plan(site)))

    assert (await orch.failover("test"))["status"] == "testing"

    copied = _copied(site)
    assert 0 < copied <= bound and copied < DATA // 64, (copied, bound)
    _same(site, site.replicas / f"{VM}-test" / f"{VM}-test_0.vmdk", latest)
    assert (await orch.stop_test())["status"] == "test-stopped"
    assert member.holds.items() == {}

    result = await orch.failover("live", force_split_brain=True)

    assert result["status"] == "awaiting-commit"
    copied = _copied(site)
    assert 0 < copied <= bound and copied < DATA // 64, (copied, bound)
    _same(site, site.replicas / f"{VM}-dr" / f"{VM}_0.vmdk", latest)
    assert (await orch.rollback(DISCARD))["status"] == "rolled-back"
    assert member.holds.items() == {}
    orch.close()
