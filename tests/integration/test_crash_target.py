"""The target killed with SIGKILL mid-stream and restarted: no acked write lost, none twice."""

from __future__ import annotations

import asyncio
import os

from helpers import TargetProcess, file_digest, free_port, replica_extent

from cdp.rpc.client import ReplicationClient
from sim import runner
from sim.workload import WorkloadSpec


async def test_sigkill_mid_stream_then_restart(tmp_path: str) -> None:
    data_dir = os.path.join(tmp_path, "target")
    target = TargetProcess(data_dir, free_port(), "--history-window", "0")
    target.start()
    acked_before_kill: list[int] = []
    durable_after_restart: list[int] = []
    config = runner.SimConfig(
        target=target.address,
        folder=os.path.join(tmp_path, "src"),
        group="crash",
        vms=("vm-c",),
        disks_per_vm=2,
        disk_bytes=8 * 2**20,
        workload=WorkloadSpec("overwrite", 4096, iops=3000, seed=11),
        seconds=6.0,
    )
    progress: list[runner.Progress] = []

    async def streaming_again(after_seq: int) -> None:
        """Wait until the source is connected and acks have moved past ``after_seq``."""
        while not (
            progress and progress[-1].connected and progress[-1].acked_seq > after_seq + 200
        ):
            await asyncio.sleep(0.02)

    async def killer() -> None:
        for _ in range(3):
            await streaming_again(acked_before_kill[-1] if acked_before_kill else 0)
            acked_before_kill.append(progress[-1].acked_seq)
            target.kill()
            await asyncio.sleep(0.2)
            await asyncio.to_thread(target.start)
            async with ReplicationClient(target.address) as c:
                status = await c.status("crash")
                durable_after_restart.append(status.groups[0].durable_seq)

    kill_task = asyncio.ensure_future(killer())
    try:
        result = await runner.run(config, progress.append)
        await asyncio.wait_for(kill_task, 5)  # all three kills happened during the run
        assert result["sessions"] >= 4, "the source should have reconnected after each kill"
        # nothing acked before a kill is missing after the restart
        for acked, durable in zip(acked_before_kill, durable_after_restart, strict=True):
            assert durable >= acked
        assert result["acked_seq"] == result["writes"]
        async with ReplicationClient(target.address) as c:
            for _ in range(500):
                g = (await c.status("crash")).groups[0]
                if g.applied_seq >= result["acked_seq"]:
                    break
                await asyncio.sleep(0.02)
            assert g.durable_seq == result["writes"], "every write journaled exactly once"
            assert g.applied_seq == result["writes"]
    finally:
        kill_task.cancel()
        target.stop_or_kill()
    # overwrite-heavy: a record applied twice out of order would leave an old version
    for d in result["disks"]:
        source = d["vmdk"].replace(".vmdk", "-flat.vmdk")
        assert file_digest(source) == file_digest(replica_extent(data_dir, d["vm"], d["disk"]))
