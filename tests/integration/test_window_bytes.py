"""Issue 11 defect 8 (window_bytes never enforced), made deterministic: a target whose
journal fsync is slow (0.3 s, injected through TargetConfig.journal_fsync) and whose window
is 1 MiB. A source that sends 3 MiB of payload without waiting for an ack is refused with
RESOURCE_EXHAUSTED naming window_bytes; one that sends while fewer than window_bytes are
unacked (the cdp shipper's rule) is not."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from conftest import small_group, start_target, stop_target

from cdp import codec
from cdp.errors import RemoteError
from cdp.record import Record

GROUP = "win"
SPEC = small_group(GROUP, disks=1, size=8 * 2**20)
WINDOW = 2**20
PIECE = 256 * 1024


def _slow_fsync(fd: int) -> None:
    time.sleep(0.3)
    os.fdatasync(fd)


def _write(seq: int) -> Record:
    data = os.urandom(PIECE)  # incompressible: payload bytes = data bytes
    return Record(seq, 0, (seq % 32) * PIECE, PIECE, time.time_ns(), codec.checksum(data),
                  codec.compress(data))  # fmt: skip


@pytest.mark.parametrize("honest", [False, True])
async def test_window_bytes_enforced(tmp_path: str, honest: bool) -> None:
    running = await start_target(
        os.path.join(tmp_path, "t"), window_bytes=WINDOW, journal_fsync=_slow_fsync
    )
    try:
        reply = await running.client.open_session("src", SPEC, 0, 1)
        assert reply.window_bytes == WINDOW
        stream = running.client.stream(reply.session_id)
        durable, unacked = 0, []
        for seq in range(1, 13):  # 3 MiB in all
            rec = _write(seq)
            # honest: a batch goes out only if it keeps the unacked payload within the window
            while honest and sum(n for s, n in unacked if s > durable) + len(rec.frame) > WINDOW:
                ack = await asyncio.wait_for(stream.recv(), 30)
                assert ack is not None
                durable = ack.durable_seq
            try:
                await stream.send([rec])
            except RemoteError as exc:
                assert not honest, exc
                assert exc.code == "RESOURCE_EXHAUSTED" and "window_bytes" in str(exc), exc
                return
            unacked.append((seq, len(rec.frame)))
        while durable < 12:
            ack = await asyncio.wait_for(stream.recv(), 30)
            if ack is None:
                break
            durable = ack.durable_seq
        if not honest:
            pytest.fail(f"3 MiB sent without an ack accepted (durable {durable})")
        assert durable == 12
    except RemoteError as exc:
        assert not honest, exc
        assert exc.code == "RESOURCE_EXHAUSTED" and "window_bytes" in str(exc), exc
    finally:
        await stop_target(running)
