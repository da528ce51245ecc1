"""Issue 11 defect 5, the rest: a resync that cannot converge says so.

A real source (sim runner: buffer, dirty map, protection, shipper) behind a shaping link
proxy of 512 KiB/s, its buffer only 1 MiB, while its guest writes 4 MB/s of incompressible
random 4 KiB blocks over 2 x 4 MiB disks: the buffer fills, writes go to the dirty map, each
resync pass finds every region dirty again, and the final pass with guest writes held
cannot send 8 MiB within its 10 s, so the source starts over and over. The target's status
must say that the resync is not converging and what to do (GetStatus.resync_stalled_reason,
ETA 0), with progress still at most 100 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import pytest
from conftest import start_target, stop_target

from bench.linkproxy import LinkModel, LinkProxy
from cdp.errors import RemoteError
from cdp.source.protection import ProtectionConfig
from sim import runner
from sim.workload import WorkloadSpec

GROUP = "stall"
DISK = 4 * 2**20


# About 45 s of a real source behind a slow link: with the soaks (`pytest -m soak`). The
# reason itself is checked in the default run by tests/unit/test_resync_progress.py and
# tests/conformance/test_defect_resync_status.py against a real target.
@pytest.mark.soak
async def test_resync_faster_dirtied_than_sent_says_so(tmp_path: str) -> None:
    running = await start_target(os.path.join(tmp_path, "t"), history_window_s=3600.0)
    proxy = await LinkProxy(running.address, LinkModel("slow", rate_bytes_s=512 * 1024)).start()
    config = runner.SimConfig(
        target=proxy.address, folder=os.path.join(tmp_path, "src"), group=GROUP,
        vms=("vm-s",), disks_per_vm=2, disk_bytes=DISK,
        workload=WorkloadSpec("random", 4096, iops=1000, compressibility=0.0, seed=5),
        seconds=150.0,
        buffer_bytes=2**20, protection=ProtectionConfig(region_bytes=65536),
    )  # fmt: skip
    source = asyncio.ensure_future(runner.run(config, lambda p: None))
    reason, seen = "", None
    try:
        deadline = time.monotonic() + 140
        while not reason and time.monotonic() < deadline and not source.done():
            await asyncio.sleep(0.5)
            with contextlib.suppress(RemoteError):  # the group appears with the first session
                seen = (await running.client.status(GROUP)).groups[0]
            if seen is not None:
                assert seen.resync_received_bytes <= seen.resync_total_bytes, seen
                reason = seen.resync_stalled_reason
        assert reason, f"no stalled reason; last status: {seen}"
        assert "not converging" in reason and "write rate" in reason and "bandwidth" in reason
        assert seen is not None and seen.resync_eta_seconds == 0
    finally:
        source.cancel()
        with contextlib.suppress(BaseException):
            await source
        await proxy.close()
        await stop_target(running)
