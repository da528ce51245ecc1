"""A full volume under the target's data dir, with a real simulated source: intake answers
RESOURCE_EXHAUSTED, the source keeps the guest running (buffer, then dirty map), nothing
durable is damaged, and replication recovers by itself when space returns."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import start_target, stop_target

from cdp.source.protection import ProtectionConfig
from sim import runner
from sim.workload import WorkloadSpec

DISK = 4 * 2**20


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[str]:
    """A 64 MiB tmpfs for the target's data dir; skipped where mounting is not permitted."""
    mnt = tmp_path / "vol"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield str(mnt)
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path: str) -> str:
    """Write a file until the volume is full (unbuffered, so closing cannot fail)."""
    filler = os.path.join(path, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            os.write(fd, b"\1" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


async def test_full_target_volume_then_space_returns(volume: str, tmp_path: Path) -> None:
    r = await start_target(os.path.join(volume, "t"), history_window_s=3600)
    filler = ""
    try:
        config = runner.SimConfig(
            target=r.address, folder=str(tmp_path / "src"), group="vol", vms=("vm-v",),
            disk_bytes=DISK, seconds=4.0, buffer_bytes=512 * 1024,
            workload=WorkloadSpec("random", 4096, iops=800, compressibility=0.0, seed=2),
            protection=ProtectionConfig(region_bytes=65536, dirty_after_s=30),
        )  # fmt: skip
        progress: list[runner.Progress] = []

        async def disk_full_then_space() -> None:
            nonlocal filler
            await asyncio.sleep(0.8)
            filler = fill(volume)  # the target's volume is full from here on
            for _ in range(300):  # the source runs out of buffer and tracks writes
                if progress and progress[-1].mode == "tracking":
                    break
                await asyncio.sleep(0.01)
            assert progress[-1].mode == "tracking", "buffer full must fall back to the dirty map"
            await asyncio.sleep(0.5)
            os.unlink(filler)  # space returns; nothing else is done by hand

        task = asyncio.ensure_future(disk_full_then_space())
        result = await runner.run(config, progress.append)
        await task
        assert result["writes_per_s"] > 700, "the guest kept writing while the volume was full"
        assert result["resyncs"] >= 1
        timeline = await r.client.timeline("vol")
        causes = [s.cause for s in timeline.spans if not s.restorable]
        assert "resync (target journal full)" in causes, causes
        for n in range(2):
            buf = bytearray(DISK)
            async for msg in r.client.read_image("vol", "vm-v", n, "latest"):
                if not msg.HasField("plan"):
                    buf[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
            with open(str(tmp_path / "src" / "vm-v" / f"vm-v_{n}-flat.vmdk"), "rb") as f:
                assert bytes(buf) == f.read()
    finally:
        await stop_target(r)
