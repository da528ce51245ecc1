"""Link outages: dirty-map fallback, delta resync by hashes, initial sync and seeding."""

from __future__ import annotations

import asyncio
import os
import shutil

from conftest import Running, start_target, stop_target

from bench.linkproxy import LinkProxy
from cdp.rpc.client import ReplicationClient
from cdp.source.protection import Mode, ProtectionConfig
from cdp.v1 import replication_pb2 as pb
from sim import runner
from sim.workload import WorkloadSpec

DISK = 8 * 2**20


async def image_of(
    client: ReplicationClient, group: str, vm: str, disk: int, at: str = "latest"
) -> bytes:
    buf = bytearray(DISK)
    async for msg in client.read_image(group, vm, disk, at):
        if not msg.HasField("plan"):
            buf[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
    return bytes(buf)


def source_bytes(result: dict, n: int) -> bytes:
    with open(result["disks"][n]["vmdk"].replace(".vmdk", "-flat.vmdk"), "rb") as f:
        return f.read()


async def test_outage_falls_back_to_dirty_map_then_resyncs(
    running_history: Running, tmp_path: str
) -> None:
    proxy = await LinkProxy(running_history.address).start()
    config = runner.SimConfig(
        target=proxy.address,
        folder=os.path.join(tmp_path, "src"),
        group="out",
        vms=("vm-o",),
        disks_per_vm=2,
        disk_bytes=DISK,
        workload=WorkloadSpec("overwrite", 4096, iops=2000, seed=3),
        seconds=3.0,
        protection=ProtectionConfig(region_bytes=65536, dirty_after_s=0.3),
    )
    seen_modes: list[str] = []

    async def outage() -> None:
        await asyncio.sleep(0.8)
        proxy.outage()
        await asyncio.sleep(1.2)  # longer than dirty_after_s: writes go to the dirty map
        proxy.restore()

    task = asyncio.ensure_future(outage())
    try:
        result = await runner.run(config, lambda p: seen_modes.append(str(p.connected)))
        await task
        assert result["resyncs"] >= 1, result
        assert 0 < result["resync_regions_sent"] < 2 * DISK // 65536, "only dirty regions travel"
        for n in range(2):
            assert await image_of(running_history.client, "out", "vm-o", n) == source_bytes(
                result, n
            )
        timeline = await running_history.client.timeline("out")
        gaps = [s for s in timeline.spans if not s.restorable]
        assert gaps and gaps[0].cause == "resync (link down)"
        gap = gaps[0]
        points = await running_history.client.list_points("out", labelled_only=False)
        seqs = [p.seq for p in points]
        assert not [s for s in seqs if gap.start_seq <= s <= gap.end_seq], (
            "no point inside a resync"
        )
        assert any(s < gap.start_seq for s in seqs), "the last point before the outage stays"
        assert any(s > gap.end_seq for s in seqs)
        # the point just before the gap still exports
        before = max(s for s in seqs if s < gap.start_seq)
        await image_of(running_history.client, "out", "vm-o", 0, str(before))
    finally:
        await proxy.close()


async def test_initial_sync_of_disks_that_hold_data(
    running_history: Running, tmp_path: str
) -> None:
    folder = os.path.join(tmp_path, "src")
    pre = runner.build_host(
        runner.SimConfig(target="x:1", folder=folder, vms=("vm-i",), disk_bytes=DISK)
    )
    for vm in pre.vms:  # data written before protection started
        for d in vm.disks:
            for i in range(40):
                d.write(i * 131072, os.urandom(4096))
    pre.close()
    config = runner.SimConfig(
        target=running_history.address,
        folder=folder,
        group="init",
        vms=("vm-i",),
        disk_bytes=DISK,
        workload=WorkloadSpec("random", 4096, iops=500, seed=4),
        seconds=1.0,
        protection=ProtectionConfig(region_bytes=65536, initial_sync=True),
    )
    result = await runner.run(config)
    assert result["resyncs"] == 1
    # regions that hold data travel, the all-zero rest is skipped by its hash
    assert 40 <= result["resync_regions_sent"] < 2 * DISK // 65536
    for n in range(2):
        assert await image_of(running_history.client, "init", "vm-i", n) == source_bytes(result, n)
    status = (await running_history.client.status("init")).groups[0]
    assert status.state in (pb.GROUP_STATE_REPLICATING, pb.GROUP_STATE_DISCONNECTED)


async def test_pre_seeded_replica_sends_only_differences(tmp_path: str) -> None:
    folder = os.path.join(tmp_path, "src")
    pre = runner.build_host(
        runner.SimConfig(target="x:1", folder=folder, vms=("vm-s",), disk_bytes=DISK)
    )
    for d in pre.vms[0].disks:
        for i in range(64):
            d.write(i * 65536, os.urandom(65536))
    pre.close()
    data_dir = os.path.join(tmp_path, "t")
    seeded = os.path.join(data_dir, "replicas", "vm-s")
    os.makedirs(seeded)
    for n in range(2):  # "restored from last night's backup": identical but for 3 regions
        src = os.path.join(folder, "vm-s", f"vm-s_{n}-flat.vmdk")
        shutil.copy(src, os.path.join(seeded, f"vm-s_{n}-flat.vmdk"))
        with open(src, "r+b") as f:
            for k in (1, 7, 33):
                f.seek(k * 65536)
                f.write(os.urandom(512))
    r = await start_target(data_dir, history_window_s=3600)
    try:
        config = runner.SimConfig(
            target=r.address,
            folder=folder,
            group="seed",
            vms=("vm-s",),
            disk_bytes=DISK,
            workload=WorkloadSpec("random", 4096, iops=1, seed=5),
            seconds=0.2,
            protection=ProtectionConfig(region_bytes=65536, initial_sync=True),
        )
        result = await runner.run(config)
        assert result["resync_regions_sent"] <= 2 * 3 + 2, result  # the 6 changed (+ stray writes)
        for n in range(2):
            assert await image_of(r.client, "seed", "vm-s", n) == source_bytes(result, n)
    finally:
        await stop_target(r)


async def test_full_buffer_does_not_stall_the_guest(
    running_history: Running, tmp_path: str
) -> None:
    proxy = await LinkProxy(running_history.address).start()
    proxy.stall = True  # the link hangs: nothing is acked, the buffer fills
    config = runner.SimConfig(
        target=proxy.address,
        folder=os.path.join(tmp_path, "src"),
        group="full",
        vms=("vm-f",),
        disk_bytes=DISK,
        workload=WorkloadSpec("random", 4096, iops=3000, compressibility=0, seed=6),
        seconds=1.5,
        buffer_bytes=256 * 1024,
        protection=ProtectionConfig(region_bytes=65536),
    )

    async def heal() -> None:
        await asyncio.sleep(2.0)
        proxy.stall = False

    task = asyncio.ensure_future(heal())
    try:
        result = await runner.run(config)
        await task
        assert result["writes_per_s"] > 2000, "the guest kept its rate while the buffer was full"
        assert result["resyncs"] >= 1
        for n in range(2):
            assert await image_of(running_history.client, "full", "vm-f", n) == source_bytes(
                result, n
            )
    finally:
        await proxy.close()


def test_mode_names() -> None:
    assert {m.value for m in Mode} == {"journaling", "tracking", "resyncing"}
