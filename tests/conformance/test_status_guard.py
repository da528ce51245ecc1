"""Conformance of GroupStatus's retention and detector fields (docs/PROTOCOL.md, "Status
of retention and the detector") from protos/ alone: intake_refused_by and its reason
while the retention lock keeps a full journal, retention_lock_seconds, clock_jump_seconds
of a trusted clock, and the detector training until a time, then watching from a seq."""

from __future__ import annotations

import os
import time

import grpc

from tests.conformance.conftest import MiB, refused

S = 10**9


def test_lock_refusal_and_the_lock_in_force_are_in_status(
    make_target: object, make_client: object
) -> None:
    t = make_target("--history-window", "2h", "--retention-lock", "1h",  # type: ignore[operator]
                    "--journal-limit", "256KiB", name="locked")  # fmt: skip
    c = make_client(t, group="lk", vms=[("lk-vm", [4 * MiB])])  # type: ignore[operator]
    c.open()
    c.send([c.write(1, os.urandom(4096))])
    before = c.status()
    assert (before.intake_refused_by, before.intake_refused_reason) == ("", "")
    assert before.retention_lock_seconds == 3600.0 and before.clock_jump_seconds == 0.0
    seq = 1

    def fill() -> None:
        nonlocal seq
        for _ in range(200):  # 800 KiB against the 256 KiB limit
            c.send([c.write(seq + 1, os.urandom(4096), offset=(seq % 1000) * 4096)])
            seq += 1

    err = refused(fill)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    after = c.status()
    assert after.intake_refused_by == "lock", after
    assert "retention lock" in after.intake_refused_reason, after.intake_refused_reason
    assert after.retention_lock_seconds == 3600.0


def test_detector_trains_until_a_time_then_watches_from_a_seq(
    make_target: object, make_client: object
) -> None:
    t = make_target("--detect-training", "1s", name="detect")  # type: ignore[operator]
    c = make_client(t, group="dt", vms=[("dt-vm", [4 * MiB])])  # type: ignore[operator]
    c.open()
    t0 = time.time_ns()
    c.send([c.write(1, bytes(4096))])
    g = c.status()
    assert g.detector_phase == "training" and g.detector_watching_from_seq == 0
    assert t0 + S - S // 10 <= g.detector_training_until_unix_ns <= time.time_ns() + S + S // 10
    seq, deadline = 1, time.monotonic() + 30
    while g.detector_phase == "training" and time.monotonic() < deadline:
        seq += 1
        c.send([c.write(seq, bytes([seq % 256]) * 4096, offset=(seq % 1000) * 4096)])
        time.sleep(0.05)
        g = c.status()
    assert g.detector_phase == "watching", g
    assert 1 < g.detector_watching_from_seq <= seq + 1
    assert g.detector_training_until_unix_ns == 0
