"""Damaged base replica extents, seen through a real target restart and a real export.

Every case writes known data through the gRPC stream into a target that applies at once
(history window 0), stops it, damages the replica extent or its sums file on disk,
starts it again and reads the image at "latest". The verdict per case is one of:
``refused`` (DATA_LOSS / the group in ERROR naming the file), ``correct`` (the image is
the source's bytes) or ``WRONG``. No case may be WRONG; the table is printed.
"""

from __future__ import annotations

import asyncio
import ctypes
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MiB, Running, make_record, score, small_group, start_target, stop_target
from prometheus_client import CollectorRegistry

from cdp import codec
from cdp.errors import RemoteError
from cdp.record import KIND_RESYNC_END, KIND_RESYNC_START, Record
from cdp.target.extent_sums import REGION_BYTES
from cdp.web import TargetCollector

GROUP = "rc"
DATA_REGIONS = 3 * MiB // REGION_BYTES
"""Sum regions of the source's 3 MiB of data (the 4th MiB is zeros: no data, not read)."""
FLIPPED = (MiB + 4096) // REGION_BYTES
"""The sum region of the byte the scrub tests flip."""
SPEC = small_group(GROUP, disks=1, size=4 * MiB)
VM = f"{GROUP}-vm0"
TABLE: list[tuple[str, str, str]] = []


def source_data() -> bytes:
    """The source disk: 3 MiB of random bytes then 1 MiB of zeros."""
    return random.Random(5).randbytes(3 * MiB) + bytes(MiB)


async def send_all(r: Running, data: bytes) -> None:
    now = time.time_ns()
    recs: list[Record] = [
        make_record(i + 1, 0, i * 256 * 1024, data[i * 256 * 1024 : (i + 1) * 256 * 1024], now + i)
        for i in range(12)
    ]
    reply = await r.client.open_session("host-a", SPEC, 0, 1)
    stream = r.client.stream(reply.session_id)
    try:
        for i in range(0, 12, 4):
            await stream.send(recs[i : i + 4])
            ack = await stream.recv()
            assert ack is not None
    finally:
        stream.cancel()
    for _ in range(400):
        st = (await r.client.status(GROUP)).groups[0]
        if st.applied_seq == 12:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("apply did not catch up")


async def replicated(data_dir: str) -> bytes:
    """A target in ``data_dir`` that applied :func:`source_data`, stopped; the data."""
    want = source_data()
    r = await start_target(data_dir)
    try:
        await send_all(r, want)
    finally:
        await stop_target(r)
    return want


async def export(r: Running) -> bytes:
    """The image at latest, as a client exports it (holes are zeros)."""
    out = bytearray(4 * MiB)
    stream = r.client.read_image(GROUP, VM, 0, "latest")
    first = await anext(stream)
    assert first.plan.capacity_bytes == 4 * MiB
    async for msg in stream:
        out[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
    return bytes(out)


def extent(data_dir: str) -> str:
    return os.path.join(data_dir, "replicas", VM, f"{VM}_0-flat.vmdk")


def sums_file(data_dir: str) -> str:
    (path,) = glob.glob(os.path.join(data_dir, "**", f"{VM}_0-flat.vmdk.sums"), recursive=True)
    return path


def marker(seq: int, kind: int, label: str) -> Record:
    raw = label.encode()
    return Record(seq, 0, 0, 0, time.time_ns(), codec.checksum(raw), raw, kind)


def flip(path: str, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(8)
        f.seek(at)
        f.write(bytes(x ^ 0xFF for x in b))


def zero(path: str, at: int, n: int = 64 * 1024) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(bytes(n))


def punch(path: str, at: int, n: int = 64 * 1024) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        punch_hole, keep_size = 0x02, 0x01
        assert libc.fallocate(fd, punch_hole | keep_size, ctypes.c_long(at), ctypes.c_long(n)) == 0
    finally:
        os.close(fd)


def truncate(path: str, size: int) -> None:
    os.truncate(path, size)


CASES: dict[str, Callable[[str], None]] = {
    "extent: 8 bytes flipped": lambda d: flip(extent(d), MiB + 12345),
    "extent: 64 KiB zeroed": lambda d: zero(extent(d), 2 * MiB),
    "extent: 64 KiB hole punched": lambda d: punch(extent(d), 64 * 1024),
    "extent: truncated to 2 MiB": lambda d: truncate(extent(d), 2 * MiB),
    "extent: deleted": lambda d: os.unlink(extent(d)),
    "extent: zero region written": lambda d: flip(extent(d), 3 * MiB + 100),
    "sums: 8 bytes flipped": lambda d: flip(sums_file(d), 24 + 8),
    "sums: truncated": lambda d: truncate(sums_file(d), 24 + 8),
    "sums: deleted (rebuilt, loud)": lambda d: os.unlink(sums_file(d)),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_damaged_replica_is_never_exported_as_good(tmp_path: Path, case: str) -> None:
    data_dir = str(tmp_path / "target")
    want = source_data()
    r = await start_target(data_dir)
    try:
        await send_all(r, want)
        assert await export(r) == want
    finally:
        await stop_target(r)
    CASES[case](data_dir)

    r = await start_target(data_dir)
    try:
        try:
            got = await export(r)
            verdict = "correct" if got == want else "WRONG"
            detail = ""
        except RemoteError as exc:
            verdict, detail = "refused", exc.code
            assert exc.code in ("DATA_LOSS",), exc
            assert VM in str(exc) and "disk 0" in str(exc), exc
        error = r.target.status(GROUP)[0].error
        if error:
            detail += " + group in ERROR: " + error.split(":")[1].strip()[:50]
    finally:
        await stop_target(r)
    TABLE.append((case, verdict, detail))
    score("corruptions tried")
    score("corruptions silently wrong", verdict == "WRONG")
    assert verdict != "WRONG", f"{case}: a damaged replica was exported as good"
    if not case.startswith("sums: deleted"):
        assert verdict == "refused"


def run_scrub(data_dir: str) -> tuple[int, dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    p = subprocess.run(
        [sys.executable, "-m", "cdp", "target", "scrub", "--data-dir", data_dir, "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout)


async def test_scrub_finds_the_damaged_region_and_a_resync_repairs_it(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "target")
    want = await replicated(data_dir)
    code, clean = run_scrub(data_dir)
    assert code == 0 and clean["damage"] == [] and clean["regions_checked"] == DATA_REGIONS
    flip(extent(data_dir), MiB + 4096)
    code, found = run_scrub(data_dir)
    assert code == 1
    assert [(d["vm_id"], d["disk"], d["region"]) for d in found["damage"]] == [(VM, 0, FLIPPED)]

    r = await start_target(data_dir)
    try:
        reply = await r.client.open_session("host-a", SPEC, 0, 13)
        assert reply.resync_required and "region" in reply.resync_reason
        reply = await r.client.open_session("host-a", SPEC, 0, 13)  # sticky until it starts
        assert reply.resync_required
        region = 64 * 1024  # what the source's resync compares and sends
        offsets = list(range(0, 4 * MiB, region))
        hashes = [codec.checksum(want[o : o + region]) for o in offsets]
        differing = await r.client.compare_regions(reply.session_id, 0, region, offsets, hashes)
        assert differing == [FLIPPED * REGION_BYTES]  # the damaged sum region alone
        now = time.time_ns()
        start = marker(13, KIND_RESYNC_START, f"resync bytes={len(differing) * region}")
        recs = [start] + [
            make_record(14 + i, 0, o, want[o : o + region], now + i)
            for i, o in enumerate(differing)
        ]
        recs.append(marker(14 + len(differing), KIND_RESYNC_END, "resync done"))
        stream = r.client.stream(reply.session_id)
        await stream.send(recs)
        assert (await stream.recv()) is not None
        stream.cancel()
        for _ in range(400):
            if (await r.client.status(GROUP)).groups[0].applied_seq == 12 + len(recs):
                break
            await asyncio.sleep(0.01)
        assert await export(r) == want
    finally:
        await stop_target(r)
    code, after = run_scrub(data_dir)
    assert code == 0 and after["damage"] == []
    TABLE.append(("extent flipped, scrub + resync", "repaired", "scrub exit 1, then 0"))


def test_zz_print_replica_corruption_table(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the matrix (runs after the cases in this module)."""
    with capsys.disabled():
        print("\nreplica corruption matrix")
        for case, verdict, detail in TABLE:
            print(f"  {case:34} {verdict:8} {detail}")
    assert all(v != "WRONG" for _, v, _ in TABLE)


async def test_a_running_target_scrubs_on_request_and_asks_the_source_to_resync(
    tmp_path: Path,
) -> None:
    """Issue 12: the scrub runs inside a running target (on its schedule, or at once on
    SIGUSR1 / request), marks the damaged region, refuses it to readers, shows it in
    /metrics' source (``last_scrub``) and makes the next handshake ask for a resync."""
    data_dir = str(tmp_path / "target")
    r = await start_target(data_dir, history_window_s=0.0)
    try:
        await send_all(r, source_data())
        clean = await r.target.scrub_once()
        assert clean.damage == [] and clean.regions_checked == DATA_REGIONS
        flip(extent(data_dir), MiB + 4096)  # behind the running target's back
        report = await r.target.scrub_once()
        assert [(d.vm_id, d.disk, d.region) for d in report.damage] == [(VM, 0, FLIPPED)]
        assert r.target.last_scrub is not None and r.target.last_scrub[1] is report
        registry = CollectorRegistry()
        registry.register(TargetCollector(r.target))
        assert registry.get_sample_value("cdp_scrub_damaged_regions") == 1.0
        assert registry.get_sample_value("cdp_scrub_last_finished_timestamp_seconds")
        with pytest.raises(RemoteError) as info:
            await export(r)
        assert info.value.code == "DATA_LOSS"
        reply = await r.client.open_session("host-a", SPEC, 0, 13)
        assert reply.resync_required and "region" in reply.resync_reason
    finally:
        await stop_target(r)


async def test_the_scrub_loop_runs_on_its_schedule(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "target")
    r = await start_target(data_dir, history_window_s=0.0, scrub_interval_s=0.2)
    try:
        await send_all(r, source_data())
        for _ in range(200):
            if r.target.last_scrub is not None and r.target.last_scrub[1].regions_checked:
                break
            await asyncio.sleep(0.02)
        assert r.target.last_scrub is not None
        assert r.target.last_scrub[1].regions_checked == DATA_REGIONS
    finally:
        await stop_target(r)


def test_sigusr1_starts_a_scrub_in_cdp_target_serve(tmp_path: Path) -> None:
    """`cdp target serve` scrubs at once on SIGUSR1 (systemctl kill -s USR1), not only daily."""
    from helpers import free_port

    log_path, ready = tmp_path / "target.log", tmp_path / "ready.json"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cdp", "--log-level", "INFO", "target", "serve",
             "--insecure", "--data-dir", str(tmp_path / "data"),
             "--listen", f"127.0.0.1:{free_port()}", "--ready-file", str(ready)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        assert "scrub:" not in log_path.read_text()
        proc.send_signal(signal.SIGUSR1)
        while "scrub: 0 regions checked, 0 damaged" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def write_old_layout(data_dir: str, damage_at: int | None = None) -> None:
    """Rewrite the sums file as a release with 1 MiB regions wrote it (from the intact
    extent); then, optionally, damage the extent behind it."""
    from cdp.target.extent_sums import MAGIC, region_sum

    data = Path(extent(data_dir)).read_bytes()
    sums = [region_sum(data[i : i + MiB]) for i in range(0, len(data), MiB)]
    header = MAGIC + (MiB).to_bytes(8, "little") + len(data).to_bytes(8, "little")
    Path(sums_file(data_dir)).write_bytes(header + b"".join(s.to_bytes(8, "little") for s in sums))
    if damage_at is not None:
        flip(extent(data_dir), damage_at)


@pytest.mark.parametrize("damaged", [False, True])
async def test_sums_of_the_1_mib_layout_are_verified_then_converted(
    tmp_path: Path, damaged: bool
) -> None:
    """An upgrade from 1 MiB to 64 KiB sum regions keeps what the old sums proved: each
    old region is checked before it is split, and damage found then stays refused."""
    data_dir = str(tmp_path / "target")
    want = await replicated(data_dir)
    write_old_layout(data_dir, MiB + 12345 if damaged else None)
    r = await start_target(data_dir)
    try:
        head = Path(sums_file(data_dir)).read_bytes()[:24]
        assert int.from_bytes(head[8:16], "little") == REGION_BYTES == 64 * 1024
        if not damaged:
            assert await export(r) == want
            return
        with pytest.raises(RemoteError, match="DATA_LOSS") as err:
            await export(r)
        assert "region 16" in str(err.value) or "region 17" in str(err.value), err.value
    finally:
        await stop_target(r)
