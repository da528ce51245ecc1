"""Fencing by epoch on a Member and on a real Target behind gRPC (issue 13 #3).

A live failover raises a group's epoch; a source of an older epoch is refused with
FAILED_PRECONDITION naming the failover, also after commit and after a target restart.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from conftest import LONE_SPEC as SPEC
from conftest import start_target, stop_target

from cdp import codec, lifecycle
from cdp.errors import InvalidInputError, PreconditionError, RemoteError
from cdp.record import Record
from cdp.target.member import Member
from cdp.v1 import replication_pb2 as pb


def write(seq: int) -> Record:
    data = b"w" * 4096
    return Record(seq, 0, seq * 4096, len(data), 1_000 + seq, codec.checksum(data),
                  codec.compress(data))  # fmt: skip


async def test_member_refuses_an_older_epoch_and_ends_the_fenced_session(member: Member) -> None:
    await member.open_session("old-host", 0, 1, epoch=0)
    await asyncio.wait_for(member.accept([write(1)]), 10)
    fenced = member.lifecycle.change(lifecycle.FAILING_OVER, True, False, "run", 5 * 10**18)
    assert member.set_lifecycle(fenced) != ""  # the live session of epoch 0 ended
    assert member.status(0).source_connected is False
    with pytest.raises(PreconditionError, match=r"group g was failed over at .* \(epoch 1"):
        await member.open_session("old-host", 0, 2, epoch=0)
    info = await member.open_session("new-host", 0, 2, epoch=1)  # the new epoch writes
    assert info.durable_seq == 1 and member.status(0).lifecycle.epoch == 1


def test_lifecycle_changes_fence_commit_and_unfence() -> None:
    lc = lifecycle.Lifecycle()
    over = lc.change(lifecycle.FAILING_OVER, True, False, "run", 1)
    assert (over.epoch, over.previous_epoch) == (1, 0)
    back = over.change(lifecycle.PROTECTING, False, True, "rollback", 2)
    assert (back.epoch, back.previous_epoch) == (0, None)  # a rollback lets the source back
    committed = over.change(lifecycle.FAILED_OVER_COMMITTED, False, False, "commit", 3)
    assert committed.epoch == 1 and committed.previous_epoch is None
    with pytest.raises(PreconditionError, match="unfence: epoch 1 has no open fence"):
        committed.change(lifecycle.PROTECTING, False, True, "rollback", 4)
    with pytest.raises(InvalidInputError, match="state: must be one of"):
        lc.change("sleeping", False, False, "", 5)
    with pytest.raises(InvalidInputError, match="unfence:"):
        lc.change(lifecycle.PROTECTING, True, True, "", 5)


async def test_fence_over_grpc_survives_a_restart_and_refuses_the_old_source(
    tmp_path: Path,
) -> None:
    data = os.path.join(str(tmp_path), "target")
    r = await start_target(data, history_window_s=3600.0)
    try:
        s = await r.client.open_session("old-host", SPEC, 0, 1)
        assert s.session_id
        resp = await r.client.set_lifecycle(
            "g", pb.LIFECYCLE_STATE_FAILING_OVER, fence=True, note="failover run of plan p"
        )
        assert resp.epoch == 1
        await r.client.set_lifecycle("g", pb.LIFECYCLE_STATE_FAILED_OVER_COMMITTED)
        status = (await r.client.status("g")).groups[0]
        assert (status.lifecycle, status.epoch, status.source_connected) == (
            pb.LIFECYCLE_STATE_FAILED_OVER_COMMITTED, 1, False,
        )  # fmt: skip
    finally:
        await stop_target(r)
    r = await start_target(data, history_window_s=3600.0)  # the fence is durable
    try:
        with pytest.raises(RemoteError, match=r"FAILED_PRECONDITION.*group g was failed over"):
            await r.client.open_session("old-host", SPEC, 0, 1)
        assert (await r.client.open_session("new-host", SPEC, 0, 1, epoch=1)).session_id
        with pytest.raises(RemoteError, match="INVALID_ARGUMENT.*state"):
            await r.client.set_lifecycle("g", pb.LIFECYCLE_STATE_UNSPECIFIED)
        with pytest.raises(RemoteError, match="NOT_FOUND"):
            await r.client.set_lifecycle("nope", pb.LIFECYCLE_STATE_PROTECTING)
        status = (await r.client.status("g")).groups[0]
        assert status.lifecycle_note == "" and status.epoch == 1
    finally:
        await stop_target(r)
