"""End to end on loopback: simulated host -> real gRPC -> real target -> replica files."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest
from conftest import Running
from helpers import file_digest, replica_extent

from sim import runner
from sim.workload import WorkloadSpec


async def wait_applied(r: Running, group: str, seq: int, timeout_s: float = 30.0) -> None:
    async def poll() -> None:
        while True:
            (status,) = r.target.status(group)
            if status.applied_seq >= seq:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout_s)


WORKLOADS = [
    WorkloadSpec("random", 4096, iops=3000, seed=1),
    WorkloadSpec("random", 512, iops=2000, compressibility=0.0, seed=2),
    WorkloadSpec("sequential", 65536, rate_mb_s=40, seed=3),
    WorkloadSpec("mixed", rate_mb_s=40, seed=4),
    WorkloadSpec("overwrite", 4096, iops=4000, compressibility=1.0, seed=5),
    WorkloadSpec("sequential", 1048576, rate_mb_s=60, compressibility=0.0, seed=6),
]


@pytest.mark.parametrize(
    "workload", WORKLOADS, ids=lambda w: f"{w.pattern}-{w.block_bytes}-{w.seed}"
)
async def test_replica_equals_source(
    running: Running, tmp_path: str, workload: WorkloadSpec
) -> None:
    config = runner.SimConfig(
        target=running.address,
        folder=os.path.join(tmp_path, "src"),
        group="e2e",
        vms=("vm-a", "vm-b"),
        disks_per_vm=2,
        disk_bytes=16 * 2**20,
        workload=workload,
        seconds=1.0,
    )
    result = await runner.run(config)
    assert result["writes"] >= 40
    assert result["acked_seq"] == result["writes"]
    await wait_applied(running, "e2e", result["acked_seq"])
    for d in result["disks"]:
        source = d["vmdk"].replace(".vmdk", "-flat.vmdk")
        replica = replica_extent(running.data_dir, d["vm"], d["disk"])
        assert file_digest(source) == file_digest(replica), d


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed")
async def test_qemu_img_reads_and_compares_replica(running: Running, tmp_path: str) -> None:
    config = runner.SimConfig(
        target=running.address,
        folder=os.path.join(tmp_path, "src"),
        group="qemu",
        vms=("vm-q",),
        disks_per_vm=1,
        disk_bytes=8 * 2**20,
        workload=WorkloadSpec("mixed", rate_mb_s=20, seed=9),
        seconds=0.5,
    )
    result = await runner.run(config)
    await wait_applied(running, "qemu", result["acked_seq"])
    source = result["disks"][0]["vmdk"]
    replica = os.path.join(running.data_dir, "replicas", "vm-q", "vm-q_0.vmdk")
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", replica], capture_output=True, text=True
    )
    assert info.returncode == 0, info.stderr
    assert '"format": "vmdk"' in info.stdout and '"virtual-size": 8388608' in info.stdout
    same = subprocess.run(["qemu-img", "compare", source, replica], capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr
    # and it does notice a difference
    with open(replica.replace(".vmdk", "-flat.vmdk"), "r+b") as f:
        f.seek(4096)
        f.write(b"\xff" * 512)
    differ = subprocess.run(
        ["qemu-img", "compare", source, replica], capture_output=True, text=True
    )
    assert differ.returncode == 1


async def test_replica_folder_layout(running: Running, tmp_path: str) -> None:
    config = runner.SimConfig(
        target=running.address,
        folder=os.path.join(tmp_path, "src"),
        group="layout",
        vms=("web01",),
        disks_per_vm=2,
        disk_bytes=2**20,
        workload=WorkloadSpec("random", 4096, iops=500),
        seconds=0.2,
    )
    await runner.run(config)
    folder = os.path.join(running.data_dir, "replicas", "web01")
    assert sorted(os.listdir(folder)) == sorted(
        [
            "web01.vmx",
            "web01.nvram",
            "vmware.log",
            "web01_0.vmdk",
            "web01_0-flat.vmdk",
            "web01_1.vmdk",
            "web01_1-flat.vmdk",
        ]
    )
    with open(os.path.join(folder, "web01.vmx")) as f:
        vmx = f.read()
    assert 'uuid.action = "keep"' in vmx and 'scsi0:1.fileName = "web01_1.vmdk"' in vmx
