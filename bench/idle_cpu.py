"""Idle CPU of a target with many registered, idle groups (issue 12, defect 7e).

Starts ``cdp target serve`` as a subprocess, registers N one-disk groups (each handshake
then ends its session), waits for the target to settle and reports the CPU the target
used over a quiet interval, in cores. Not a timed test: run it by hand::

    PYTHONPATH=$PWD python -m bench.idle_cpu --groups 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from bench.procfs import proc_cpu_s
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.rpc.client import ReplicationClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _register(address: str, groups: int) -> None:
    async with ReplicationClient(address) as client:
        for i in range(groups):
            spec = GroupSpec(f"idle{i}", (VmSpec(f"idle{i}-vm", (DiskSpec("0", 2**20),)),))
            await client.open_session("bench", spec, 0, 1)


def measure(groups: int, seconds: float) -> dict[str, float]:
    """Idle CPU of a target holding ``groups`` idle groups, in cores."""
    with tempfile.TemporaryDirectory() as tmp:
        data, ready, port = os.path.join(tmp, "t"), os.path.join(tmp, "ready"), _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cdp", "target", "serve", "--insecure", "--data-dir", data,
             "--listen", f"127.0.0.1:{port}", "--ready-file", ready],
            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            while not os.path.exists(ready):
                time.sleep(0.05)
            asyncio.run(_register(f"127.0.0.1:{port}", groups))
            time.sleep(2.0)  # settle
            cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
            time.sleep(seconds)
            cores = (proc_cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0)
        finally:
            proc.terminate()
            proc.wait(30)
    return {"groups": groups, "idle_cores": round(cores, 3)}


def main() -> None:
    """Print the idle CPU as JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--groups", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    print(json.dumps(measure(args.groups, args.seconds)))


if __name__ == "__main__":
    main()
