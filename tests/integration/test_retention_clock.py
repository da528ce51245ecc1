"""Retention decisions over a real journal, RocksDB index and replica, with the target's
clocks injected: a standing suspicion pins the window's worth of history before its onset,
the retention lock keeps the newest history from the size limit, and a wall clock that
jumps (forward or back, while running or across a restart) expires nothing early."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cdp import codec
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.journal.journal import Journal
from cdp.journal.store.rocksdb import RocksIndex
from cdp.record import Record
from cdp.target.applier import Applier
from cdp.target.replica import ReplicaSet
from cdp.target.retention_guard import CLOCK_JUMP_BOUND_S, LOCK, PIN
from cdp.target.verdicts import Verdicts

S = 10**9
T0 = 4_000_000_000 * S  # after the real clock: receive times are clamped never to go back
GROUP = "g"
SPEC = GroupSpec(GROUP, (VmSpec("vm", (DiskSpec("0", 4 * 2**20),)),))


@dataclass
class Clocks:
    """The target's wall clock and the boot clock, set by the test."""

    wall: int = T0
    mono: int = 10**12

    def advance(self, seconds: float) -> None:
        self.wall += int(seconds * S)
        self.mono += int(seconds * S)

    def jump(self, seconds: float) -> None:
        self.wall += int(seconds * S)


@dataclass
class Rig:
    """A journal with its index, replica, verdicts and an applier on injected clocks."""

    root: Path
    clocks: Clocks
    index: RocksIndex
    journal: Journal
    replica: ReplicaSet
    verdicts: Verdicts
    applier: Applier
    received: dict[int, int] = field(default_factory=dict)

    def write(self, count: int, size: int = 4096) -> int:
        """``count`` records, one batch each, received at the wall clock; the last seq."""
        for _ in range(count):
            seq = self.journal.durable_seq + 1
            data = random.Random(seq).randbytes(size)  # incompressible: sizes are real
            rec = Record(seq, 0, (seq * size) % (4 * 2**20), size, self.clocks.wall,
                         codec.checksum(data), codec.compress(data))  # fmt: skip
            self.journal.append([rec], received_ns=self.clocks.wall)
            self.journal.sync()
            self.received[seq] = self.clocks.wall
        return self.journal.durable_seq

    def apply_all(self) -> int:
        while self.applier.apply_once():
            pass
        return self.applier.applied_seq


def make_applier(
    index: RocksIndex, journal: Journal, replica: ReplicaSet, verdicts: Verdicts, clocks: Clocks,
    **kw: float,
) -> Applier:  # fmt: skip
    def onset() -> tuple[int, int]:
        s = min(verdicts.standing(), key=lambda s: s.start_seq, default=None)
        return (s.start_seq, s.start_ns) if s else (0, 0)

    return Applier(
        journal, replica, index, kw.get("window_s", 0.0), int(kw.get("limit", 0)),
        clock_ns=lambda: clocks.wall, mono_ns=lambda: clocks.mono,
        retention_lock_s=kw.get("lock_s", 0.0), onset=onset,
    )  # fmt: skip


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clocks = Clocks()
    index = RocksIndex(str(tmp_path / "index"))
    journal = Journal(str(tmp_path / "journal"), GROUP, index, 64 * 2**10)
    journal.open()
    replica = ReplicaSet(str(tmp_path / "replica"), SPEC)
    verdicts = Verdicts(index, GROUP)
    applier = make_applier(index, journal, replica, verdicts, clocks, window_s=100.0)
    r = Rig(tmp_path, clocks, index, journal, replica, verdicts, applier)
    try:
        yield r
    finally:
        r.replica.close()
        r.journal.close()
        r.index.close()


def test_a_pin_keeps_the_window_before_the_onset_until_dismissed(rig: Rig) -> None:
    for _ in range(20):  # seq i received at T0 + 50 i s
        rig.clocks.advance(50)
        rig.write(1)
    onset = 15  # received at T0 + 750 s; the window before it reaches back to T0 + 650 s
    s = rig.verdicts.raise_(onset, rig.received[onset], disks=(0,), signal="entropy rise",
                            now_ns=rig.clocks.wall)  # fmt: skip
    rig.clocks.advance(1000)  # every record is older than the 100 s window now
    assert rig.applier.ceiling(rig.clocks.wall) == (13, PIN)
    assert rig.apply_all() == 13  # 14 (the newest clean point, inside the window) stays
    rig.verdicts.dismiss(s.id, "oncall", rig.clocks.wall, "backup job")
    assert rig.apply_all() == 20  # normal retention resumes


def test_a_pin_without_a_window_keeps_the_newest_clean_point(rig: Rig) -> None:
    rig.applier.set_retention(0.0, 0)
    rig.write(5)
    rig.verdicts.raise_(4, rig.received[4], disks=(), signal="marked", now_ns=rig.clocks.wall)
    rig.write(5)
    assert rig.apply_all() == 3


def test_a_suspicion_whose_onset_is_in_the_base_pins_nothing(rig: Rig) -> None:
    rig.applier.set_retention(0.0, 0)
    rig.write(5)
    assert rig.apply_all() == 5
    rig.verdicts.raise_(3, rig.received[3], disks=(), signal="marked", now_ns=rig.clocks.wall)
    rig.write(5)
    assert rig.apply_all() == 10  # the base already holds suspect writes: nothing to keep


def test_the_lock_stops_size_cuts_at_locked_history(rig: Rig) -> None:
    rig.applier.set_retention(3600.0, 256 * 2**10, 600.0)
    rig.write(40)  # 160 KiB
    rig.clocks.advance(700)  # those 40 left the 600 s lock (not the 3600 s window)
    rig.write(30)  # 280 KiB in all: the size cut needs a few of the first 40 only
    assert 0 < rig.apply_all() <= 40
    assert rig.applier.over_limit_blocker() == ""
    rig.write(60)  # now the cut would have to take locked records: intake must stop
    assert rig.applier.over_limit_blocker() == LOCK
    assert rig.apply_all() == 40
    assert rig.applier.over_limit_blocker() == LOCK
    assert rig.applier.ceiling(rig.clocks.wall) == (40, LOCK)
    rig.clocks.jump(-3600)  # a clock set back does not unlock anything either
    assert rig.apply_all() == 40


def test_a_forward_jump_expires_nothing_until_the_clock_is_set_right(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.write(10)
    rig.clocks.advance(10)
    assert rig.apply_all() == 0  # all inside the 100 s window
    with caplog.at_level(logging.ERROR):
        rig.clocks.jump(2 * 3600)  # someone sets the clock two hours ahead
        assert rig.apply_all() == 0
    assert rig.applier.clock.jumped and "moved +7200 s" in caplog.text
    rig.clocks.advance(30)
    assert rig.apply_all() == 0  # still only 40 s old by the boot clock
    rig.clocks.jump(-2 * 3600)  # set right again
    rig.clocks.advance(61)
    assert rig.apply_all() == 10 and not rig.applier.clock.jumped


def test_small_steps_add_up_to_a_jump(rig: Rig) -> None:
    rig.write(5)
    for _ in range(4):  # 4 x 40 s ahead, each within the bound, in under a minute
        rig.clocks.advance(5)
        rig.clocks.jump(40)
        rig.apply_all()
    assert rig.applier.clock.jumped
    assert rig.applier.applied_seq == 0  # 20 s old by the boot clock


def test_a_backward_jump_across_a_restart_expires_nothing_early(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.write(5)
    rig.clocks.advance(60)
    rig.apply_all()  # the high-water mark moves on
    rig.applier.clock.flush()
    # the target restarts with its clock set back 3 hours
    rig.clocks.jump(-3 * 3600)
    with caplog.at_level(logging.ERROR):
        applier = make_applier(rig.index, rig.journal, rig.replica, rig.verdicts, rig.clocks,
                               window_s=100.0)  # fmt: skip
    assert applier.clock.jumped and "since the target last ran" in caplog.text
    rig.journal.keep_received_after(applier.clock.high_water_ns)  # as Member.open does
    rig.applier = applier
    rig.write(5)  # received "3 hours ago" by the wall clock: stamped at the high-water mark
    rig.clocks.advance(50)
    assert rig.apply_all() == 0  # the first five are 110 s old: time is not trusted yet
    rig.clocks.jump(3 * 3600)  # the clock is set right
    assert rig.apply_all() == 5  # the first five leave; the new ones are 50 s old
    assert not applier.clock.jumped
    rig.clocks.advance(60)
    assert rig.apply_all() == 10


def test_a_backward_jump_is_explained_when_the_clock_catches_up(rig: Rig) -> None:
    rig.write(3)
    rig.clocks.advance(10)
    rig.apply_all()
    rig.clocks.jump(-10 * CLOCK_JUMP_BOUND_S)
    assert rig.apply_all() == 0 and rig.applier.clock.jumped
    rig.clocks.advance(10 * CLOCK_JUMP_BOUND_S + 1)  # the slow clock passed its high-water
    rig.apply_all()
    assert not rig.applier.clock.jumped
    # 601 s after the writes by the boot clock, but the wall says 11 s: nothing early
    assert rig.applier.applied_seq == 0
    rig.clocks.advance(100)
    assert rig.apply_all() == 3
