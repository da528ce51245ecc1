"""Trusted time (issue 11, defect 4), as a property over real journal, RocksDB index and
applier: whatever the source's clock says (backwards, hours in the past, ahead within the
allowed skew), no point younger than the history window by the target's receive time is
ever planned for expiry, point times never go backwards, and a time resolves to the
newest point at or before it."""

from __future__ import annotations

import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from cdp import codec
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.journal.journal import Journal
from cdp.journal.store.rocksdb import RocksIndex
from cdp.record import Record
from cdp.target.applier import Applier
from cdp.target.replica import ReplicaSet

S = 10**9
T0 = 4_000_000_000 * S  # after the real clock: receive times are clamped never to go back
SPEC = GroupSpec("g", (VmSpec("vm", (DiskSpec("0", 2**20),)),))

steps = st.lists(
    st.tuples(
        st.integers(-7200, 299),  # source clock minus target clock, seconds
        st.integers(0, 900),  # target seconds since the previous batch
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(steps=steps, window_s=st.integers(1, 3600))
def test_only_trusted_time_expires_history(steps: list[tuple[int, int]], window_s: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        index = RocksIndex(f"{root}/index")
        journal = Journal(f"{root}/journal", "g", index)
        journal.open()
        replica = ReplicaSet(f"{root}/replica", SPEC)
        now = [T0]
        applier = Applier(journal, replica, index, window_s, clock_ns=lambda: now[0])
        received: dict[int, int] = {}
        try:
            for seq, (skew_s, step_s) in enumerate(steps, start=1):
                now[0] += step_s * S
                data = bytes([seq % 256]) * 512
                rec = Record(seq, 0, 0, 512, now[0] + skew_s * S, codec.checksum(data),
                             codec.compress(data))  # fmt: skip
                journal.append([rec], received_ns=now[0])
                journal.sync()
                received[seq] = now[0]
                plan = applier.plan()
                if plan is not None:  # everything it takes left the window by trusted time
                    assert received[plan.upto_seq] <= now[0] - window_s * S
                newest_old = [s for s, t in received.items() if t <= now[0] - window_s * S]
                assert (plan.upto_seq if plan else 0) == max(newest_old, default=0)
            points = index.points("g", -(2**63), 2**63 - 1, None, 1000)
            times = [p.source_ns for p in points]
            assert times == sorted(times), "point times never go backwards"
            for p in points:
                same = max(q.seq for q in points if q.source_ns == p.source_ns)
                assert index.seq_at_time("g", p.source_ns) == same
                assert index.seq_received_before("g", received[p.seq]) == max(
                    s for s, t in received.items() if t == received[p.seq]
                )
        finally:
            replica.close()
            journal.close()
            index.close()
