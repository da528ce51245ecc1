"""kill -9 of a target with an encrypted, chained journal at random instants: no acked
write lost, and afterwards `cdp journal verify` proves the chain intact."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from helpers import TargetProcess, free_port

from cdp.cli.journal import verify
from cdp.rpc.client import ReplicationClient
from sim import runner
from sim.workload import WorkloadSpec

KEY_LINE = "k1:" + "5a" * 32


async def test_sigkill_with_encryption_and_chaining_then_verify(tmp_path: str) -> None:
    data_dir = os.path.join(tmp_path, "target")
    key_file = os.path.join(tmp_path, "journal.key")
    with open(key_file, "w") as f:
        f.write(KEY_LINE + "\n")
    os.chmod(key_file, 0o600)
    flags = ("--history-window", "1h", "--checkpoint-interval", "0.2")
    target = TargetProcess(data_dir, free_port(), *flags, "--journal-key-file", key_file)
    target.start()
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    acked_before_kill: list[int] = []
    durable_after_restart: list[int] = []
    config = runner.SimConfig(
        target=target.address,
        folder=os.path.join(tmp_path, "src"),
        group="crash",
        vms=("vm-c",),
        disks_per_vm=2,
        disk_bytes=8 * 2**20,
        workload=WorkloadSpec("overwrite", 4096, iops=3000, seed=12),
        seconds=10.0,
    )
    progress: list[runner.Progress] = []

    run_done = asyncio.Event()

    async def streaming_again(after_seq: int) -> bool:
        while not (progress and progress[-1].connected and progress[-1].acked_seq > after_seq):
            if run_done.is_set():
                return False
            await asyncio.sleep(0.02)
        return True

    async def killer() -> None:
        for _ in range(3):  # a restart takes seconds on a loaded machine: 2 or 3 kills
            if not await streaming_again(acked_before_kill[-1] if acked_before_kill else 0):
                return
            await asyncio.sleep(rng.uniform(0.05, 0.6))  # a random instant of the stream
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
        run_done.set()
        await asyncio.wait_for(kill_task, 30)
        assert len(acked_before_kill) >= 2, "the run should outlast at least two kills"
        assert result["sessions"] >= len(acked_before_kill) + 1, "reconnected after each kill"
        for acked, durable in zip(acked_before_kill, durable_after_restart, strict=True):
            assert durable >= acked, "an acked write was lost"
        assert result["acked_seq"] == result["writes"]
        async with ReplicationClient(target.address) as c:
            g = (await c.status("crash")).groups[0]
            assert g.durable_seq == result["writes"], "every write journaled exactly once"
    finally:
        kill_task.cancel()
        target.stop_or_kill()
    (v,) = verify(data_dir, None, key_file)
    assert v.intact, v.problems
    assert v.records == result["writes"] and v.acked_seq == result["writes"]
    assert v.checkpoint_seq is not None
    assert len(v.segments) >= len(acked_before_kill) + 1  # a new one (new AES key) per start
    assert {s.key_id for s in v.segments} == {"k1"} and all(s.chained for s in v.segments)
    # the same data dir without the key: the target refuses to start, naming the key id
    nokey = TargetProcess(data_dir, free_port(), *flags)
    try:
        with pytest.raises(RuntimeError, match="key id 'k1'"):
            nokey.start()
    finally:
        if nokey.proc is not None and nokey.proc.stderr is not None:
            nokey.proc.stderr.close()
