"""Issue 12, defect 4: one handshake must not brick the target.

A real ``cdp target serve`` subprocess limited to 256 open files (RLIMIT_NOFILE, set in
preexec_fn) is asked to protect a group with more disks than it can open: the handshake
is refused with RESOURCE_EXHAUSTED (never UNKNOWN EMFILE), nothing is stored, the target
restarts, and another group still replicates.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest
from helpers import free_port

from cdp.errors import RemoteError
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.rpc.client import ReplicationClient
from cdp.v1 import replication_pb2 as pb

FILES = 256


def start(data_dir: str, port: int, files: int = FILES) -> subprocess.Popen[bytes]:
    ready = data_dir + ".ready"
    if os.path.exists(ready):
        os.unlink(ready)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdp", "target", "serve", "--insecure", "--data-dir", data_dir,
         "--listen", f"127.0.0.1:{port}", "--ready-file", ready],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (files, files)),
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
                await client.open_session("src", wide_group("wide", 300), 0, 1)
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
