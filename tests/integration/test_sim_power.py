"""``cdp sim run --power-file`` (issue 13 #7): the simulated host obeys its VMs' power.

A real ``cdp sim run`` subprocess writes to a real target; writing ``off`` into the power
file stops the guests' writes (the target's durable seq stops moving once the shipper has
drained), ``on`` resumes them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from conftest import Running

from cdp.errors import RemoteError


async def durable(r: Running) -> int:
    try:
        groups = (await r.client.status("pw")).groups
    except RemoteError as exc:  # before the sim's first handshake
        assert exc.code == "NOT_FOUND"
        return 0
    return groups[0].durable_seq if groups else 0


async def wait_for(r: Running, pred: object, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seq = await durable(r)
        if pred(seq):  # type: ignore[operator]
            return seq
        await asyncio.sleep(0.05)
    raise AssertionError(f"durable seq {await durable(r)} never met the condition")


async def test_sim_run_stops_writing_while_powered_off(running: Running, tmp_path: Path) -> None:
    power = tmp_path / "power"
    power.write_text("on\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdp", "sim", "run", "--target", running.address, "--insecure",
         "--group", "pw", "--vm", "v1", "--disks", "1", "--disk-size", "4MiB", "--iops", "300",
         "--seconds", "30", "--dir", str(tmp_path / "src"), "--power-file", str(power),
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        await wait_for(running, lambda s: s > 50, 20)
        power.write_text("off\n")
        await asyncio.sleep(0.5)  # the guests stop; the shipper drains what it holds
        stopped = await durable(running)
        await asyncio.sleep(1.0)
        assert await durable(running) == stopped  # powered off: not one more write
        power.write_text("on\n")
        await wait_for(running, lambda s: s > stopped + 20, 10)  # writing again
        assert proc.poll() is None, proc.communicate()[1][-2000:]
    finally:
        proc.kill()
        proc.communicate()
