"""The cdp.journal.index.Index contract, run against every implementation.

MemoryIndex (tests' stand-in) and RocksIndex (the target's real index, on tmp_path)
must answer every call the same way; RocksIndex must also survive a reopen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cdp.journal.index import Index, IndexEntry
from cdp.journal.store.memory import MemoryIndex
from cdp.journal.store.rocksdb import RocksIndex

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
# groups whose names share prefixes (byte order: "g" < "g-1" < "g.1" < "g1" < "g10")
GROUPS = ["g", "g1", "g10", "g.1", "g-1"]


def entry(seq: int, ns: int, segment: int = 1, position: int | None = None) -> IndexEntry:
    pos = position if position is not None else 64 * (seq - segment)
    return IndexEntry(seq, segment, pos, ns, (seq * 0x9E3779B97F4A7C15) % 2**64)


@pytest.fixture(params=["memory", "rocks"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Index]]:
    """A factory: each call opens the index (a reopen for RocksIndex)."""
    opened: list[Index] = []

    def factory() -> Index:
        if request.param == "memory":
            if not opened:
                opened.append(MemoryIndex())
            return opened[0]
        for old in opened:
            old.close()
        opened.clear()
        idx = RocksIndex(str(tmp_path / "index"))
        opened.append(idx)
        return idx

    yield factory
    for idx in opened:
        idx.close()


@pytest.fixture
def idx(make: Callable[[], Index]) -> Index:
    return make()


def fill(idx: Index, group: str, batches: list[list[tuple[int, int]]]) -> list[IndexEntry]:
    """put_batch each batch of (seq, source_ns); return every entry put."""
    out = []
    for b in batches:
        entries = [entry(seq, ns) for seq, ns in b]
        idx.put_batch(group, entries)
        out.extend(entries)
    return out


# -- empty -------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_empty_index(idx: Index, group: str) -> None:
    assert idx.get(group, 1) is None
    assert idx.last_seq(group) == 0
    assert idx.seq_at_time(group, 0) is None
    assert idx.seq_at_time(group, I64_MAX) is None
    assert idx.entries(group, 1, 100) == []
    assert idx.get_meta("groups") is None
    idx.put_batch(group, [])  # an empty batch is a no-op
    assert idx.last_seq(group) == 0 and idx.seq_at_time(group, I64_MAX) is None


# -- put_batch / get / last_seq ----------------------------------------------------


def test_put_get_last_seq_roundtrip(idx: Index) -> None:
    put = fill(idx, "g", [[(1, 10), (2, 11), (3, 12)], [(4, 20)], [(5, 30), (6, 31)]])
    for e in put:
        assert idx.get("g", e.seq) == e
    assert idx.get("g", 0) is None and idx.get("g", 7) is None
    assert idx.last_seq("g") == 6
    assert idx.entries("g", 2, 4) == put[1:4]
    assert idx.entries("g", 0, 100) == put
    assert idx.entries("g", 5, 4) == []


def test_entry_fields_keep_full_range(idx: Index) -> None:
    e = IndexEntry(2**40, 2**40 - 5, 2**63 + 7, I64_MIN, 2**64 - 1)
    f = IndexEntry(2**40 + 1, 2**40 - 5, 0, I64_MAX, 0)
    idx.put_batch("g", [e, f])
    assert idx.get("g", 2**40) == e
    assert idx.get("g", 2**40 + 1) == f
    assert idx.last_seq("g") == 2**40 + 1


def test_groups_with_shared_prefixes_are_separate(idx: Index) -> None:
    # each group gets its own seqs and times; g1 and g10 have higher seqs than g
    layout = {
        "g": [[(1, 100), (2, 200)], [(3, 300)]],
        "g1": [[(1, 150)], [(2, 250), (3, 350), (4, 450)], [(50, 5000)]],
        "g10": [[(7, 50), (8, 60)]],
        "g.1": [[(1, -5)]],
        "g-1": [[(9, 10**18)]],
    }
    put = {g: fill(idx, g, b) for g, b in layout.items()}
    assert {g: idx.last_seq(g) for g in layout} == {"g": 3, "g1": 50, "g10": 8, "g.1": 1, "g-1": 9}
    assert idx.last_seq("g2") == 0 and idx.last_seq("") == 0 and idx.last_seq("g10x") == 0
    for g, entries in put.items():
        for e in entries:
            assert idx.get(g, e.seq) == e
        assert idx.entries(g, 0, 100) == entries
    assert idx.get("g", 4) is None and idx.get("g", 50) is None and idx.get("g1", 7) is None
    # time lookups never cross into a neighbouring group
    assert idx.seq_at_time("g", 99) is None
    assert idx.seq_at_time("g", 10**19 // 10) == 3
    assert idx.seq_at_time("g1", 149) is None
    assert idx.seq_at_time("g1", 300) == 1  # g's point at 300 does not count
    assert idx.seq_at_time("g1", 449) == 1  # 250 and 350 are inside a batch
    assert idx.seq_at_time("g1", 450) == 4
    assert idx.seq_at_time("g1", I64_MAX) == 50
    assert idx.seq_at_time("g10", 49) is None and idx.seq_at_time("g10", 10**6) == 8
    assert idx.seq_at_time("g.1", -6) is None and idx.seq_at_time("g.1", -5) == 1
    assert idx.seq_at_time("g-1", 10**18 - 1) is None
    assert idx.seq_at_time("g2", I64_MAX) is None


def test_last_seq_of_a_group_sorting_before_a_busier_one(idx: Index) -> None:
    """last_seq looks backwards from the group's end: a group that sorts right before
    another must not pick up the other's keys, nor skip its own."""
    fill(idx, "g1", [[(1, 1)]])
    fill(idx, "g10", [[(s, s) for s in range(1, 100)]])
    assert idx.last_seq("g1") == 1
    assert idx.last_seq("g") == 0
    assert idx.last_seq("g100") == 0


def test_reput_replaces_entry(idx: Index) -> None:
    idx.put_batch("g", [entry(1, 10, position=0)])
    e = entry(1, 10, position=999)
    idx.put_batch("g", [e])
    assert idx.get("g", 1) == e
    assert idx.last_seq("g") == 1


# -- seq_at_time -------------------------------------------------------------------


BATCHES = [
    [(1, -1000), (2, -1000)],  # end at -1000
    [(3, -1)],
    [(4, -500), (5, -400), (6, 0)],  # inner records have earlier times: only the end counts
    [(7, 10)],
    [(8, 10), (9, 10)],  # same end time as the batch before: the higher seq wins
    [(10, I64_MAX)],
]


@pytest.mark.parametrize(
    ("when", "seq"),
    [
        (I64_MIN, None),
        (-1001, None),
        (-1000, 2),
        (-999, 2),
        (-500, 2),  # seq 4 at -500 is inside a batch, not a point
        (-2, 2),
        (-1, 3),
        (0, 6),
        (9, 6),
        (10, 9),
        (11, 9),
        (10**18, 9),
        (I64_MAX - 1, 9),
        (I64_MAX, 10),
    ],
)
def test_seq_at_time(idx: Index, when: int, seq: int | None) -> None:
    fill(idx, "g", BATCHES)
    fill(idx, "g1", [[(1, -2000)], [(2, 5)], [(3, I64_MAX)]])
    assert idx.seq_at_time("g", when) == seq


def test_seq_at_time_int64_extremes(idx: Index) -> None:
    fill(idx, "g", [[(1, I64_MIN)], [(2, I64_MAX)]])
    assert idx.seq_at_time("g", I64_MIN) == 1
    assert idx.seq_at_time("g", I64_MIN + 1) == 1
    assert idx.seq_at_time("g", I64_MAX - 1) == 1
    assert idx.seq_at_time("g", I64_MAX) == 2


@pytest.mark.parametrize("kind", ["memory", "rocks"])
def test_seq_at_time_beyond_int64(kind: str, tmp_path: Path) -> None:
    """Both implementations of the seam agree for any int time: clamp, do not raise."""
    idx: Index = MemoryIndex() if kind == "memory" else RocksIndex(str(tmp_path / "i"))
    try:
        fill(idx, "g", [[(1, -5)], [(2, 5)]])
        assert idx.seq_at_time("g", I64_MIN - 1) is None
        assert idx.seq_at_time("g", -(10**21)) is None
        assert idx.seq_at_time("g", I64_MAX + 1) == 2
        assert idx.seq_at_time("g", 10**21) == 2
    finally:
        idx.close()


# -- delete_upto -------------------------------------------------------------------


def test_delete_upto(idx: Index) -> None:
    put = fill(idx, "g", [[(1, 10), (2, 20)], [(3, 30)], [(4, 40), (5, 50)], [(6, 60)]])
    other = fill(idx, "g1", [[(1, 10), (2, 20)], [(3, 30)], [(4, 40), (5, 50)]])
    idx.delete_upto("g", 3)  # entries and points with seq < 3 go; 3 (a point) stays
    assert [idx.get("g", s) for s in range(1, 7)] == [None, None, *put[2:]]
    assert idx.entries("g", 0, 100) == put[2:]
    assert idx.last_seq("g") == 6
    assert idx.seq_at_time("g", 29) is None
    assert idx.seq_at_time("g", 30) == 3
    assert idx.seq_at_time("g", 49) == 3
    assert idx.seq_at_time("g", 55) == 5
    # the neighbour is untouched
    assert idx.entries("g1", 0, 100) == other
    assert idx.seq_at_time("g1", 25) == 2
    # deleting below what is left is a no-op; deleting all leaves an empty group
    idx.delete_upto("g", 1)
    assert idx.entries("g", 0, 100) == put[2:]
    idx.delete_upto("g", 7)
    assert idx.entries("g", 0, 100) == []
    assert idx.last_seq("g") == 0
    assert idx.seq_at_time("g", I64_MAX) is None
    assert idx.last_seq("g1") == 5
    # the group takes new entries afterwards
    fill(idx, "g", [[(7, 70)]])
    assert idx.last_seq("g") == 7 and idx.seq_at_time("g", 70) == 7


def test_delete_upto_between_points(idx: Index) -> None:
    """Cutting inside a batch drops the batch's earlier entries; its end point stays."""
    put = fill(idx, "g", [[(1, 10), (2, 20), (3, 30)], [(4, 40)]])
    idx.delete_upto("g", 2)
    assert idx.entries("g", 0, 10) == put[1:]
    assert idx.seq_at_time("g", 35) == 3
    assert idx.seq_at_time("g", 29) is None


def test_delete_upto_does_not_touch_prefix_groups(idx: Index) -> None:
    for g in GROUPS:
        fill(idx, g, [[(1, 1)], [(2, 2)], [(3, 3)]])
    idx.delete_upto("g", 100)
    idx.delete_upto("g1", 3)
    assert idx.last_seq("g") == 0
    assert [e.seq for e in idx.entries("g1", 0, 9)] == [3]
    for g in ("g10", "g.1", "g-1"):
        assert [e.seq for e in idx.entries(g, 0, 9)] == [1, 2, 3]
        assert idx.seq_at_time(g, 1) == 1


# -- metadata ----------------------------------------------------------------------


def test_meta(idx: Index) -> None:
    assert idx.get_meta("a") is None
    idx.put_meta("a", b"1")
    idx.put_meta("a/b", b"\0\xff\0")
    idx.put_meta("", b"empty key")
    idx.put_meta("empty", b"")
    idx.put_meta("ünï", b"x" * 100_000)
    assert idx.get_meta("a") == b"1"
    assert idx.get_meta("a/b") == b"\0\xff\0"
    assert idx.get_meta("") == b"empty key"
    assert idx.get_meta("empty") == b""
    assert idx.get_meta("ünï") == b"x" * 100_000
    assert idx.get_meta("a/") is None and idx.get_meta("A") is None
    idx.put_meta("a", b"2")
    assert idx.get_meta("a") == b"2"


def test_meta_and_groups_do_not_collide(idx: Index) -> None:
    idx.put_meta("g", b"meta")
    fill(idx, "g", [[(1, 1)]])
    idx.delete_upto("g", 10)
    assert idx.get_meta("g") == b"meta"
    idx.put_meta("r", b"r")
    idx.put_meta("t", b"t")
    assert idx.last_seq("") == 0 and idx.seq_at_time("", I64_MAX) is None


# -- bookmarks ---------------------------------------------------------------------


def test_bookmarks_per_group(idx: Index) -> None:
    fill(idx, "g", [[(1, 10)], [(2, 20)]])
    fill(idx, "g1", [[(1, 10)]])
    assert idx.get_bookmark("g", "before-upgrade") is None
    idx.put_bookmark("g", "before-upgrade", 2)
    idx.put_bookmark("g1", "before", 1)
    assert idx.get_bookmark("g", "before-upgrade") == 2
    assert idx.get_bookmark("g1", "before-upgrade") is None
    assert idx.get_bookmark("g", "before") is None
    assert idx.get_bookmark("g1", "before") == 1


# -- reopen (RocksIndex only) ------------------------------------------------------


def test_rocks_reopen_keeps_everything(tmp_path: Path) -> None:
    opened: list[RocksIndex] = []

    def make() -> RocksIndex:
        for old in opened:
            old.close()
        opened[:] = [RocksIndex(str(tmp_path / "index"))]
        return opened[0]

    try:
        _reopen_scenario(make)
    finally:
        for old in opened:
            old.close()


def _reopen_scenario(make: Callable[[], Index]) -> None:
    idx = make()
    put = fill(idx, "g", [[(1, 10), (2, 20)], [(3, 30)], [(4, 40)]])
    other = fill(idx, "g1", [[(1, -7)]])
    idx.put_meta("groups", b'["g","g1"]')
    idx.put_bookmark("g", "b1", 3)
    idx.delete_upto("g", 2)
    idx = make()  # close + reopen
    assert idx.entries("g", 0, 9) == put[1:]
    assert idx.get("g", 1) is None
    assert idx.last_seq("g") == 4 and idx.last_seq("g1") == 1
    assert idx.seq_at_time("g", 35) == 3 and idx.seq_at_time("g", 19) is None
    assert idx.seq_at_time("g1", -7) == 1
    assert idx.entries("g1", 0, 9) == other
    assert idx.get_meta("groups") == b'["g","g1"]'
    assert idx.get_bookmark("g", "b1") == 3
    # and it keeps working after the reopen
    fill(idx, "g", [[(5, 50)]])
    idx = make()
    assert idx.last_seq("g") == 5 and idx.seq_at_time("g", 60) == 5


def test_rocks_reopen_while_other_threads_use_the_index(tmp_path: Path) -> None:
    # After a failed write (e.g. a full volume) the next write reopens the handle. The
    # committer, applier and checkpoint loop use the index from their own threads; in the
    # full-volume test one of them met "Already mutably borrowed" during such a reopen
    # and the group's apply loop failed for good.
    import threading

    from cdp.journal.index import POINT_CHECKPOINT, Point

    idx = RocksIndex(str(tmp_path / "idx"))
    idx.put_batch("g", [entry(s, 1000 + s) for s in range(1, 200)])
    errors: list[BaseException] = []
    stop = threading.Event()

    def reopening_writer() -> None:
        try:
            for s in range(200, 400):
                idx._broken = True  # as after a failed write: the next write reopens
                idx.put_batch("g", [entry(s, 1000 + s)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert idx.get("g", 5) is not None
                idx.points("g", 0, 2**62, None, 50)
                idx.tag_point("g", Point(7, 1007, POINT_CHECKPOINT))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reopening_writer)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    idx.close()
    assert not errors, errors[:3]
    reopened = RocksIndex(str(tmp_path / "idx"))
    try:
        assert reopened.last_seq("g") == 399
    finally:
        reopened.close()
