"""Attack-aware retention and the retention lock at a real target (gRPC on loopback,
RocksDB, real journal files): a standing suspicion pins the clean history before its
onset, so a size-capped journal refuses the new (suspect) writes with RESOURCE_EXHAUSTED
instead of pushing clean history out, and the timeline says so; a retention lock cannot
be shortened by a reload or a restart, and the size limit cannot cut locked history."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Running, make_record, small_group, start_target, stop_target
from prometheus_client.registry import CollectorRegistry

from cdp.cli.target import Reloader
from cdp.cli.target_config import load_config
from cdp.errors import ConfigError, RemoteError
from cdp.sdnotify import Notifier
from cdp.target.retention_guard import load_lock
from cdp.web import TargetCollector

GROUP = "ag"
DISK = 4 * 2**20
LIMIT = 256 * 2**10


async def write(r: Running, first: int, count: int, size: int = 4096) -> int:
    """``count`` incompressible records from seq ``first`` on, one batch each; the last seq."""
    reply = await r.client.open_session("src", small_group(GROUP, disks=1), 0, first)
    stream = r.client.stream(reply.session_id)
    try:
        for seq in range(first, first + count):
            rec = make_record(seq, 0, (seq * size) % DISK, os.urandom(size), ts=time.time_ns())
            await stream.send([rec])
            ack = await stream.recv()
            assert ack is not None and ack.durable_seq == seq
    finally:
        stream.cancel()
    return first + count - 1


def refused_gauge(r: Running, cause: str) -> float | None:
    """``cdp_group_intake_refused{cause}`` of the group as /metrics reports it."""
    registry = CollectorRegistry()
    registry.register(TargetCollector(r.target))
    labels = {"group": GROUP, "member": "", "cause": cause}
    return registry.get_sample_value("cdp_group_intake_refused", labels)


async def write_until_refused(r: Running, first: int) -> tuple[int, RemoteError]:
    """Write until the target refuses; (the last durable seq, the error)."""
    durable = first - 1
    try:
        for _ in range(200):  # 800 KiB against a 256 KiB limit
            durable = await write(r, durable + 1, 1)
    except RemoteError as exc:
        return durable, exc
    raise AssertionError("the journal took 800 KiB against its 256 KiB limit")


async def test_a_suspicion_pins_clean_history_and_suspect_writes_give_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = await start_target(str(tmp_path / "t"), journal_limit_bytes=LIMIT,
                           history_window_s=3600.0)  # fmt: skip
    try:
        clean = await write(r, 1, 40)  # 160 KiB of clean history, all inside the window
        member = r.target.groups[GROUP]
        s = member.verdicts.raise_(clean + 1, time.time_ns(), disks=(0,), signal="entropy rise",
                                   now_ns=time.time_ns())  # fmt: skip
        with caplog.at_level(logging.WARNING):
            durable, err = await write_until_refused(r, clean + 1)
        assert err.code == "RESOURCE_EXHAUSTED", str(err)
        assert "pinned" in str(err) and s.id in str(err), str(err)
        assert "intake stops" in caplog.text and s.id in caplog.text
        assert member.applier.applied_seq == 0  # not one clean point was pushed out
        points = {p.seq for p in await r.client.list_points(GROUP)}
        assert set(range(1, clean + 1)) <= points
        timeline = await r.client.timeline(GROUP)
        assert "suspected attack" in timeline.spans[-1].cause
        assert not timeline.spans[-1].restorable and timeline.history_health == "error"
        assert (refused_gauge(r, "pin"), refused_gauge(r, "lock")) == (1.0, 0.0)
        member.verdicts.dismiss(s.id, "oncall", time.time_ns(), "a backup job")
        for _ in range(100):  # the apply loop cuts by size again, then intake resumes
            try:
                durable = await write(r, durable + 1, 10)
                break
            except RemoteError as again:
                assert again.code == "RESOURCE_EXHAUSTED"
                await asyncio.sleep(0.05)
        assert member.applier.applied_seq > 0 and member.size_cuts > 0
        assert (await r.client.timeline(GROUP)).history_health != "error"
        assert refused_gauge(r, "pin") == 0.0
    finally:
        await stop_target(r)


async def test_the_size_limit_cannot_cut_locked_history(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = await start_target(str(tmp_path / "t"), journal_limit_bytes=LIMIT,
                           history_window_s=3600.0, retention_lock_s=3600.0)  # fmt: skip
    try:
        with caplog.at_level(logging.ERROR):
            _, err = await write_until_refused(r, 1)
        assert err.code == "RESOURCE_EXHAUSTED", str(err)
        assert "retention lock of 3600 s" in str(err)
        assert any(rec.levelno == logging.ERROR and "retention lock" in rec.getMessage()
                   for rec in caplog.records)  # fmt: skip
        assert r.target.groups[GROUP].applier.applied_seq == 0
        timeline = await r.client.timeline(GROUP)
        assert "retention lock" in timeline.spans[-1].cause
        assert (refused_gauge(r, "lock"), refused_gauge(r, "hold")) == (1.0, 0.0)
    finally:
        await stop_target(r)


def _config(path: Path, data_dir: str, window: str, lock: str | None) -> None:
    path.write_text(
        f"data_dir: {data_dir}\ninsecure: true\npolicies:\n  default:\n"
        f"    history_window: {window}\n" + (f"    retention_lock: {lock}\n" if lock else "")
    )


async def test_a_reload_cannot_shorten_the_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tmp_path / "target.yaml"
    r = await start_target(str(tmp_path / "t"), history_window_s=7200.0,
                           retention_lock_s=3600.0)  # fmt: skip
    try:
        await write(r, 1, 2)  # the group exists: its lock is stored
        assert load_lock(r.target.index, GROUP).lock_s == 3600.0  # type: ignore[arg-type]
        _config(cfg, r.data_dir, "2h", "1h")
        reloader = Reloader(str(cfg), None, load_config(str(cfg)), r.target,  # type: ignore[arg-type]
                            Notifier.from_env({}))  # fmt: skip
        member = r.target.groups[GROUP]
        for window, lock, field in (
            ("2h", "30m", "retention_lock"),  # lowered
            ("2h", None, "retention_lock"),  # removed
            ("50m", None, "retention_lock"),  # removed, and the window shortened
            ("50m", "1h", "policies.default.history_window"),  # shorter than the lock
        ):
            _config(cfg, r.data_dir, window, lock)
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                reloader.reload()
            assert f"the running config stays: {field}: " in caplog.text, (window, lock)
            assert "retention lock" in caplog.text
            assert member.keeping.policy.retention_lock_s == 3600.0
            assert member.applier.retention_lock_s == 3600.0
            assert member.applier.history_window_s == 7200.0
        _config(cfg, r.data_dir, "45m", "30m")  # the file is fine; the stored lock is not
        with pytest.raises(ConfigError) as err:
            r.target.check_config(load_config(str(cfg)).target)
        assert err.value.field == "retention_lock"
        _config(cfg, r.data_dir, "3h", "2h")  # lengthening is allowed and stored
        reloader.reload()
        assert member.applier.retention_lock_s == 7200.0
        assert load_lock(r.target.index, GROUP).lock_s == 7200.0  # type: ignore[arg-type]
    finally:
        await stop_target(r)


async def test_a_restart_with_a_shorter_lock_or_window_is_refused(tmp_path: Path) -> None:
    data = str(tmp_path / "t")
    r = await start_target(data, history_window_s=7200.0, retention_lock_s=3600.0)
    try:
        await write(r, 1, 2)
    finally:
        await stop_target(r)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for flags, field in (
        (["--history-window", "2h"], "retention_lock"),  # the lock left out
        (["--history-window", "2h", "--retention-lock", "10m"], "retention_lock"),
        (["--history-window", "30m", "--retention-lock", "10m"], "retention_lock"),
        (["--history-window", "30m", "--retention-lock", "1h"], "--history-window"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "cdp", "target", "serve", "--data-dir", data, "--insecure",
             "--listen", "127.0.0.1:0", *flags],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        assert proc.returncode != 0, proc.stderr
        assert f"{field}: " in proc.stderr and "retention lock" in proc.stderr, proc.stderr
    # the same lock (or a longer one) starts, and the stored lock is unchanged
    r = await start_target(data, history_window_s=7200.0, retention_lock_s=3600.0)
    try:
        assert r.target.groups[GROUP].applier.retention_lock_s == 3600.0
    finally:
        await stop_target(r)
