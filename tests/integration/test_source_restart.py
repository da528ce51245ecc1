"""The source side killed and restarted (a host crash): nothing unacked is silently lost."""

from __future__ import annotations

import asyncio
import os

from conftest import Running

from cdp.source.protection import ProtectionConfig
from sim import runner
from sim.workload import WorkloadSpec

DISK = 4 * 2**20


async def image_of(r: Running, group: str, vm: str, disk: int) -> bytes:
    buf = bytearray(DISK)
    async for msg in r.client.read_image(group, vm, disk, "latest"):
        if not msg.HasField("plan"):
            buf[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
    return bytes(buf)


async def test_restarted_source_rejoins_with_a_full_resync(
    running_history: Running, tmp_path: str
) -> None:
    folder = os.path.join(tmp_path, "src")
    config = runner.SimConfig(
        target=running_history.address,
        folder=folder,
        group="host",
        vms=("vm-h",),
        disk_bytes=DISK,
        workload=WorkloadSpec("random", 4096, iops=2000, seed=8),
        seconds=5.0,
        protection=ProtectionConfig(region_bytes=65536),
    )
    first = asyncio.ensure_future(runner.run(config))
    await asyncio.sleep(1.0)
    first.cancel()  # the host dies: its buffer (unacked writes) is gone, the disks stay
    await asyncio.gather(first, return_exceptions=True)
    before = (await running_history.client.status("host")).groups[0].durable_seq
    assert before > 0

    second = runner.SimConfig(
        **{
            **config.__dict__,
            "seconds": 1.0,
            "workload": WorkloadSpec("random", 4096, iops=1000, seed=9),
        }
    )
    result = await runner.run(second)
    assert result["resyncs"] == 1, "the restarted source covered what it lost by a resync"
    after = (await running_history.client.status("host")).groups[0].durable_seq
    assert after > before, "seqs continue after the target's durable point"
    for n in range(2):
        with open(os.path.join(folder, "vm-h", f"vm-h_{n}-flat.vmdk"), "rb") as f:
            assert await image_of(running_history, "host", "vm-h", n) == f.read()
