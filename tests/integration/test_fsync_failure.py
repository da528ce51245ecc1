"""A failed fsync is never acknowledged (trust invariant 2, PostgreSQL's "fsyncgate").

Fault injection by composition: the target's ``journal_fsync`` seam gets a
:class:`FailingFsync`, which fails chosen fdatasync calls with EIO and, as the kernel may
after EIO, drops what was written since the last good fsync of that file (the bytes read
back as zeros). A real target behind a real gRPC server, a real client pipelining batches.
This machine has no device-mapper (no /dev/mapper, no dm-mod) and no FUSE library in the
venv, so the failure is injected at the syscall seam instead of the filesystem layer.
"""

from __future__ import annotations

import errno
import os
import random
import time
from pathlib import Path

from conftest import Running, make_record, score, small_group, start_target, stop_target
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.cli.status import fetch, render
from cdp.errors import RemoteError
from cdp.record import Record
from cdp.rpc.client import ReplicationClient
from cdp.v1 import replication_pb2 as pb

GROUP = "fs"
SPEC = small_group(GROUP, disks=1)


class FailingFsync:
    """fdatasync that fails the calls numbered in ``fail`` (1-based) with EIO, losing data."""

    def __init__(self, fail: set[int]) -> None:
        self.fail, self.calls, self.failed = fail, 0, 0
        self._synced: dict[int, int] = {}
        """Size of each file (by inode) at its last good fsync."""

    def __call__(self, fd: int) -> None:
        self.calls += 1
        st_ = os.fstat(fd)
        if self.calls in self.fail:
            self.failed += 1
            good = self._synced.get(st_.st_ino, 0)
            if st_.st_size > good:  # the dirty pages are gone: they read back as zeros
                os.pwrite(fd, b"\0" * (st_.st_size - good), good)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fdatasync(fd)
        self._synced[st_.st_ino] = st_.st_size


def batches(n: int, per: int = 20) -> list[list[Record]]:
    rng = random.Random(n)
    out, seq = [], 1
    for _ in range(n):
        out.append([
            make_record(s, 0, rng.randrange(64) * 4096, rng.randbytes(1024), time.time_ns())
            for s in range(seq, seq + per)
        ])  # fmt: skip
        seq += per
    return out


async def ship(r: Running, todo: list[list[Record]], pipeline: int) -> tuple[int, list[str]]:
    """Send every batch, ``pipeline`` in flight, re-handshaking after errors like a source.

    Returns the highest acked seq and the error codes met.
    """
    acked, codes = 0, []
    for _attempt in range(20):
        try:  # the handshake reopens the journal, whose fsync may fail again
            reply = await r.client.open_session("src", SPEC, 0, acked + 1)
        except RemoteError as exc:
            codes.append(exc.code)
            continue
        assert reply.durable_seq >= acked, "an acked seq is no longer durable"
        rest = [b for b in todo if b[-1].seq > reply.durable_seq]
        if not rest:
            return acked, codes
        stream = r.client.stream(reply.session_id)
        try:  # acks may cover several batches (group commit): count by seq, not by message
            for i, b in enumerate(rest):
                await stream.send([x for x in b if x.seq > reply.durable_seq])
                while i + 1 - sum(1 for x in rest[: i + 1] if x[-1].seq <= acked) >= pipeline:
                    ack = await stream.recv()
                    assert ack is not None
                    acked = max(acked, ack.durable_seq)
            while acked < rest[-1][-1].seq:
                ack = await stream.recv()
                assert ack is not None
                acked = max(acked, ack.durable_seq)
        except RemoteError as exc:
            codes.append(exc.code)
        finally:
            stream.cancel()
    raise AssertionError(f"did not finish: {codes}")


async def durable_after_reopen(data_dir: str) -> tuple[int, list[Record]]:
    r = await start_target(data_dir, history_window_s=3600.0)
    try:
        journal = r.target.groups[GROUP].journal
        return journal.durable_seq, list(journal.read_range(1, journal.durable_seq))
    finally:
        await stop_target(r)


async def run_pattern(folder: str, fail: set[int], pipeline: int) -> tuple[int, FailingFsync]:
    fsync = FailingFsync(fail)
    todo = batches(8)
    r = await start_target(
        folder, history_window_s=3600.0, journal_fsync=fsync, segment_bytes=60_000
    )
    try:
        acked, codes = await ship(r, todo, pipeline)
        assert set(codes) <= {"UNAVAILABLE"}, codes
    finally:
        await stop_target(r)
    durable, read = await durable_after_reopen(folder)
    score("fsync failures injected", fsync.failed)
    score("acked after a failed fsync", int(acked > durable))
    assert acked <= durable, f"acked {acked} but only {durable} durable after reopen"
    sent = [x for b in todo for x in b]
    assert read == sent[:durable], "the journal after reopen differs from what was sent"
    return acked, fsync


async def test_a_failed_fsync_is_never_acked_and_the_group_recovers(tmp_path: Path) -> None:
    fsync = FailingFsync({1})
    r = await start_target(str(tmp_path / "t"), history_window_s=3600.0, journal_fsync=fsync)
    try:
        todo = batches(2)
        reply = await r.client.open_session("src", SPEC, 0, 1)
        stream = r.client.stream(reply.session_id)
        await stream.send(todo[0])  # its fsync fails ...
        await stream.send(todo[1])  # ... and this one is pipelined right behind it
        try:
            ack = await stream.recv()
            raise AssertionError(f"acked {ack} although the fsync of seqs 1..20 failed")
        except RemoteError as exc:
            assert exc.code == "UNAVAILABLE", exc
            assert "fsync" in str(exc) and "not acknowledged" in str(exc), exc
        stream.cancel()
        st_ = (await r.client.status(GROUP)).groups[0]
        assert st_.state == pb.GROUP_STATE_ERROR and st_.durable_seq == 0, st_
        # the cause is on the wire (GroupStatus.error) and under `cdp status`'s table
        assert "fsync" in st_.error and st_.error == r.target.status(GROUP)[0].error
        shown = render(await fetch(ReplicationClient(r.address), GROUP))
        assert f"error {GROUP}: {st_.error}" in shown.splitlines()
        # the next handshake reopens the journal from disk; the source re-sends
        acked, codes = await ship(r, todo, pipeline=2)
        assert acked == 40 and not codes
        assert (await r.client.status(GROUP)).groups[0].state != pb.GROUP_STATE_ERROR
    finally:
        await stop_target(r)
    assert fsync.failed == 1
    assert (await durable_after_reopen(str(tmp_path / "t")))[0] == 40


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(fail=st.sets(st.integers(1, 14), max_size=4), pipeline=st.integers(1, 4))
def test_acked_seqs_are_durable_after_reopen_for_any_fsync_failures(
    tmp_path_factory: object, fail: set[int], pipeline: int
) -> None:
    import asyncio

    folder = str(tmp_path_factory.mktemp("fs"))  # type: ignore[attr-defined]
    acked, _ = asyncio.run(run_pattern(folder, fail, pipeline))
    assert acked == 160
