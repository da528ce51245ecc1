"""Fault injection with a scorecard: link cuts and stalls through a TCP proxy, SIGKILL of
the target (during streaming, apply and resync), malformed messages, corrupted bytes.

The default run is short; ``pytest -m soak`` runs long randomized chaos (bench does).
Every check that matters is an assertion; the scorecard (printed at the end of the
pytest run) counts what was survived.
"""

from __future__ import annotations

import asyncio
import os
import random

import grpc
import pytest
from conftest import make_record, score, small_group
from helpers import TargetProcess, file_digest, free_port, replica_extent

from bench.linkproxy import LinkProxy
from cdp import codec
from cdp.rpc import wire
from cdp.rpc.client import ReplicationClient
from cdp.source.protection import ProtectionConfig
from sim import runner
from sim.workload import WorkloadSpec

CODES_FOR_BAD_INPUT = {
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "FAILED_PRECONDITION",
    "DATA_LOSS",
    "ALREADY_EXISTS",
    "OUT_OF_RANGE",
    "RESOURCE_EXHAUSTED",
}


class Chaos:
    """A target subprocess behind a TCP proxy, a simulated source, seeded faults."""

    def __init__(self, tmp: str, seed: int) -> None:
        self.rng = random.Random(seed)
        self.data_dir = os.path.join(tmp, f"target-{seed}")
        self.target = TargetProcess(self.data_dir, free_port(), "--history-window", "0")
        self.progress: list[runner.Progress] = []
        self.acked_at_kill: list[int] = []
        self.durable_after: list[int] = []

    def mode(self) -> str:
        return self.progress[-1].mode if self.progress else "journaling"

    async def kill_and_restart(self) -> None:
        during = self.mode()
        self.acked_at_kill.append(self.progress[-1].acked_seq if self.progress else 0)
        self.target.kill()
        await asyncio.sleep(self.rng.uniform(0.05, 0.4))
        await asyncio.to_thread(self.target.start)
        async with ReplicationClient(self.target.address) as c:
            self.durable_after.append((await c.status("chaos")).groups[0].durable_seq)
        score("target crashes survived")
        if during == "resyncing":
            score("crashes during resync")

    async def cut(self, proxy: LinkProxy, seconds: float) -> None:
        proxy.outage()
        await asyncio.sleep(seconds)
        proxy.restore()
        score("outages survived")

    async def stall(self, proxy: LinkProxy) -> None:
        proxy.stall = True
        await asyncio.sleep(self.rng.uniform(0.1, 0.6))
        proxy.stall = False
        score("stalls survived")

    async def kill_in_resync(self, proxy: LinkProxy) -> None:
        await self.cut(proxy, 0.6)  # past dirty_after: the source tracks writes, then resyncs
        for _ in range(200):
            if self.mode() == "resyncing":
                break
            await asyncio.sleep(0.01)
        await self.kill_and_restart()

    async def inject(self, proxy: LinkProxy, kinds: list[str]) -> None:
        await asyncio.sleep(0.5)
        for kind in kinds:
            if kind == "cut":
                await self.cut(proxy, self.rng.uniform(0.2, 1.0))
            elif kind == "stall":
                await self.stall(proxy)
            elif kind == "kill":
                await self.kill_and_restart()
            else:
                await self.kill_in_resync(proxy)
            await asyncio.sleep(self.rng.uniform(0.2, 0.6))

    async def check(self, result: dict[str, object]) -> None:
        pairs = list(zip(self.acked_at_kill, self.durable_after, strict=True))
        lost = sum(1 for a, d in pairs if d < a)
        score("acked writes lost", lost)
        assert lost == 0, pairs
        async with ReplicationClient(self.target.address) as c:
            for _ in range(1000):
                g = (await c.status("chaos")).groups[0]
                if g.applied_seq >= g.durable_seq:
                    break
                await asyncio.sleep(0.02)
        for d in result["disks"]:  # type: ignore[attr-defined]
            same = file_digest(d["vmdk"].replace(".vmdk", "-flat.vmdk")) == file_digest(
                replica_extent(self.data_dir, d["vm"], d["disk"])
            )
            score("replicas compared")
            score("replicas identical after drain", int(same))
            assert same, d


async def chaos(tmp: str, seed: int, seconds: float, faults: int | list[str]) -> None:
    c = Chaos(tmp, seed)
    kinds = (
        faults
        if isinstance(faults, list)
        else [c.rng.choice(["cut", "stall", "kill", "kill-in-resync"]) for _ in range(faults)]
    )
    c.target.start()
    proxy = await LinkProxy(c.target.address).start()
    config = runner.SimConfig(
        target=proxy.address,
        folder=os.path.join(tmp, f"src-{seed}"),
        group="chaos",
        vms=("vm-c",),
        disk_bytes=8 * 2**20,
        seconds=seconds,
        workload=WorkloadSpec("overwrite", 4096, iops=1500, seed=seed),
        protection=ProtectionConfig(region_bytes=65536, dirty_after_s=0.4),
    )
    injector = asyncio.ensure_future(c.inject(proxy, kinds))
    try:
        result = await runner.run(config, c.progress.append)
        await injector
        await c.check(result)
    finally:
        injector.cancel()
        await proxy.close()
        c.target.stop()


async def test_chaos_short(tmp_path: str) -> None:
    await chaos(str(tmp_path), seed=1, seconds=7.0,
                faults=["cut", "kill", "kill-in-resync", "stall", "cut"])  # fmt: skip


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(2, 8))
async def test_chaos_soak(tmp_path: str, seed: int) -> None:
    await chaos(str(tmp_path), seed=seed, seconds=20.0, faults=18)


async def test_malformed_messages_are_rejected_and_the_target_stays_healthy(running) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    spec = small_group("fuzz", disks=2, size=1 << 20)
    for _ in range(150):
        reply = await running.client.open_session("fuzzer", spec, 0, 0)
        offset = rng.randrange(0, 3) * 512 + rng.choice([0, 0, 1])
        data = os.urandom(rng.choice([512, 1024, 4096]))
        rec = make_record(reply.durable_seq + 1, rng.randrange(3), offset, data)
        req = wire.records_to_pb(reply.session_id, [rec])
        field = rng.choice(["offset", "length", "xxh3", "payload", "disk", "seq", "clen", "none"])
        r = req.records[0]
        if field == "offset":
            r.offset_bytes = rng.choice([2**40, 1 << 20, 7])
        elif field == "length":
            r.length_bytes = rng.choice([0, 100, 2**25])
        elif field == "xxh3":
            r.xxh3_64 ^= 1 << rng.randrange(64)
        elif field == "payload":
            req.payload = os.urandom(len(req.payload))
        elif field == "disk":
            r.disk_index = rng.choice([2, 9, 2**31])
        elif field == "seq":
            r.seq += rng.choice([1, 5, 10**6])
        elif field == "clen":
            r.compressed_length_bytes += rng.choice([-1, 1])
        call = running.client._stub.StreamJournal(iter([req]))
        score("malformed inputs tried")
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as exc:
            assert exc.code().name in CODES_FOR_BAD_INPUT, (field, exc.code(), exc.details())
            score("malformed inputs rejected")
    # still healthy: a good batch is acked
    reply = await running.client.open_session("fuzzer", spec, 0, 0)
    stream = running.client.stream(reply.session_id)
    await stream.send([make_record(reply.durable_seq + 1, 0, 0, b"ok" * 256)])
    ack = await stream.recv()
    assert ack is not None and ack.durable_seq == reply.durable_seq + 1
    stream.cancel()


async def test_corrupted_segment_bytes_are_detected(tmp_path: str) -> None:
    from conftest import start_target, stop_target

    data_dir = os.path.join(tmp_path, "t")
    r = await start_target(data_dir, history_window_s=3600)
    spec = small_group("cor", disks=1)
    reply = await r.client.open_session("s", spec, 0, 1)
    stream = r.client.stream(reply.session_id)
    await stream.send([make_record(i, 0, i * 4096, os.urandom(4096)) for i in range(1, 9)])
    assert (await stream.recv()).durable_seq == 8  # type: ignore[union-attr]
    stream.cancel()
    await stop_target(r)
    seg_dir = os.path.join(data_dir, "journal", "cor")
    seg = os.path.join(seg_dir, sorted(os.listdir(seg_dir))[0])
    with open(seg, "r+b") as f:
        f.seek(os.path.getsize(seg) // 2)
        f.write(b"\xde\xad\xbe\xef")
    r = await start_target(data_dir, history_window_s=3600)
    try:
        status = (await r.client.status("cor")).groups[0]
        assert status.state == 4  # GROUP_STATE_ERROR: reported, never passed on
        score("corruptions detected")
    finally:
        await stop_target(r)
    assert codec.checksum(b"") >= 0


async def test_corruption_rows(tmp_path: str) -> None:
    """The corruption matrix (journal, index and EXTRA_CASES) adds its rows to the scorecard."""
    from test_corruption_matrix import run_matrix

    rows = await run_matrix(str(tmp_path))
    assert not [r for r in rows if r.verdict == "SILENTLY WRONG"]
