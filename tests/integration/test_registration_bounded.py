"""Issue 12, defect 4: one handshake must not brick the target.

A real ``cdp target serve`` subprocess limited to 256 open files (RLIMIT_NOFILE, set by
a launcher before exec) is asked to protect a group with more disks than it can open
(200 disks, 2 files each): the handshake is refused with RESOURCE_EXHAUSTED (never
UNKNOWN EMFILE), nothing is stored, the target restarts, and another group still
replicates. Also: registration limits told and enforced, EFBIG (RLIMIT_FSIZE).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from helpers import free_port

from cdp.errors import RemoteError
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.rpc.client import ReplicationClient
from cdp.v1 import replication_pb2 as pb

FILES = 256


def limited(limit: str, value: int, *flags: str) -> list[str]:
    """``cdp target serve --insecure FLAGS`` under an rlimit, set by a small launcher that
    then execs the target (no preexec_fn: forking a threaded test process is unsafe)."""
    launch = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.{limit}, ({value}, {value})); "
        "os.execv(sys.executable, [sys.executable, '-m', 'cdp', 'target', 'serve', "
        "'--insecure', *sys.argv[1:]])"
    )
    return [sys.executable, "-c", launch, *flags]


def start(data_dir: str, port: int, files: int = FILES) -> subprocess.Popen[bytes]:
    ready = data_dir + ".ready"
    if os.path.exists(ready):
        os.unlink(ready)
    proc = subprocess.Popen(
        limited("RLIMIT_NOFILE", files, "--data-dir", data_dir,
                "--listen", f"127.0.0.1:{port}", "--ready-file", ready),
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    import time

    deadline = time.monotonic() + 30
    while not os.path.exists(ready):
        if proc.poll() is not None:
            raise AssertionError(f"target exited {proc.returncode}: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "target not ready"
        time.sleep(0.02)
    return proc


def wide_group(name: str, disks: int) -> GroupSpec:
    return GroupSpec(
        name, (VmSpec(f"{name}-vm", tuple(DiskSpec(str(d), 2**20) for d in range(disks))),)
    )


async def test_too_many_disks_refused_and_target_restarts(tmp_path: str) -> None:
    data_dir, port = os.path.join(tmp_path, "t"), free_port()
    proc = start(data_dir, port)
    try:
        async with ReplicationClient(f"127.0.0.1:{port}") as client:
            with pytest.raises(RemoteError) as info:
                await client.open_session("src", wide_group("wide", 200), 0, 1)
            assert info.value.code == "RESOURCE_EXHAUSTED", str(info.value)
            reply = await client.open_session("src", wide_group("narrow", 2), 0, 1)
            assert reply.session_id
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]
    proc = start(data_dir, port)  # every later start used to die with EMFILE
    try:
        async with ReplicationClient(f"127.0.0.1:{port}") as client:
            status = await client.status()
            assert [g.group_id for g in status.groups] == ["narrow"]
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]


async def test_group_that_cannot_open_is_error_and_others_serve(tmp_path: str) -> None:
    """A stored group that cannot be opened at start (here: 200 disks, then a 256-file
    limit) is in ERROR (its handshake says why); the target starts and serves the rest."""
    data_dir, port = os.path.join(tmp_path, "t"), free_port()
    proc = start(data_dir, port, files=4096)
    try:
        async with ReplicationClient(f"127.0.0.1:{port}") as client:
            await client.open_session("src", wide_group("wide", 200), 0, 1)
            await client.open_session("src", wide_group("narrow", 2), 0, 1)
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]
    proc = start(data_dir, port, files=FILES)
    try:
        async with ReplicationClient(f"127.0.0.1:{port}") as client:
            states = {g.group_id: g for g in (await client.status()).groups}
            assert states["wide"].state == pb.GROUP_STATE_ERROR, states["wide"]
            assert states["narrow"].state != pb.GROUP_STATE_ERROR
            reply = await client.open_session("src", wide_group("narrow", 2), 0, 1)
            assert reply.session_id
            with pytest.raises(RemoteError) as info:
                await client.open_session("src", wide_group("wide", 200), 0, 1)
            assert info.value.code == "FAILED_PRECONDITION", str(info.value)
            assert "could not be opened" in str(info.value)
            assert "Too many open files" in str(info.value)
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]


async def test_registration_limits_told_and_enforced(tmp_path: str) -> None:
    """The handshake tells the disks-per-group and groups-per-target limits; a group past
    one is refused naming the field, and nothing is stored."""
    data_dir, port = os.path.join(tmp_path, "t"), free_port()
    proc = start(data_dir, port, files=4096)
    try:
        async with ReplicationClient(f"127.0.0.1:{port}") as client:
            spec = wide_group("ok", 1)
            raw = await client._stub.OpenSession(pb.OpenSessionRequest(
                protocol_version=1, source_id="src", group_id="ok", next_seq=1,
                vms=[pb.VmSpec(vm_id="ok-vm", disks=[pb.DiskSpec(disk_id="0",
                                                                  capacity_bytes=2**20)])],
            ), timeout=30)  # fmt: skip
            assert raw.max_disks_per_group > 0 and raw.max_groups > 0
            with pytest.raises(RemoteError) as info:
                await client.open_session(
                    "src", wide_group("big", raw.max_disks_per_group + 1), 0, 1
                )
            assert info.value.code == "INVALID_ARGUMENT" and "vms" in str(info.value)
            assert "max_disks_per_group" in str(info.value)
            assert [g.group_id for g in (await client.status()).groups] == [spec.group_id]
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]


async def test_disk_larger_than_the_filesystem_allows(tmp_path: str) -> None:
    """EFBIG (here from RLIMIT_FSIZE, as ext4 gives for a 20 TiB file) is RESOURCE_EXHAUSTED
    naming capacity_bytes, and the group is not half-registered."""
    data_dir, port = os.path.join(tmp_path, "t"), free_port()
    ready = data_dir + ".ready"

    proc = subprocess.Popen(
        limited("RLIMIT_FSIZE", 1 << 30, "--data-dir", data_dir,
                "--listen", f"127.0.0.1:{port}", "--ready-file", ready),
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        while not os.path.exists(ready):
            if proc.poll() is not None:
                raise AssertionError(f"target exited {proc.returncode}: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
        async with ReplicationClient(f"127.0.0.1:{port}") as client:
            huge = GroupSpec("huge", (VmSpec("huge-vm", (DiskSpec("0", 4 << 30),)),))
            with pytest.raises(RemoteError) as info:
                await client.open_session("src", huge, 0, 1)
            assert info.value.code == "RESOURCE_EXHAUSTED", str(info.value)
            assert "capacity_bytes" in str(info.value)
            assert list((await client.status()).groups) == []
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]
