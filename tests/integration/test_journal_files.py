"""cdp.journal.journal.Journal on real segment files, with MemoryIndex and with RocksIndex:
durability, torn tails, rolling, release, index rebuild, and index-ahead corruption."""

from __future__ import annotations

import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_record

from cdp import naming
from cdp.errors import JournalCorruptError
from cdp.journal.index import Index
from cdp.journal.journal import Journal
from cdp.journal.segment import scan
from cdp.journal.store.memory import MemoryIndex
from cdp.journal.store.rocksdb import RocksIndex
from cdp.record import CHAINED_HEADER_SIZE, HEADER_SIZE, Record

GROUP = "g1"


class Store:
    """An index that can be closed, reopened and lost, the way a target restart sees it."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.path = str(root / "index")
        self.root = str(root / "journal")
        self.index: Index = self._new()

    def _new(self) -> Index:
        return MemoryIndex() if self.kind == "memory" else RocksIndex(self.path)

    def reopen(self) -> Index:
        if self.kind == "rocks":
            self.index.close()
            self.index = self._new()
        return self.index

    def lose(self) -> Index:
        """The index is gone (deleted dir, or a fresh process for MemoryIndex)."""
        self.index.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self.index = self._new()
        return self.index

    def journal(self, segment_bytes: int = 64 * 2**20) -> Journal:
        return Journal(self.root, GROUP, self.index, segment_bytes)


@pytest.fixture(params=["memory", "rocks"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = Store(request.param, tmp_path)
    yield s
    s.index.close()


def recs(first: int, n: int, size: int = 512, seed: int = 0) -> list[Record]:
    rng = random.Random(seed * 7919 + first)
    return [
        make_record(s, disk=s % 2, offset=(s * 4096) % 2**20, data=rng.randbytes(size),
                    ts=1_700_000_000_000_000_000 + s * 1000)
        for s in range(first, first + n)
    ]  # fmt: skip


def write(j: Journal, *batches: list[Record]) -> None:
    for b in batches:
        j.append(b)
        j.sync()


def seg_files(j: Journal) -> list[str]:
    return sorted(n for n in os.listdir(j.dir) if n.endswith(".seg"))


def flip(path: str, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)[0]
        f.seek(at)
        f.write(bytes([b ^ 0xFF]))


# -- append, sync, reopen ------------------------------------------------------------


def test_append_sync_reopen_read_back(store: Store) -> None:
    j = store.journal()
    rep = j.open()
    assert (rep.segments, rep.durable_seq, rep.torn_bytes_cut, rep.reindexed) == (0, 0, 0, 0)
    batches = [recs(1, 3), recs(4, 1), recs(5, 4, size=8192)]
    write(j, *batches)
    every = [r for b in batches for r in b]
    assert j.durable_seq == 8 and j.durable_ns == every[-1].source_ns
    assert list(j.read_range(1, 8)) == every
    j.close()

    store.reopen()
    j = store.journal()
    rep = j.open()
    assert rep.segments == 1 and rep.durable_seq == 8
    assert rep.torn_bytes_cut == 0 and rep.reindexed == 0
    assert j.durable_ns == every[-1].source_ns
    assert list(j.read_range(1, 8)) == every
    assert list(j.read_range(3, 5)) == every[2:5]
    assert list(j.read_range(7, 100)) == every[6:]  # capped at durable
    for r in every:
        e = j.lookup(r.seq)
        assert e is not None and e.data_xxh3 == r.data_xxh3 and e.source_ns == r.source_ns
    write(j, recs(9, 2))  # and it continues
    assert j.durable_seq == 10
    j.close()


def test_appended_but_unsynced_is_not_durable(store: Store) -> None:
    j = store.journal()
    j.open()
    write(j, recs(1, 2))
    j.append(recs(3, 2))
    assert j.durable_seq == 2 and j.appended_seq == 4
    assert list(j.read_range(1, 4)) == recs(1, 2)  # reads stop at durable
    assert j.lookup(3) is None
    j.close()


# -- torn tail -------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 10, -1])
def test_torn_tail_is_cut_on_open(store: Store, keep: int) -> None:
    """A crash mid-append: the unacked last record is partly on disk."""
    j = store.journal()
    j.open()
    good = recs(1, 5)
    write(j, good[:3], good[3:])
    path = os.path.join(j.dir, naming.format_segment(1))
    durable_size = os.path.getsize(path)
    torn = recs(6, 1)[0]
    j.append([torn])  # written, never synced nor acked
    j.close()
    cut_to = durable_size + (keep if keep > 0 else torn.encoded_size() - 1)
    os.truncate(path, cut_to)

    store.reopen()
    j = store.journal()
    rep = j.open()
    assert rep.torn_bytes_cut == cut_to - durable_size > 0
    assert rep.durable_seq == 5 == j.durable_seq
    assert os.path.getsize(path) == durable_size
    assert list(j.read_range(1, 5)) == good
    write(j, recs(6, 2, seed=1))  # seq 6 again, other bytes: it was never acked
    assert list(j.read_range(6, 7)) == recs(6, 2, seed=1)
    j.close()
    assert scan(path, 1).torn_bytes == 0


def test_garbage_tail_is_cut_on_open(store: Store) -> None:
    j = store.journal()
    j.open()
    write(j, recs(1, 4))
    j.close()
    path = os.path.join(j.dir, naming.format_segment(1))
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(random.Random(3).randbytes(777))
    store.reopen()
    j = store.journal()
    rep = j.open()
    assert rep.torn_bytes_cut == 777 and rep.durable_seq == 4
    assert os.path.getsize(path) == size
    assert list(j.read_range(1, 4)) == recs(1, 4)
    j.close()


def test_torn_first_record_of_a_new_segment(store: Store) -> None:
    """The crash hit right after a roll: the new segment holds a partial first record."""
    j = store.journal(segment_bytes=1500)
    j.open()
    write(j, *[recs(s, 1) for s in range(1, 5)])
    names = seg_files(j)
    assert len(names) >= 2
    j.append(recs(5, 1, size=2048))  # too big for the active segment: rolls
    new = seg_files(j)[-1]
    assert naming.parse_segment(new) == 5
    j.close()
    os.truncate(os.path.join(j.dir, new), 30)
    store.reopen()
    j = store.journal(segment_bytes=1500)
    rep = j.open()
    assert rep.durable_seq == 4 and rep.torn_bytes_cut == 30
    assert list(j.read_range(1, 4)) == [r for s in range(1, 5) for r in recs(s, 1)]
    write(j, recs(5, 1))
    assert j.durable_seq == 5
    j.close()


# -- rolling and release ---------------------------------------------------------------


def test_rolls_to_new_segments_named_by_first_seq(store: Store) -> None:
    j = store.journal(segment_bytes=2000)
    j.open()
    every = recs(1, 40, size=512)
    write(j, *[every[i : i + 3] for i in range(0, 40, 3)])
    names = seg_files(j)
    assert len(names) >= 5
    assert all(re.fullmatch(r"[0-9a-f]{16}\.seg", n) for n in names)
    assert names == sorted(names, key=lambda n: int(n[:16], 16))
    nxt = 1
    for n in names:
        first = int(n[:16], 16)
        assert first == nxt
        found = scan(os.path.join(j.dir, n), first)
        assert found.torn_bytes == 0 and found.records
        assert found.records[0].header.seq == first
        nxt = found.records[-1].header.seq + 1
        # a batch never straddles two segments, and a segment only overflows when one
        # batch alone is larger than the limit
        assert found.file_size <= 2000
    assert nxt == 41
    assert list(j.read_range(1, 40)) == every
    assert list(j.read_range(5, 22)) == every[4:22]
    j.close()

    store.reopen()
    j = store.journal(segment_bytes=2000)
    rep = j.open()
    assert rep.segments == len(names) and rep.durable_seq == 40 and rep.torn_bytes_cut == 0
    assert list(j.read_range(1, 40)) == every
    j.close()


def test_batch_larger_than_a_segment_gets_its_own(store: Store) -> None:
    j = store.journal(segment_bytes=1000)
    j.open()
    write(j, recs(1, 1), recs(2, 5, size=4096), recs(7, 1))
    names = [naming.parse_segment(n) for n in seg_files(j)]
    assert names == [1, 2, 7]
    assert list(j.read_range(1, 7)) == recs(1, 1) + recs(2, 5, size=4096) + recs(7, 1)
    j.close()


def test_release_upto_deletes_only_sealed_segments(store: Store) -> None:
    j = store.journal(segment_bytes=1500)
    j.open()
    every = recs(1, 30)
    write(j, *[[r] for r in every])
    firsts = [naming.parse_segment(n) for n in seg_files(j)]
    assert len(firsts) >= 4
    # the first seq of segment 2: only segment 1 is wholly at or below it
    assert firsts[2] - firsts[1] >= 2
    freed = j.release_upto(firsts[1])
    assert freed > 0
    assert [naming.parse_segment(n) for n in seg_files(j)] == firsts[1:]
    assert j.first_seq() == firsts[1]
    assert j.lookup(1) is None and j.lookup(firsts[1]) is not None
    assert list(j.read_range(firsts[1], 30)) == every[firsts[1] - 1 :]
    # a seq past the end: every sealed segment goes, the active one stays
    j.release_upto(10**9)
    assert [naming.parse_segment(n) for n in seg_files(j)] == firsts[-1:]
    assert j.durable_seq == 30
    assert list(j.read_range(firsts[-1], 30)) == every[firsts[-1] - 1 :]
    assert j.bytes_on_disk() == os.path.getsize(os.path.join(j.dir, seg_files(j)[0]))
    assert j.release_upto(10**9) == 0  # nothing more to free
    write(j, recs(31, 1))
    assert j.durable_seq == 31
    left = seg_files(j)
    j.close()

    store.reopen()
    j = store.journal(segment_bytes=1500)
    rep = j.open(floor_seq=30)
    assert rep.durable_seq == 31 and rep.segments == len(left)
    assert j.first_seq() == firsts[-1]
    assert list(j.read_range(firsts[-1], 31)) == (every + recs(31, 1))[firsts[-1] - 1 :]
    j.close()


def test_release_with_a_single_segment_keeps_it(store: Store) -> None:
    j = store.journal()
    j.open()
    write(j, recs(1, 5))
    assert j.release_upto(100) == 0
    assert seg_files(j) == [naming.format_segment(1)]
    assert list(j.read_range(1, 5)) == recs(1, 5)
    j.close()


# -- index lost / lagging / ahead ------------------------------------------------------


def test_lost_index_is_rebuilt_from_segments(store: Store) -> None:
    j = store.journal(segment_bytes=3000)
    j.open()
    every = recs(1, 25)
    write(j, *[every[i : i + 4] for i in range(0, 25, 4)])
    assert len(seg_files(j)) >= 3
    j.close()

    store.lose()
    assert store.index.last_seq(GROUP) == 0
    j = store.journal(segment_bytes=3000)
    rep = j.open()
    assert rep.reindexed == 25 and rep.durable_seq == 25 and rep.torn_bytes_cut == 0
    assert store.index.last_seq(GROUP) == 25
    assert j.durable_ns == every[-1].source_ns
    for r in every:
        e = j.lookup(r.seq)
        assert e is not None
        assert (e.source_ns, e.data_xxh3) == (r.source_ns, r.data_xxh3)
    assert list(j.read_range(1, 25)) == every
    assert store.index.seq_at_time(GROUP, every[9].source_ns) == 10
    write(j, recs(26, 2))
    assert list(j.read_range(24, 27)) == every[23:] + recs(26, 2)
    j.close()
    # the rebuilt index is a normal index: the next open has nothing to redo
    store.reopen()
    j = store.journal(segment_bytes=3000)
    assert j.open().reindexed == 0
    j.close()


def test_lagging_index_is_caught_up(store: Store) -> None:
    """The index lost its newest entries (RocksDB writes them unsynced)."""
    j = store.journal()
    j.open()
    every = recs(1, 3) + recs(4, 3) + recs(7, 3)
    write(j, every[:3], every[3:6], every[6:])
    j.close()
    first_batch = [store.index.get(GROUP, s) for s in range(1, 4)]
    store.lose()
    store.index.put_batch(GROUP, [e for e in first_batch if e is not None])
    j = store.journal()
    rep = j.open()
    assert rep.reindexed == 6 and rep.durable_seq == 9
    assert [store.index.get(GROUP, s) for s in range(1, 4)] == first_batch
    assert list(j.read_range(1, 9)) == every
    j.close()


def test_index_ahead_of_segments_is_corruption(store: Store) -> None:
    """Acked (indexed) records are cut away by bad bytes in the middle of the last
    segment: open refuses, naming the segment path and the first lost seq."""
    j = store.journal()
    j.open()
    every = recs(1, 8)
    write(j, every[:4], every[4:])
    j.close()
    path = os.path.join(j.dir, naming.format_segment(1))
    starts = [loc.offset for loc in scan(path, 1).records]
    flip(path, starts[5] + HEADER_SIZE + 5)  # inside seq 6's frame

    store.reopen()
    j = store.journal()
    with pytest.raises(JournalCorruptError) as info:
        j.open()
    j.close()
    err = info.value
    assert err.path == path
    assert err.seq == 6
    assert path in str(err) and "seq 6" in str(err)
    assert "6..8" in str(err)


def test_index_ahead_after_losing_a_whole_last_segment(store: Store) -> None:
    j = store.journal(segment_bytes=1500)
    j.open()
    write(j, *[recs(s, 1) for s in range(1, 20)])
    names = seg_files(j)
    j.close()
    os.unlink(os.path.join(j.dir, names[-1]))
    lost_first = naming.parse_segment(names[-1])
    store.reopen()
    j = store.journal(segment_bytes=1500)
    with pytest.raises(JournalCorruptError) as info:
        j.open()
    j.close()
    assert info.value.seq == lost_first
    assert os.path.join(j.dir, names[-2]) == info.value.path
    assert f"seq {lost_first}" in str(info.value)


def test_index_ahead_leaves_the_segment_bytes_alone(store: Store) -> None:
    """A corrupt journal must stay as found: the records after one flipped byte are
    intact and acked, and an operator (or a repair tool) needs them."""
    j = store.journal()
    j.open()
    write(j, recs(1, 4), recs(5, 4))
    j.close()
    path = os.path.join(j.dir, naming.format_segment(1))
    starts = [loc.offset for loc in scan(path, 1).records]
    flip(path, starts[5] + HEADER_SIZE + 5)
    with open(path, "rb") as f:
        before = f.read()

    store.reopen()
    j = store.journal()
    with pytest.raises(JournalCorruptError):
        j.open()
    j.close()
    with open(path, "rb") as f:
        assert f.read() == before, "acknowledged records were cut from the segment"


def test_corrupt_sealed_segment_is_found_on_read(store: Store) -> None:
    """Only the newest segment is scanned on open; a bad byte in a sealed one is found
    when its records are read, naming that segment and seq."""
    j = store.journal(segment_bytes=1500)
    j.open()
    write(j, *[recs(s, 1) for s in range(1, 20)])
    names = seg_files(j)
    j.close()
    first_path = os.path.join(j.dir, names[0])
    starts = [loc.offset for loc in scan(first_path, 1).records]
    flip(first_path, starts[1] + CHAINED_HEADER_SIZE + 1)  # seq 2's frame
    store.reopen()
    j = store.journal(segment_bytes=1500)
    j.open()
    assert list(j.read_range(1, 1)) == recs(1, 1)
    with pytest.raises(JournalCorruptError) as info:
        list(j.read_range(1, 5))
    j.close()
    assert info.value.path == first_path and info.value.seq == 2
