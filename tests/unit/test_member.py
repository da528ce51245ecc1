"""A target Member driven directly, without gRPC: handshake, intake, acks, end of session.

Real Journal and committer thread on tmp_path, the in-memory index.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import lone_member

from cdp import codec
from cdp.errors import SeqGapError
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.journal.store.memory import MemoryIndex
from cdp.record import Record
from cdp.status import GroupState
from cdp.target.config import TargetConfig
from cdp.target.member import Member
from cdp.target.verdicts import Verdicts


def write(seq: int, fill: bytes = b"x") -> Record:
    data = fill * 4096
    return Record(seq, 0, seq * 4096, len(data), 1_000 + seq, codec.checksum(data),
                  codec.compress(data))  # fmt: skip


@pytest.fixture
async def member(tmp_path: Path) -> AsyncIterator[Member]:
    # history window 0: every durable record is due for apply at once (expiry goes by the
    # target's receive time, so a one-hour window would keep these records for an hour)
    async with lone_member(str(tmp_path), history_window_s=0.0) as m:
        yield m


async def test_open_accept_ack_after_durability(member: Member) -> None:
    info = await member.open_session("host-a", 0, 1)
    assert (info.durable_seq, info.resync_required) == (0, False)
    assert member.status(0).state == GroupState.REPLICATING
    ack = await asyncio.wait_for(member.accept([write(1), write(2)]), 10)
    assert ack.durable_seq == 2 == member.durable_seq
    status = member.status(0)
    assert (status.durable_seq, status.received_bytes, status.source_id) == (2, 8192, "host-a")


async def test_seq_gap_refused_naming_the_field(member: Member) -> None:
    await member.open_session("host-a", 0, 1)
    with pytest.raises(SeqGapError, match=r"records\.seq: expected seq 1, got 3"):
        member.accept([write(3)])
    assert member.status(0).received_bytes == 0  # nothing changed
    assert (await asyncio.wait_for(member.accept([write(1)]), 10)).durable_seq == 1


async def test_resent_durable_record_acked_and_dropped(member: Member) -> None:
    await member.open_session("host-a", 0, 1)
    await asyncio.wait_for(member.accept([write(1), write(2)]), 10)
    info = await member.open_session("host-a", 1, 3)  # a new session re-sends 2, then 3
    assert info.durable_seq == 2
    ack = await asyncio.wait_for(member.accept([write(2), write(3)]), 10)
    assert ack.durable_seq == 3
    assert member.status(0).received_bytes == 3 * 4096  # seq 2 was counted once


async def test_resync_required_when_source_lost_seqs(member: Member) -> None:
    info = await member.open_session("host-a", 5, 9)
    assert info.resync_required and "seqs in between are lost" in info.resync_reason
    assert member.status(0).state == GroupState.RESYNC_REQUIRED


async def test_end_session_disconnects_only_the_live_one(member: Member) -> None:
    old = await member.open_session("host-a", 0, 1)
    new = await member.open_session("host-a", 0, 1)
    member.end_session(old.session_id)  # a superseded session ending changes nothing
    assert member.status(0).state == GroupState.REPLICATING
    member.end_session(new.session_id)
    assert member.status(0).state == GroupState.DISCONNECTED
    assert member.session_id == ""


async def test_cancelled_pause_leaves_no_pause(member: Member) -> None:
    """A read cancelled while the apply pause is being taken must not stop apply for good."""
    await member.open_session("host-a", 0, 1)
    await asyncio.wait_for(member.accept([write(1), write(2)]), 10)
    running_round = member.applier._round  # a round in progress holds this lock
    running_round.acquire()
    try:

        async def read_image() -> None:
            async with member.paused():
                await asyncio.sleep(3600)

        task = asyncio.create_task(read_image())
        await asyncio.sleep(0.05)  # the pause is being taken in its thread, waiting for the round
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        running_round.release()
    await asyncio.sleep(0.05)  # the pause thread finishes after the release
    applied = await asyncio.to_thread(member.apply_once)
    assert (applied, member.applied_seq) == (2, 2)  # apply goes on: no pause left behind


def _attack_batches() -> list[list[Record]]:
    """Two seconds of compressible writes over a 4 MiB disk (training), then three seconds
    of encryption in place, 1 MiB a second (seqs 2049 on); one batch a second."""
    noise = random.Random(5).randbytes(4 << 20)
    text = b"".join(noise[i : i + 2048] + bytes(2048) for i in range(0, 4 << 20, 4096))

    def batch(first: int, data: bytes, at: int, size: int) -> list[Record]:  # 4 KiB writes
        blocks = [data[i : i + 4096] for i in range(at, at + size, 4096)]
        return [Record(first + i, 0, at + i * 4096, 4096, 1_000 + first + i, codec.checksum(b),
                       codec.compress(b)) for i, b in enumerate(blocks)]  # fmt: skip

    batches = [batch(1, text, 0, 4 << 20), batch(1025, text, 0, 4 << 20)]
    return batches + [batch(2049 + 256 * i, noise, i << 20, 1 << 20) for i in range(3)]


async def _detecting_member(tmp_path: Path, index: MemoryIndex) -> Member:
    config = TargetConfig(str(tmp_path), history_window_s=3600.0, detect_training_s=1.0)
    for d in (config.journal_dir, config.replica_dir):
        Path(d).mkdir(parents=True, exist_ok=True)
    m = Member("g", GroupSpec("g", (VmSpec("vm", (DiskSpec("d0", 4 << 20),)),)), config, index)
    m.start()
    await m.open_session("host-a", 0, 1)
    return m


async def _send_a_second_apart(m: Member, batches: list[list[Record]]) -> None:
    for b in batches:
        await asyncio.wait_for(m.accept(b), 10)
        await asyncio.sleep(1.05 - time.time() % 1)  # into the next second


async def test_an_attack_followed_by_silence_is_raised_on_the_checkpoint_cadence(
    tmp_path: Path,
) -> None:
    """The encryption detector judges the last window of an idle member on the clock."""
    m = await _detecting_member(tmp_path, MemoryIndex())
    try:
        await _send_a_second_apart(m, _attack_batches())
        await m.checkpoint()  # the target's checkpoint loop, once a second
        await m.detection_settled()
        (s,) = m.verdicts.standing()
        assert s.start_seq == 2049 and m.verdicts.watched_from_seq == 2049
        assert m.verdicts.verdict(2048) == "unknown" and m.verdicts.verdict(2049) == "suspect"
    finally:
        await m.stop()
        m.close()


async def test_a_suspicion_raised_by_the_last_batch_is_stored_before_the_member_stops(
    tmp_path: Path,
) -> None:
    index = MemoryIndex()
    m = await _detecting_member(tmp_path, index)
    try:
        await _send_a_second_apart(m, _attack_batches()[:-1])
        last = _attack_batches()[-1]
        await asyncio.wait_for(m.accept(last), 10)  # its window closes with this batch:
        await asyncio.sleep(1.05 - time.time() % 1)
        one = write(last[-1].seq + 1)
        one.offset = 0
        m.accept([one])  # the alarm comes from judging this batch
    finally:
        await m.stop()  # a target shutting down right after
        m.close()
    assert [s.start_seq for s in Verdicts(index, "g").standing()] == [2049]
