"""The applier's retention decisions as a hypothesis state machine over a real journal,
RocksDB index, replica and verdict table: writes, time passing, clock jumps (either way,
small and large), window / size limit / lock changes (the lock only lengthens, as the
config allows), base holds, suspicions raised and dismissed, apply rounds. Invariant: a
held, pinned or locked point is never applied away, and nothing leaves by time before
it is older than the window by the true (boot) clock, give or take the clock bound."""

from __future__ import annotations

import random
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from cdp import codec
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.journal.journal import Journal
from cdp.journal.store.rocksdb import RocksIndex
from cdp.record import Record
from cdp.target.applier import Applier
from cdp.target.replica import ReplicaSet
from cdp.target.retention_guard import CLOCK_JUMP_BOUND_S, REANCHOR_NS
from cdp.target.verdicts import Verdicts

S = 10**9
T0 = 4_000_000_000 * S
SIZE = 4096
SPEC = GroupSpec("g", (VmSpec("vm", (DiskSpec("0", 4 * 2**20),)),))


class Retention(RuleBasedStateMachine):
    """One group's journal, applied under every retention rule at once."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        root = self.tmp.name
        self.index = RocksIndex(f"{root}/index")
        self.journal = Journal(f"{root}/journal", "g", self.index, 32 * 2**10)
        self.journal.open()
        self.replica = ReplicaSet(f"{root}/replica", SPEC)
        self.verdicts = Verdicts(self.index, "g")
        self.wall, self.mono = T0, 0
        self.true_recv: dict[int, int] = {}
        self.stamp: dict[int, int] = {}
        self.window_s, self.limit, self.lock_s = 600.0, 128 * 2**10, 0.0
        self.applier = Applier(
            self.journal, self.replica, self.index, self.window_s, self.limit,
            clock_ns=lambda: self.wall, mono_ns=lambda: self.mono, onset=self._onset,
        )  # fmt: skip

    def _onset(self) -> tuple[int, int]:
        s = min(self.verdicts.standing(), key=lambda s: s.start_seq, default=None)
        return (s.start_seq, s.start_ns) if s else (0, 0)

    @property
    def true_now(self) -> int:
        return T0 + self.mono

    def teardown(self) -> None:
        self.replica.close()
        self.journal.close()
        self.index.close()
        self.tmp.cleanup()

    # -- what happens ------------------------------------------------------------------

    @initialize(lock=st.sampled_from([0.0, 60.0, 300.0, 1200.0]),
                limit=st.sampled_from([0, 128 * 2**10, 256 * 2**10]))  # fmt: skip
    def start(self, lock: float, limit: int) -> None:
        self.lock_s, self.limit = lock, limit
        self.window_s = max(self.window_s, lock)
        self.applier.set_retention(self.window_s, limit, lock)

    @rule(count=st.integers(1, 24))
    def write(self, count: int) -> None:
        for _ in range(count):
            seq = self.journal.durable_seq + 1
            data = random.Random(seq).randbytes(SIZE)
            rec = Record(seq, 0, seq * SIZE % (4 * 2**20), SIZE, self.wall,
                         codec.checksum(data), codec.compress(data))  # fmt: skip
            self.journal.append([rec], received_ns=self.wall)
            self.journal.sync()
            self.true_recv[seq] = self.true_now
            self.stamp[seq] = max(self.wall, self.stamp.get(seq - 1, 0))  # as the journal clamps

    @rule(seconds=st.integers(0, 2400))
    def advance(self, seconds: int) -> None:
        self.wall += seconds * S
        self.mono += seconds * S

    @rule(seconds=st.one_of(st.integers(-7200, 7200), st.integers(-40, 40)))
    def jump(self, seconds: int) -> None:
        self.wall += seconds * S

    @rule(window=st.sampled_from([0.0, 60.0, 600.0, 3600.0]),
          limit=st.sampled_from([0, 128 * 2**10, 256 * 2**10]))  # fmt: skip
    def policy(self, window: float, limit: int) -> None:
        self.window_s = max(window, self.lock_s)  # the config refuses a window below the lock
        self.limit = limit
        self.applier.set_retention(self.window_s, limit, self.lock_s)

    @rule(lock=st.sampled_from([60.0, 300.0, 1200.0]))
    def lock(self, lock: float) -> None:
        self.lock_s = max(self.lock_s, lock)  # only lengthened
        self.window_s = max(self.window_s, self.lock_s)
        self.applier.set_retention(self.window_s, self.limit, self.lock_s)

    @rule(data=st.data())
    def hold(self, data: st.DataObject) -> None:
        low = self.applier.applied_seq
        self.applier.hold_base(data.draw(st.integers(low, max(low, self.journal.durable_seq))))

    @rule()
    def release(self) -> None:
        self.applier.hold_base(0)

    @precondition(lambda self: self.journal.durable_seq > self.applier.applied_seq)
    @rule(data=st.data())
    def suspect(self, data: st.DataObject) -> None:
        first = self.applier.applied_seq + 1
        seq = data.draw(st.integers(first, self.journal.durable_seq))
        self.verdicts.raise_(seq, self.stamp[seq], disks=(), signal="test", now_ns=self.wall)

    @precondition(lambda self: bool(self.verdicts.standing()))
    @rule(data=st.data())
    def dismiss(self, data: st.DataObject) -> None:
        s = data.draw(st.sampled_from(self.verdicts.standing()))
        self.verdicts.dismiss(s.id, "test", self.wall, "")

    # -- the invariant -----------------------------------------------------------------

    @invariant()
    def apply(self) -> None:
        """An apply round after every step, checked."""
        before = self.applier.applied_seq
        plan = self.applier.plan()
        self.applier.apply_once(max_records=10**6)
        after = self.applier.applied_seq
        if after == before:
            return
        assert plan is not None and after == plan.upto_seq
        hold = self.applier.hold_seq
        assert not hold or after <= hold, "a held base was passed"
        onset_seq, onset_ns = self._onset()
        slack = int(CLOCK_JUMP_BOUND_S * S) * (1 + self.mono // REANCHOR_NS) + 1
        for seq in range(before + 1, after + 1):
            age = self.true_now - self.true_recv[seq]
            if onset_seq:
                assert seq < onset_seq, f"seq {seq} at or after the onset {onset_seq} applied"
                if self.window_s > 0:
                    assert self.stamp[seq] <= onset_ns - self.window_s * S, "pinned seq applied"
            assert age + slack >= self.lock_s * S, f"locked seq {seq} applied ({age / S} s old)"
            if plan.reason == "time":
                assert age + slack >= self.window_s * S, f"seq {seq} left the window early"


TestRetention = Retention.TestCase
TestRetention.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
