"""Hostile load on a real target (RocksDB, segments, replica files, grpc.aio on loopback):
reads cancelled at random instants, a source at the edge of its send window.

Issue 12, defects 3 and 7.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import grpc
from conftest import Running, score, start_target, stop_target

from cdp.v1 import replication_pb2 as pb
from sim import runner
from sim.workload import WorkloadSpec

MiB = 2**20


def sim_config(
    r: Running, folder: str, group: str, seconds: float, **kw: object
) -> runner.SimConfig:
    return runner.SimConfig(
        target=r.address, folder=folder, group=group, vms=(f"{group}-vm",), disks_per_vm=1,
        disk_bytes=16 * MiB, seconds=seconds,
        workload=kw.pop("workload", WorkloadSpec("random", 65536, rate_mb_s=12, seed=3)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


async def applied_reaches(r: Running, group: str, seq: int, timeout_s: float) -> int:
    """Wait until the group's applied seq reaches ``seq``; return the applied seq at the end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        (status,) = r.target.status(group)
        if status.applied_seq >= seq or loop.time() > deadline:
            return status.applied_seq
        await asyncio.sleep(0.02)


async def test_cancelled_image_reads_do_not_stop_apply(running: Running, tmp_path: str) -> None:
    """Defect 3: ReadImage/CompareRegions with 10 ms deadlines while a source writes; the
    0 s window target must go on applying (before the fix apply stayed paused for good)."""
    config = sim_config(running, os.path.join(tmp_path, "src"), "cancel", 3.0)
    source = asyncio.create_task(runner.run(config))
    stub = running.client._stub
    await asyncio.sleep(0.5)  # the group exists
    cancelled = 0
    while not source.done():
        req = pb.ReadImageRequest(group_id="cancel", vm_id="cancel-vm", disk=0, at="latest")
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for _ in stub.ReadImage(req, timeout=0.01):
                pass
        cancelled += 1
    result = source.result()
    score("abusive clients tried")
    applied = await applied_reaches(running, "cancel", result["acked_seq"], 20.0)
    assert cancelled > 20
    assert applied == result["acked_seq"], f"apply stuck at {applied} of {result['acked_seq']}"


async def test_source_stays_inside_a_small_window(tmp_path: str) -> None:
    """Defect 7: the window is enforced (RESOURCE_EXHAUSTED naming window_bytes), and our
    own source never goes past it, even when the window is smaller than a few batches."""
    r = await start_target(os.path.join(tmp_path, "t"), window_bytes=256 * 1024)
    try:
        work = WorkloadSpec("sequential", 65536, rate_mb_s=40, compressibility=0.0, seed=7)
        result = await runner.run(sim_config(r, os.path.join(tmp_path, "src"), "win", 1.0,
                                             workload=work))  # fmt: skip
        assert result["writes"] >= 40
        assert result["acked_seq"] == result["writes"]
    finally:
        await stop_target(r)
