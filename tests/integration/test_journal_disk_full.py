"""A full disk under the target's data dir: a 2 MiB tmpfs mounted for the test.

DESIGN.md: "A full disk stops intake with RESOURCE_EXHAUSTED, never corrupts." The
records acked before the disk filled must all survive a restart, and intake resumes
once space is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import glob
import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Running, make_record, small_group, start_target, stop_target

from cdp.errors import RemoteError, StorageFullError
from cdp.journal.index import POINT_CHECKPOINT
from cdp.journal.segment import scan
from cdp.record import Record

PAGE = 4096
GROUP = "g1"
SPEC = small_group(GROUP, size=8 * 2**20)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[str]:
    """A 2 MiB tmpfs; skipped where mounting is not permitted."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield str(mnt)
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            # something still holds a file open (a target that crashed): detach lazily
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def free_pages(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // PAGE


def fill_up(path: str, name: str = "filler") -> str:
    """Write a file until the filesystem has no page left; return its path."""
    filler = os.path.join(path, name)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            try:
                os.write(fd, b"\1" * PAGE)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    finally:
        os.close(fd)
    assert free_pages(path) == 0
    return filler


def make_file(path: str, size: int) -> str:
    with open(path, "wb") as f:
        f.write(b"\2" * size)
    return path


def pages(size: int) -> int:
    return -(-size // PAGE)


def segment_path(data_dir: str) -> str:
    (path,) = glob.glob(os.path.join(data_dir, "journal", GROUP, "*.seg"))
    return path


def wal_path(data_dir: str) -> str:
    return sorted(glob.glob(os.path.join(data_dir, "index", "*.log")))[-1]


def slack(path: str) -> int:
    """Bytes a file can still grow without a new page."""
    return -os.path.getsize(path) % PAGE


async def _stop_quietly(r: Running) -> BaseException | None:
    try:
        await stop_target(r)
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        return exc
    return None


# -- the contract ------------------------------------------------------------------------


async def test_full_disk_stops_intake_and_acked_records_survive(small_fs: str) -> None:
    data_dir = os.path.join(small_fs, "target")
    r = await start_target(data_dir, history_window_s=3600)
    spare = make_file(os.path.join(small_fs, "spare"), 256 * 1024)  # freed before restart
    filler = make_file(os.path.join(small_fs, "filler"), 512 * 1024)  # freed at the end
    rng = random.Random(5)
    sent: list[Record] = []
    last_ack = 0
    try:
        reply = await r.client.open_session("host-a", SPEC, 0, 1)
        stream = r.client.stream(reply.session_id)
        seg = ""
        with pytest.raises(RemoteError) as info:
            for _ in range(500):
                n = 8
                if seg:
                    # never let a batch use exactly the last free pages: then the index
                    # write, not the segment, would be the one to meet the full disk
                    # (see test_full_disk_during_the_index_write)
                    need = pages(os.path.getsize(seg) + n * 4200) - pages(os.path.getsize(seg))
                    if need >= free_pages(small_fs) - 1:
                        n = 16
                batch = [
                    make_record(last_ack + 1 + i, i % 2, ((last_ack + i) * PAGE) % 2**20,
                                rng.randbytes(PAGE), ts=time.time_ns())
                    for i in range(n)
                ]  # fmt: skip
                await stream.send(batch)
                ack = await stream.recv()
                assert ack is not None and ack.durable_seq == last_ack + n
                sent += batch
                last_ack = ack.durable_seq
                seg = seg or segment_path(data_dir)
        stream.cancel()
        err = info.value
        assert err.code == "RESOURCE_EXHAUSTED", str(err)
        assert seg in str(err) and "free space" in str(err)
        assert last_ack >= 8
        # nothing half-written: the segment ends with the last acked record
        found = scan(seg, 1)
        assert found.torn_bytes == 0 and found.records[-1].header.seq == last_ack
        st = (await r.client.status(GROUP)).groups[0]
        assert st.durable_seq == last_ack and st.journal_bytes == os.path.getsize(seg)
        # still full: a new session resumes at the last ack, and is refused the same way
        reply = await r.client.open_session("host-a", SPEC, 0, last_ack + 1)
        assert reply.durable_seq == last_ack
        stream = r.client.stream(reply.session_id)
        retry = [
            make_record(last_ack + 1 + i, 0, i * PAGE, rng.randbytes(PAGE), ts=time.time_ns())
            for i in range(16)
        ]
        await stream.send(retry)
        with pytest.raises(RemoteError) as info:
            await stream.recv()
        assert info.value.code == "RESOURCE_EXHAUSTED"
        stream.cancel()
        assert (await r.client.status(GROUP)).groups[0].durable_seq == last_ack
    finally:
        await stop_target(r)

    os.unlink(spare)  # room for RocksDB to reopen; the volume stays nearly full
    r = await start_target(data_dir, history_window_s=3600)
    try:
        reply = await r.client.open_session("host-a", SPEC, 0, last_ack + 1)
        assert reply.durable_seq == last_ack and not reply.resync_required
        journal = r.target.groups[GROUP].journal
        assert list(journal.read_range(1, last_ack)) == sent
        os.unlink(filler)  # space is back: intake resumes
        reply = await r.client.open_session("host-a", SPEC, 0, last_ack + 1)
        stream = r.client.stream(reply.session_id)
        more = [
            make_record(last_ack + 1 + i, 1, i * PAGE, rng.randbytes(PAGE), ts=time.time_ns())
            for i in range(16)
        ]
        await stream.send(more)
        ack = await stream.recv()
        assert ack is not None and ack.durable_seq == last_ack + 16
        stream.cancel()
        assert list(journal.read_range(1, last_ack + 16)) == sent + more
        st = (await r.client.status(GROUP)).groups[0]
        assert st.applied_seq == 0  # all of it is still history, nothing was applied
    finally:
        await stop_target(r)


async def test_full_disk_in_a_large_batch_leaves_no_partial_records(small_fs: str) -> None:
    """A batch of many records is written in several pwritev calls (IOV_MAX); the disk
    filling in a later call must still cut the segment back to the last acked record."""
    data_dir = os.path.join(small_fs, "target")
    r = await start_target(data_dir, history_window_s=3600)
    rng = random.Random(11)

    def batch(first: int, n: int) -> list[Record]:
        return [
            make_record(first + i, i % 2, (i * 1024) % 2**22, rng.randbytes(1024),
                        ts=time.time_ns())
            for i in range(n)
        ]  # fmt: skip

    try:
        reply = await r.client.open_session("host-a", SPEC, 0, 1)
        stream = r.client.stream(reply.session_id)
        first = batch(1, 600)  # 1200 buffers: two pwritev calls
        await stream.send(first)
        ack = await stream.recv()
        assert ack is not None and ack.durable_seq == 600
        seg = segment_path(data_dir)
        size = os.path.getsize(seg)
        # leave room for the first call of the next batch (500 records), not the second
        room = 180
        make_file(os.path.join(small_fs, "filler"), (free_pages(small_fs) - room) * PAGE)
        assert free_pages(small_fs) == room
        big = batch(601, 900)
        assert sum(rec.encoded_size() for rec in big[:500]) < room * PAGE
        assert sum(rec.encoded_size() for rec in big) > room * PAGE
        await stream.send(big)
        with pytest.raises(RemoteError) as info:
            await stream.recv()
        stream.cancel()
        assert info.value.code == "RESOURCE_EXHAUSTED", str(info.value)
        assert os.path.getsize(seg) == size
        found = scan(seg, 1)
        assert found.torn_bytes == 0 and found.records[-1].header.seq == 600
        assert free_pages(small_fs) >= room - 1  # the partial write was given back
        assert (await r.client.status(GROUP)).groups[0].durable_seq == 600
        # a batch that fits is taken at once
        reply = await r.client.open_session("host-a", SPEC, 0, 601)
        assert reply.durable_seq == 600
        stream = r.client.stream(reply.session_id)
        await stream.send(batch(601, 100))
        ack = await stream.recv()
        assert ack is not None and ack.durable_seq == 700
        stream.cancel()
    finally:
        await stop_target(r)


# -- where the disk fills matters: known bugs ------------------------------------------


async def test_full_disk_during_the_index_write(small_fs: str) -> None:
    data_dir = os.path.join(small_fs, "target")
    r = await start_target(data_dir, history_window_s=3600)
    stop_error: BaseException | None = None
    try:
        reply = await r.client.open_session("host-a", SPEC, 0, 1)
        stream = r.client.stream(reply.session_id)
        seq = 1

        async def put(rec: Record) -> None:
            nonlocal seq
            await stream.send([rec])
            ack = await stream.recv()
            assert ack is not None and ack.durable_seq == rec.seq
            seq += 1

        def tiny(s: int) -> Record:
            return make_record(s, 0, 0, bytes(512), ts=time.time_ns())

        await put(tiny(seq))
        seg, wal = segment_path(data_dir), wal_path(data_dir)
        before = os.path.getsize(wal)
        await put(tiny(seq))
        step = os.path.getsize(wal) - before  # WAL bytes of one one-record batch
        assert 0 < step < 1024
        # Shape the files: the next one-record batch must fit in the segment's last
        # page but not in the WAL's, so the index write is what meets the full disk.
        rng = random.Random(9)
        for _ in range(400):
            if slack(wal) < step and slack(seg) >= tiny(seq).encoded_size():
                break
            rec = tiny(seq)
            if slack(wal) < 2 * step:  # the next batch lands the WAL in place: fix the segment
                for k in range(1, 9):
                    rec = make_record(seq, 0, 0, rng.randbytes(512 * k), ts=time.time_ns())
                    if -(os.path.getsize(seg) + rec.encoded_size()) % PAGE >= 300:
                        break
            await put(rec)
        else:
            pytest.fail("could not shape the segment and WAL sizes")
        durable = seq - 1
        filler = fill_up(small_fs)

        await stream.send([tiny(seq)])
        with pytest.raises(RemoteError) as info:
            await stream.recv()
        stream.cancel()
        assert info.value.code == "RESOURCE_EXHAUSTED", str(info.value)

        os.unlink(filler)
        reply = await r.client.open_session("host-a", SPEC, 0, 0)
        assert reply.durable_seq in (durable, durable + 1)
        stream = r.client.stream(reply.session_id)
        await stream.send([tiny(reply.durable_seq + 1)])
        ack = await stream.recv()  # intake resumes by itself
        assert ack is not None and ack.durable_seq == reply.durable_seq + 1
        stream.cancel()
    finally:
        stop_error = await _stop_quietly(r)
    assert stop_error is None, repr(stop_error)


async def _host(data_dir: str, ready: asyncio.Future[Running], stop: asyncio.Event) -> None:
    """Run a target in its own task, the way ``cdp target serve`` does."""
    r = await start_target(data_dir, history_window_s=0.0)
    ready.set_result(r)
    try:
        await stop.wait()
    finally:
        await stop_target(r)


async def test_full_disk_during_apply(small_fs: str) -> None:
    data_dir = os.path.join(small_fs, "target")
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[Running] = loop.create_future()
    stop = asyncio.Event()
    host = asyncio.create_task(_host(data_dir, ready, stop))
    r = await ready
    try:
        reply = await r.client.open_session("host-a", SPEC, 0, 1)
        stream = r.client.stream(reply.session_id)

        async def put_applied(rec: Record) -> None:
            await stream.send([rec])
            ack = await stream.recv()
            assert ack is not None and ack.durable_seq == rec.seq
            end = time.monotonic() + 3
            while (await r.client.status(GROUP)).groups[0].applied_seq < rec.seq:
                assert time.monotonic() < end
                await asyncio.sleep(0.005)

        seq = 1
        for _ in range(50):  # until the next small record fits in the last pages
            await put_applied(make_record(seq, 0, seq * PAGE, bytes(512), ts=time.time_ns()))
            seq += 1
            if slack(wal_path(data_dir)) >= 512 and slack(segment_path(data_dir)) >= 512:
                break
        fill_up(small_fs)
        # durable and acked (segment and index fit), but applying it needs a new page
        # of the sparse replica extent
        await stream.send([make_record(seq, 0, 6 * 2**20, b"A" * 512, ts=time.time_ns())])
        ack = await stream.recv()
        assert ack is not None and ack.durable_seq == seq
        stream.cancel()
        await asyncio.sleep(0.3)
        assert not host.done(), "the target stopped because the replica volume is full"
        st = (await r.client.status(GROUP)).groups[0]
        assert st.durable_seq == seq
        os.unlink(os.path.join(small_fs, "filler"))
        end = time.monotonic() + 3
        while (await r.client.status(GROUP)).groups[0].applied_seq < seq:
            assert time.monotonic() < end, "apply did not resume after space was freed"
            await asyncio.sleep(0.01)
        # and the target still takes new groups
        await r.client.open_session("host-b", small_group("g2"), 0, 1)
    finally:
        stop.set()
        with contextlib.suppress(BaseException):
            await host


async def test_restart_on_a_full_disk_says_storage_full(small_fs: str) -> None:
    data_dir = os.path.join(small_fs, "target")
    r = await start_target(data_dir, history_window_s=3600)
    try:
        reply = await r.client.open_session("host-a", SPEC, 0, 1)
        stream = r.client.stream(reply.session_id)
        await stream.send([make_record(1, ts=time.time_ns())])
        assert (await stream.recv()) is not None
        stream.cancel()
    finally:
        await stop_target(r)
    fill_up(small_fs)
    error: BaseException | None = None
    try:
        r = await start_target(data_dir, history_window_s=3600)
    except Exception as exc:  # noqa: BLE001 - its type is what is checked
        error = exc
    else:
        await stop_target(r)
    assert error is None or isinstance(error, StorageFullError), repr(error)


async def test_a_checkpoint_writes_nothing_of_its_own(tmp_path: Path) -> None:
    # Found by the source-side full-volume test: the checkpoint loop ended the target's
    # task group on StorageFullError when its own index write (re-tagging a listed point)
    # met a full disk. A checkpoint is now chosen before its point is indexed (the point's
    # kind never changes, docs/PROTOCOL.md 5), so the loop has no write of its own that a
    # full disk could refuse: an index refusing every re-tag changes nothing.
    r = await start_target(str(tmp_path / "t"), history_window_s=3600, checkpoint_interval_s=0.1)
    stop_error: BaseException | None = None
    try:
        reply = await r.client.open_session("host-a", SPEC, 0, 1)
        index, retags = r.target.groups[GROUP].catalog.index, []

        def full_disk(group: str, point: object) -> None:
            retags.append(point)
            raise StorageFullError("index", "No space left on device")

        index.tag_point = full_disk  # type: ignore[method-assign]
        await asyncio.sleep(0.3)  # the checkpoint loop runs a few times
        stream = r.client.stream(reply.session_id)
        await stream.send([make_record(1, 0, 0, bytes(512), ts=time.time_ns())])
        ack = await stream.recv()
        assert ack is not None and ack.durable_seq == 1
        points = await r.client.list_points(GROUP, labelled_only=True)
        assert [(p.seq, p.kind) for p in points] == [(1, POINT_CHECKPOINT)]
        assert retags == [], "no point was re-tagged"
        await stream.send([make_record(2, 0, 0, bytes(512), ts=time.time_ns())])
        ack = await stream.recv()
        assert ack is not None and ack.durable_seq == 2, "intake went on throughout"
        stream.cancel()
    finally:
        stop_error = await _stop_quietly(r)
    assert stop_error is None, repr(stop_error)
