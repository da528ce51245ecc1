"""Resync progress as the target counts it: never above 100 %, and a resync that does not
converge (write bytes received reach three times the total) says so, with what to do."""

from __future__ import annotations

from cdp.cli.status import render
from cdp.record import KIND_RESYNC_END, KIND_RESYNC_START, KIND_WRITE, Record
from cdp.target.resync_progress import PROGRESS_REGION_BYTES, STALLED_PASSES, ResyncProgress

MiB = 2**20


def _start(seq: int, total: int) -> Record:
    return Record(seq, 0, 0, 0, 1, 0, f"resync bytes={total}".encode(), KIND_RESYNC_START)


def _write(seq: int, offset: int, length: int = MiB) -> Record:
    return Record(seq, 0, offset, length, 1, 0, b"", KIND_WRITE)


def test_each_region_once_converges() -> None:
    p = ResyncProgress()
    p.observe([_start(1, 4 * MiB)] + [_write(2 + i, i * MiB) for i in range(4)])
    snap = p.snapshot()
    assert (snap.received_bytes, snap.total_bytes, snap.stalled) == (4 * MiB, 4 * MiB, "")


def test_regions_dirtied_again_as_fast_as_sent_is_stalled() -> None:
    p = ResyncProgress()
    p.observe([_start(1, 4 * MiB)])
    seq = 2
    for _ in range(STALLED_PASSES - 1):  # just below the bound: still converging
        p.observe([_write(seq + i, i * MiB) for i in range(4)])
        seq += 4
    p.observe([_write(seq, 0, MiB - 4096)])
    assert p.snapshot().stalled == ""
    p.observe([_write(seq + 1, 0, 4096) for _ in range(1)] + [_write(seq + 2, MiB, 3 * MiB)])
    snap = p.snapshot()
    assert snap.received_bytes == snap.total_bytes == 4 * MiB  # progress stays at 100 %
    assert "not converging" in snap.stalled and "write rate" in snap.stalled, snap.stalled
    assert snap.eta_s == 0.0
    p.observe([Record(seq + 3, 0, 0, 0, 1, 0, b"resync", KIND_RESYNC_END)])
    assert p.snapshot().stalled == ""


def test_second_start_continues_and_new_resync_starts_over() -> None:
    p = ResyncProgress()
    p.observe([_start(1, MiB), _write(2, 0), _write(3, 0), _start(4, MiB), _write(5, 0)])
    assert "not converging" in p.snapshot().stalled  # a restarted source continues the count
    p.observe([Record(6, 0, 0, 0, 1, 0, b"resync", KIND_RESYNC_END), _start(7, MiB)])
    assert p.snapshot().stalled == "" and p.received_bytes == 0
    assert MiB == PROGRESS_REGION_BYTES  # the tests above count in these regions


def test_cdp_status_prints_the_reason() -> None:
    group = {
        "group_id": "g", "state": "resyncing", "durable_seq": 9, "applied_seq": 0,
        "lag_seconds": 1.0, "rpo_seconds": 5.0, "journal_bytes": 0, "source_id": "s",
        "resync_total_bytes": MiB, "resync_received_bytes": MiB, "resync_eta_seconds": 0.0,
        "resync_stalled_reason": "resync not converging: lower the guest's write rate",
        "source_connected": True, "lifecycle": "protecting", "epoch": 0,
    }  # fmt: skip
    text = render([group])
    assert "stalled g" in text and "not converging" in text
    assert "ETA" not in text
