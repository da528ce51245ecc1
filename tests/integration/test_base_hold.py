"""Base holds (HoldBase) on a real target: the applier stops at the held seq and goes on
when the hold is lifted; the hold is persisted over a restart; a hold at a point the base
passed is OUT_OF_RANGE; a hold that keeps the journal past its size limit stops intake
with RESOURCE_EXHAUSTED naming the holders, the real source falls back to its dirty map,
and replication recovers by itself once the hold is lifted (docs/FAILOVER.md,
"Copy-free recovery")."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest
from conftest import Running, make_record, small_group, start_target, stop_target
from prometheus_client.registry import CollectorRegistry

from cdp.errors import RemoteError
from cdp.source.protection import ProtectionConfig
from cdp.web import TargetCollector
from sim import runner
from sim.workload import WorkloadSpec

GROUP = "hg"
VM = f"{GROUP}-vm0"
DISK = 4 * 2**20


async def write(r: Running, first: int, count: int, size: int = 4096) -> int:
    """``count`` records of ``size`` random bytes from seq ``first`` on, one batch each."""
    reply = await r.client.open_session("src", small_group(GROUP, disks=1), 0, first)
    stream = r.client.stream(reply.session_id)
    try:
        for seq in range(first, first + count):
            rec = make_record(seq, 0, (seq * size) % DISK, os.urandom(size), ts=time.time_ns())
            await stream.send([rec])
            ack = await stream.recv()
            assert ack is not None and ack.durable_seq == seq
    finally:
        stream.cancel()
    return first + count - 1


async def settle(r: Running, seconds: float = 0.3) -> int:
    """The applied seq after letting the applier run for a while."""
    await asyncio.sleep(seconds)
    return r.target.groups[GROUP].applier.applied_seq


def held_gauge(r: Running) -> float:
    """``cdp_group_base_held`` of the group as the /metrics collector reports it."""
    registry = CollectorRegistry()
    registry.register(TargetCollector(r.target))
    value = registry.get_sample_value("cdp_group_base_held", {"group": GROUP, "member": ""})
    assert value is not None
    return value


async def test_apply_stops_at_the_hold_survives_restart_and_resumes(tmp_path: Path) -> None:
    data = str(tmp_path / "t")
    r = await start_target(data)
    try:
        last = await write(r, 1, 8)
        assert await settle(r) == last
        assert held_gauge(r) == 0
        point = (await r.client.hold_base(GROUP, "failover/test/vm0", str(last))).point
        assert point.seq == last and held_gauge(r) == 1
        newest = await write(r, last + 1, 8)
        assert await settle(r) == last  # durable goes on, the base stays at the point
        assert (await r.client.status(GROUP)).groups[0].durable_seq == newest
    finally:
        await stop_target(r)
    r = await start_target(data)
    try:
        assert held_gauge(r) == 1
        newest = await write(r, newest + 1, 4)
        assert await settle(r) == last  # the hold came back from the index
        released = await r.client.hold_base(GROUP, "failover/test/vm0", release=True)
        assert released.released
        assert held_gauge(r) == 0
        for _ in range(100):
            if await settle(r, 0.05) == newest:
                break
        assert r.target.groups[GROUP].applier.applied_seq == newest
        again = await r.client.hold_base(GROUP, "failover/test/vm0", release=True)
        assert not again.released
    finally:
        await stop_target(r)


async def test_hold_at_a_point_the_base_passed_is_out_of_range(tmp_path: Path) -> None:
    r = await start_target(str(tmp_path / "t"))
    try:
        last = await write(r, 1, 8)
        assert await settle(r) == last
        with pytest.raises(RemoteError) as err:
            await r.client.hold_base(GROUP, "failover/test/vm0", str(last - 3))
        assert err.value.code == "OUT_OF_RANGE", str(err.value)
        assert r.target.groups[GROUP].holds.items() == {}  # nothing durable changed
        with pytest.raises(RemoteError) as bad:
            await r.client.hold_base(GROUP, "", "latest")
        assert bad.value.code == "INVALID_ARGUMENT" and "holder" in str(bad.value)
    finally:
        await stop_target(r)


async def test_held_journal_at_its_limit_refuses_intake_naming_holders(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = await start_target(str(tmp_path / "t"), journal_limit_bytes=256 * 2**10)
    try:
        last = await write(r, 1, 4)
        assert await settle(r) == last
        await r.client.hold_base(GROUP, "failover/test/db01", "latest")
        with caplog.at_level(logging.WARNING), pytest.raises(RemoteError) as err:
            await write(r, last + 1, 200, size=16384)  # 3 MiB against a 256 KiB limit
        assert err.value.code == "RESOURCE_EXHAUSTED", str(err.value)
        assert "failover/test/db01" in str(err.value)
        assert "failover/test/db01" in caplog.text
        assert r.target.groups[GROUP].applier.applied_seq == last  # the hold won
    finally:
        await stop_target(r)


async def test_held_journal_full_source_tracks_then_recovers(tmp_path: Path) -> None:
    """A long test meets the journal limit: the real source keeps the guest writing (dirty
    map), and once the test ends (hold lifted) it resyncs to the exact disk by itself."""
    r = await start_target(str(tmp_path / "t"), journal_limit_bytes=512 * 2**10)
    try:
        config = runner.SimConfig(
            target=r.address, folder=str(tmp_path / "src"), group="held", vms=("vm-h",),
            disk_bytes=DISK, seconds=4.0, buffer_bytes=256 * 1024,
            workload=WorkloadSpec("random", 4096, iops=600, compressibility=0.0, seed=3),
            protection=ProtectionConfig(region_bytes=65536, dirty_after_s=30),
        )  # fmt: skip
        progress: list[runner.Progress] = []

        async def hold_then_lift() -> None:
            await asyncio.sleep(0.6)
            await r.client.hold_base("held", "failover/test/vm-h", "latest")
            for _ in range(300):
                if progress and progress[-1].mode == "tracking":
                    break
                await asyncio.sleep(0.01)
            assert progress[-1].mode == "tracking", (
                "held journal full: the dirty map must take over"
            )
            assert r.target.groups["held"].applier.hold_seq > 0
            await asyncio.sleep(0.3)
            assert (await r.client.hold_base("held", "failover/test/vm-h", release=True)).released

        task = asyncio.ensure_future(hold_then_lift())
        result = await runner.run(config, progress.append)
        await task
        assert result["resyncs"] >= 1
        for n in range(2):
            buf = bytearray(DISK)
            async for msg in r.client.read_image("held", "vm-h", n, "latest"):
                if not msg.HasField("plan"):
                    buf[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
            assert bytes(buf) == (tmp_path / "src" / "vm-h" / f"vm-h_{n}-flat.vmdk").read_bytes()
    finally:
        await stop_target(r)
