"""Copy-free recovered disks (recovery.disks: chain) against vcsim and a real target.

The recovered disk is the base replica extent under a vmfsSparse delta of the journal
tail, under an empty delta that takes the VM's writes. Checked with real qemu-img: the
chain opens and equals the point's export byte for byte; writes into the top of the
chain never reach the base or the tail; the target holds the base while the chain
exists (apply stops at the point) and lets it go on stop-test; every earlier restore
point still exports the same bytes after the test.
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
from pathlib import Path

from bench.linkproxy import LinkModel, LinkProxy, mbit
from cdp.failover.export import export_image
from cdp.failover.guards import DISCARD

from .drsite import GROUP, VMS, DrSite, tree

REPO = Path(__file__).resolve().parents[2]


def _qemu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=120)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _exports(site: DrSite, seqs: list[int], root: Path) -> dict[tuple[str, int], str]:
    """sha256 of each VM's disk exported at each seq."""
    out = {}
    for seq in seqs:
        for vm in VMS:
            dest = root / f"{vm}-at-{seq}.vmdk"
            await export_image(site.target.client, GROUP, vm, 0, str(seq), str(dest))
            out[vm, seq] = _sha(root / f"{vm}-at-{seq}-flat.vmdk")
    return out


def _chain_plan(site: DrSite) -> dict[str, object]:
    plan = site.plan_dict()
    plan["recovery"] = {**plan["recovery"], "disks": "chain"}  # type: ignore[dict-item]
    return plan


async def test_chain_equals_export_base_untouched_points_intact(site: DrSite) -> None:
    assert site.source is not None
    points = [p.seq for p in await site.target.client.list_points(GROUP)]
    earlier = sorted({points[0], points[len(points) // 2], points[-1]})
    before = await _exports(site, earlier, site.root)
    base_before = {vm: tree(site.replicas / vm) for vm in VMS}
    orch = site.orchestrator(site.plan(_chain_plan(site)))

    result = await orch.failover("test")

    assert result["status"] == "testing"
    log = json.loads((site.state_dir / "dr-test" / "operation.json").read_text())
    exports = [s for s in log["steps"] if s["kind"] == "export"]
    assert exports and all(s["result"]["disks"] == "chain" for s in exports)
    tail = 0
    for vm in VMS:
        point = site.root / f"{vm}-point.vmdk"
        facts = await export_image(site.target.client, GROUP, vm, 0, str(points[-1]), str(point))
        tail += facts.image.record_bytes
        top = site.replicas / f"{vm}-test" / f"{vm}-test_0.vmdk"
        info = _qemu("info", "--backing-chain", str(top))
        assert info.returncode == 0 and "vmfsSparse" in info.stdout, info.stderr
        same = _qemu("compare", str(top), str(point))
        assert same.returncode == 0, same.stdout + same.stderr
        top_extent = site.replicas / f"{vm}-test" / f"{vm}-test_0-flat.vmdk"  # named for vcsim
        assert top_extent.read_bytes()[:4] == b"COWD"  # an empty sparse delta, no copy
    # Bytes written before power-on: the journal tail plus grain metadata, no copy of data.
    copied = sum(s["result"]["bytes"] for s in exports)
    assert 0 < copied <= tail * 2 + 2 * 2**20, (copied, tail)

    # The held base: replication goes on, nothing is applied past the point.
    status = (await site.target.client.status(GROUP)).groups[0]
    await site.source.write(30)
    assert (await site.target.client.status(GROUP)).groups[0].durable_seq == status.durable_seq + 30

    # The recovered VM's writes land in the top delta; base and tail never change.
    vm = VMS[0]
    folder = site.replicas / f"{vm}-test"
    tail_sha = _sha(folder / f"{vm}-test_0-tail-delta.vmdk")
    base_extent = site.replicas / vm / f"{vm}_0-flat.vmdk"
    base_sha = _sha(base_extent)
    write = subprocess.run(
        ["qemu-io", "-c", "write -P 0xab 0 64k", str(folder / f"{vm}-test_0.vmdk")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert write.returncode == 0, write.stderr
    assert _sha(base_extent) == base_sha
    assert _sha(folder / f"{vm}-test_0-tail-delta.vmdk") == tail_sha
    dump = _qemu("dd", "if=" + str(folder / f"{vm}-test_0.vmdk"), f"of={site.root / 'top.raw'}",
                 "bs=65536", "count=1")  # fmt: skip
    assert dump.returncode == 0 and (site.root / "top.raw").read_bytes() == b"\xab" * 65536

    stopped = await orch.stop_test()

    assert stopped["status"] == "test-stopped"
    assert {v: tree(site.replicas / v) for v in VMS} == base_before
    (site.root / "after").mkdir()
    after = await _exports(site, earlier, site.root / "after")
    assert after == before
    orch.close()


def _holds(site: DrSite) -> dict[str, int]:
    return site.target.target.groups[GROUP].holds.items()


async def test_rolled_back_live_failover_releases_holds_points_intact(site: DrSite) -> None:
    points = [p.seq for p in await site.target.client.list_points(GROUP)]
    earlier = sorted({points[0], points[len(points) // 2], points[-1]})
    before = await _exports(site, earlier, site.root)
    orch = site.orchestrator(site.plan(_chain_plan(site)))
    await orch.failover("live", force_split_brain=True)
    assert set(_holds(site)) == {f"failover/live/{vm}" for vm in VMS}, _holds(site)

    rolled = await orch.rollback(DISCARD)

    assert rolled["status"] == "rolled-back"
    assert _holds(site) == {}
    assert not [p for p in site.replicas.iterdir() if p.name.endswith("-dr")]
    (site.root / "after").mkdir()
    assert await _exports(site, earlier, site.root / "after") == before
    orch.close()


async def _cdp(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", "failover", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=str(REPO),
    )  # fmt: skip


async def test_kill_9_during_the_delta_build_then_test_again(site: DrSite) -> None:
    """SIGKILL `cdp failover test` while it writes a tail delta (a slow link to the target
    makes the build last seconds), run it again: the chain opens and equals the export."""
    assert site.source is not None
    await site.source.write(600)  # a tail of a few MiB per disk
    latest = (await site.target.client.list_points(GROUP))[-1].seq
    proxy = await LinkProxy(site.target.address, LinkModel("slow", mbit(8))).start()
    data = _chain_plan(site)
    data["target"] = {"address": proxy.address, "insecure": True}
    plan_path = str(site.write_plan(data))
    proc = await _cdp("test", "--plan", plan_path)
    deadline = time.monotonic() + 60
    while not list(site.replicas.glob("*-test/*-tail-delta.vmdk.tmp")):
        assert proc.returncode is None, (await proc.communicate())[1].decode()
        assert time.monotonic() < deadline, "the test never started a delta"
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    await proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert _holds(site)  # placed before the build; the run died holding it

    proxy.link = LinkModel()  # the resumed run goes at full speed
    again = await _cdp("test", "--plan", plan_path)
    out, err = await asyncio.wait_for(again.communicate(), 120)

    assert again.returncode == 0, err.decode() + out.decode()
    assert not list(site.replicas.glob("*-test/*.tmp"))
    for vm in VMS:
        point = site.root / f"{vm}-point.vmdk"
        await export_image(site.target.client, GROUP, vm, 0, str(latest), str(point))
        top = site.replicas / f"{vm}-test" / f"{vm}-test_0.vmdk"
        assert _qemu("info", "--backing-chain", str(top)).returncode == 0
        same = _qemu("compare", str(top), str(point))
        assert same.returncode == 0, same.stdout + same.stderr
    stop = await _cdp("stop-test", "--plan", plan_path)
    out, err = await asyncio.wait_for(stop.communicate(), 60)
    assert stop.returncode == 0, err.decode()
    assert _holds(site) == {}
    await proxy.close()
