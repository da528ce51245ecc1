"""Verdicts on restore points and the persisted suspicion table (real RocksDB)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdp.errors import InvalidInputError, NotFoundError
from cdp.journal.store.rocksdb import RocksIndex
from cdp.target.verdicts import Verdicts
from cdp.verdict import CLEAN, SUSPECT, UNKNOWN, Suspicion, verdict_of

suspicions = st.lists(
    st.builds(
        Suspicion,
        id=st.just("s"),
        start_seq=st.integers(1, 1000),
        start_ns=st.just(0),
        dismissed_by=st.sampled_from(["", "op"]),
    ),
    max_size=4,
)


@given(seq=st.integers(1, 1000), items=suspicions, watched=st.integers(0, 1000))
def test_verdict_is_suspect_exactly_at_or_after_a_standing_onset(
    seq: int, items: list[Suspicion], watched: int
) -> None:
    got = verdict_of(seq, items, watched)
    covered = any(s.start_seq <= seq and not s.dismissed_by for s in items)
    if covered:
        assert got == SUSPECT
    elif watched == 0 or seq < watched:
        assert got == UNKNOWN
    else:
        assert got == CLEAN


def test_table_survives_reopen_and_dismissal_clears_the_verdict(tmp_path: Path) -> None:
    index = RocksIndex(f"{tmp_path}/index")
    table = Verdicts(index, "g1")
    table.start_watching(10)
    s = table.raise_(50, 5_000, disks=(0,), signal="entropy", now_ns=6_000)
    table.close(s.id, 80, 8_000)
    assert (table.verdict(9), table.verdict(49), table.verdict(50), table.verdict(999)) == (
        UNKNOWN, CLEAN, SUSPECT, SUSPECT,
    )  # fmt: skip
    index.close()
    index = RocksIndex(f"{tmp_path}/index")
    again = Verdicts(index, "g1")
    assert again.all() == table.all() and again.watched_from_seq == 10
    again.dismiss(s.id, "role 'edr'", 9_000, "false alarm: media copy")
    again.dismiss(s.id, "someone else", 9_500, "twice")  # a second call changes nothing
    assert again.get(s.id).dismissed_by == "role 'edr'"
    assert again.verdict(60) == CLEAN and again.onset_seq() == 0
    index.close()


def test_bad_input_names_the_field(tmp_path: Path) -> None:
    index = RocksIndex(f"{tmp_path}/index")
    table = Verdicts(index, "g1")
    with pytest.raises(InvalidInputError, match="end"):
        table.mark(10, 1, 5, 1, who="op", reason="x", now_ns=1)
    with pytest.raises(InvalidInputError, match="reason"):
        table.mark(10, 1, 0, 0, who="op", reason="\x00", now_ns=1)
    with pytest.raises(NotFoundError):
        table.dismiss("s-9", "op", 1, "")
    assert table.all() == []
    index.close()


@pytest.mark.soak  # ~2 min: each change rewrites the whole table; 2400 changes find the race
def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """The detector's thread and the RPC edge write at once: every suspicion is kept.

    Without the table's lock this fails (duplicate ids, lost suspicions).
    """
    index = RocksIndex(f"{tmp_path}/index")
    table = Verdicts(index, "g1")

    def raise_many(base: int) -> None:
        for i in range(300):
            s = table.raise_(base + i, 1, disks=(), signal="t", now_ns=1)
            table.close(s.id, base + i, 1)

    threads = [threading.Thread(target=raise_many, args=(k * 1000 + 1,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [s.id for s in table.all()]
    assert len(ids) == len(set(ids)) == 2400
    assert all(not s.is_open for s in table.all())
    assert len(Verdicts(index, "g1").all()) == 2400  # and every one was stored
    index.close()
