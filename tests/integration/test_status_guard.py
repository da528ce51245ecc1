"""Retention and detector state where the on-call engineer looks (GetStatus, `cdp status`
text and JSON), at a real target on loopback: intake refused to keep locked history, the
retention lock in force, the detector training until a time and then watching since a
seq; an unexplained clock jump as `cdp status` renders it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from conftest import start_target, stop_target
from test_attack_retention import GROUP, LIMIT, write, write_until_refused

from cdp.cli.status import fetch, render
from cdp.rpc.client import ReplicationClient
from cdp.rpc.convert import status_to_dict
from cdp.v1 import replication_pb2 as pb


async def test_status_says_intake_is_refused_by_the_lock_and_the_lock_in_force(
    tmp_path: Path,
) -> None:
    r = await start_target(str(tmp_path / "t"), journal_limit_bytes=LIMIT,
                           history_window_s=3600.0, retention_lock_s=3600.0)  # fmt: skip
    try:
        await write(r, 1, 1)
        (before,) = await fetch(ReplicationClient(r.address), GROUP)
        assert (before["intake_refused_by"], before["intake_refused_reason"]) == ("", "")
        assert before["retention_lock_seconds"] == 3600.0
        assert "ALERT" not in render([before])
        _, err = await write_until_refused(r, 2)
        (g,) = await fetch(ReplicationClient(r.address), GROUP)
        assert g["intake_refused_by"] == "lock"
        assert "retention lock of 3600 s" in g["intake_refused_reason"], g
        assert g["clock_jump_seconds"] == 0.0
        text = render([g])
        alert = next(line for line in text.splitlines() if line.startswith("ALERT"))
        assert alert.startswith(f"ALERT {GROUP}: intake refused (lock): "), text
        assert "journal at its size limit" in alert and "lock cannot be shortened" in alert
        assert "retention lock 3600 s" in text, text
    finally:
        await stop_target(r)


async def test_status_shows_the_detector_training_until_then_watching_since(
    tmp_path: Path,
) -> None:
    r = await start_target(str(tmp_path / "t"), detect_training_s=1.0)
    try:
        t0 = time.time_ns()
        await write(r, 1, 1)
        (g,) = await fetch(ReplicationClient(r.address), GROUP)
        assert g["detector_phase"] == "training" and g["detector_watching_from_seq"] == 0
        until = g["detector_training_until_unix_ns"]
        assert t0 + 10**9 - 10**8 <= until <= time.time_ns() + 10**9 + 10**8, (t0, until)
        assert "training until 20" in render([g]), render([g])
        seq = 1
        for _ in range(100):  # writes over more than the training's second end it
            seq = await write(r, seq + 1, 1)
            await r.target.groups[GROUP].detection_settled()
            (g,) = await fetch(ReplicationClient(r.address), GROUP)
            if g["detector_phase"] == "watching":
                break
            await asyncio.sleep(0.05)
        assert g["detector_phase"] == "watching", g
        since = g["detector_watching_from_seq"]
        assert 1 < since <= seq + 1
        assert f"detector {GROUP}: watching since seq {since:,}" in render([g])
    finally:
        await stop_target(r)


def test_status_text_alerts_on_a_clock_jump() -> None:
    msg = pb.GroupStatus(group_id="g", member_id="m", clock_jump_seconds=7200.0,
                         detector_phase="alerting", detector_watching_from_seq=12)  # fmt: skip
    text = render([status_to_dict(msg) | {"last_verified": None}])
    assert "ALERT g@m: the target's clock jumped +7200 s against its boot clock" in text, text
    assert "detector g@m: alerting (watching since seq 12)" in text, text
    quiet = render([status_to_dict(pb.GroupStatus(group_id="g")) | {"last_verified": None}])
    assert "ALERT" not in quiet and "detector" not in quiet, quiet
