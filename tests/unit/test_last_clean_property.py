"""``last-clean`` is the newest restorable point whose verdict is clean, whatever the point
times (equal, a millisecond or hours apart: the search widens its window), the suspicions
(standing or dismissed, several) and where the detector started watching; and when there
is none, it is refused with FAILED_PRECONDITION. Checked against a brute-force scan of every
point, over the index seam's dict store and the real ``Verdicts`` table."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.errors import CdpError, PreconditionError
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.journal.index import IndexEntry
from cdp.journal.store.memory import MemoryIndex
from cdp.restore.catalog import Catalog
from cdp.restore.history import SingleHistory
from cdp.target.verdicts import Verdicts
from cdp.verdict import CLEAN, Suspicion

GAPS_NS = [0, 10**6, 10**9, 3600 * 10**9]
"""Steps between consecutive point times: equal, 1 ms, 1 s, 1 h."""


@dataclass
class Journal:
    """The MemberView of one member whose every seq is a point (no gaps, nothing applied)."""

    index: MemoryIndex
    verdicts: Verdicts
    durable_seq: int
    durable_ns: int
    key: str = "g"
    member_id: str = ""
    spec: GroupSpec = GroupSpec("g", (VmSpec("vm", (DiskSpec("0", 2**20),)),))
    created_ns: int = 0
    applied_seq: int = 0
    size_cuts: int = 0
    bookmark_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.index, self.key)

    def journal_bytes(self) -> int:
        return 0

    def damage(self) -> CdpError | None:
        return None

    def lookup(self, seq: int) -> IndexEntry | None:
        return self.index.get(self.key, seq)

    def holds_vm(self, vm_id: str) -> bool:
        return vm_id == "vm"

    def bookmark_taken(self, name: str) -> bool:
        return False

    async def quiesce(self) -> None:
        return None

    def verdict(self, seq: int) -> str:
        return self.verdicts.verdict(seq)

    def suspicions(self) -> list[Suspicion]:
        return self.verdicts.all()


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.sampled_from(GAPS_NS), min_size=0, max_size=25),
    watched=st.integers(0, 27),
    marks=st.lists(st.tuples(st.integers(1, 27), st.booleans()), max_size=3),
)
def test_last_clean_is_the_newest_clean_point(
    steps: list[int], watched: int, marks: list[tuple[int, bool]]
) -> None:
    index = MemoryIndex()
    ns, entries = 1_700_000_000 * 10**9, []
    for seq, step in enumerate(steps, start=1):
        ns += step
        entries.append(IndexEntry(seq, 1, seq * 100, ns, seq))
    if entries:
        index.put_batch("g", entries, ends=[e.seq for e in entries])
    table = Verdicts(index, "g")
    if watched:
        table.start_watching(watched)
    for start, dismissed in marks:
        s = table.raise_(start, ns, disks=(), signal="t", now_ns=ns)
        if dismissed:
            table.dismiss(s.id, "op", ns, "false alarm")
    member = Journal(index, table, len(entries), entries[-1].source_ns if entries else 0)
    history = SingleHistory(member, 3600.0, 0)
    clean = [e.seq for e in entries if table.verdict(e.seq) == CLEAN]
    try:
        got = history.resolve("last-clean").seq
    except PreconditionError as exc:
        assert not clean, (clean, str(exc))
        assert "no clean restore point" in str(exc)
        return
    assert clean and got == max(clean)
