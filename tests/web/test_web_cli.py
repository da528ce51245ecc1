"""``cdp target serve --http`` as a real subprocess: the web edge runs in the target's
process, and the flag is validated and off by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import aiohttp
from helpers import TargetProcess, free_port

from sim import runner
from sim.workload import WorkloadSpec

GROUP = "web-cli-group"


async def test_target_serve_http_serves_status(tmp_path: str) -> None:
    target = TargetProcess(os.path.join(tmp_path, "target"), free_port(), "--http", "127.0.0.1:0")
    target.start()
    try:
        with open(target.data_dir + ".ready") as f:
            http_address = json.load(f)["http_address"]  # port 0: the one it bound
        host, _, http_port = http_address.rpartition(":")
        assert host == "127.0.0.1" and int(http_port) > 0
        sim = await runner.run(
            runner.SimConfig(
                target=target.address,
                folder=os.path.join(tmp_path, "src"),
                group=GROUP,
                vms=("web-cli-vm",),
                disks_per_vm=1,
                disk_bytes=8 * 2**20,
                workload=WorkloadSpec("random", 4096, iops=500, seed=3),
                seconds=0.3,
            )  # fmt: skip
        )
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{http_port}/api/v1/status") as resp,
        ):
            assert resp.status == 200
            data = await resp.json()
    finally:
        assert target.stop() == 0
    (g,) = data["groups"]
    assert g["group_id"] == GROUP and g["durable_seq"] == sim["acked_seq"] > 0


async def test_target_serve_without_http_serves_no_web(tmp_path: str) -> None:
    target = TargetProcess(os.path.join(tmp_path, "target"), free_port())
    target.start()
    try:
        with open(target.data_dir + ".ready") as f:
            assert json.load(f)["http_address"] == ""
    finally:
        assert target.stop() == 0


def test_target_serve_bad_http_exits_2(tmp_path: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cdp", "target", "serve", "--insecure",
         "--data-dir", os.path.join(tmp_path, "t"), "--http", "no-port"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--http" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(os.path.join(tmp_path, "t"))  # nothing started


def test_target_serve_help_mentions_http() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cdp", "target", "serve", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "--http" in proc.stdout and "/metrics" in proc.stdout
