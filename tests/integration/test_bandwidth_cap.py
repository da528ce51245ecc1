"""A capped source through a real link proxy: the wire carries at most the cap, and on the
shared cap the high-priority group keeps its RPO while the low-priority one takes the lag.

Real target (grpc.aio, RocksDB), real shippers and channels, :class:`bench.linkproxy.
LinkProxy` counting the bytes on the wire. The margins are generous: this checks
behaviour, the bench suite measures (``cap-10mb``, ``priority-2-groups``).
"""

from __future__ import annotations

import dataclasses
import os

from conftest import Running

from bench.linkproxy import LinkModel, LinkProxy
from cdp.source.bandwidth import Schedule
from sim import runner
from sim.workload import WorkloadSpec

MiB = 2**20
CAP = 1 * MiB


def _configs(root: str, address: str, cap: float) -> list[runner.SimConfig]:
    base = runner.SimConfig(
        target=address, folder=root, group="cap", vms=("v",), disks_per_vm=1,
        disk_bytes=16 * MiB, seconds=1.5,
        workload=WorkloadSpec("random", 64 * 1024, 1.0, compressibility=0.0, seed=3),
        source_bandwidth=Schedule(cap),
    )  # fmt: skip
    return [
        dataclasses.replace(c, priority=p)
        for c, p in zip(runner.group_configs(base, 2), ("high", "low"), strict=True)
    ]


async def test_a_capped_source_sends_at_most_its_cap_and_serves_high_priority_first(
    running_history: Running, tmp_path: str
) -> None:
    proxy = await LinkProxy(running_history.address, LinkModel("counting")).start()
    try:
        result = await runner.run_groups(_configs(str(tmp_path), proxy.address, CAP))
    finally:
        await proxy.close()
    wrote = result["bytes"]
    assert wrote > 2.5 * MiB, "the guests wrote ~3 MB, well above what 1 MiB/s carries in 1.5 s"
    assert proxy.bytes_up >= wrote, "incompressible: every byte went over the wire"
    assert proxy.wire_rate_up() <= CAP * 1.3, f"{proxy.wire_rate_up() / MiB:.2f} MiB/s"
    high, low = result["groups"]
    assert high["rpo_p99_s"] < low["rpo_p99_s"], (high["rpo_p99_s"], low["rpo_p99_s"])
    assert high["rpo_p99_s"] < 1.0


async def test_without_a_cap_the_same_run_goes_faster(
    running_history: Running, tmp_path: str
) -> None:
    """The check above can fail: uncapped, the same guests fill the wire well past 1 MiB/s."""
    configs = [
        dataclasses.replace(c, source_bandwidth=Schedule())
        for c in _configs(os.path.join(str(tmp_path), "u"), "", CAP)
    ]
    proxy = await LinkProxy(running_history.address, LinkModel("counting")).start()
    try:
        configs = [dataclasses.replace(c, target=proxy.address) for c in configs]
        await runner.run_groups(configs)
    finally:
        await proxy.close()
    assert proxy.wire_rate_up() > CAP * 1.3
