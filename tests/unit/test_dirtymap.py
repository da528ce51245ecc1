from __future__ import annotations

import pytest

from cdp.source.dirtymap import DirtyMap


def test_mark_take_in_disk_order_and_clear() -> None:
    dm = DirtyMap([1 << 20, 1 << 20], region_bytes=65536)
    dm.mark(1, 0, 512)
    dm.mark(0, 200_000, 70_000)  # spans regions 3 and 4
    dm.mark(0, 0, 1)
    assert len(dm) == 4 and dm.dirty_bytes() == 4 * 65536
    assert dm.take(3) == [(0, 0), (0, 3 * 65536), (0, 4 * 65536)]
    assert dm.take(10) == [(1, 0)]
    assert len(dm) == 0 and dm.take(10) == []


def test_marking_twice_counts_once_and_mark_all_covers_partial_last_region() -> None:
    dm = DirtyMap([65536 * 2 + 512], region_bytes=65536)
    dm.mark(0, 0, 512)
    dm.mark(0, 100, 100)
    assert len(dm) == 1
    dm.mark_all()
    assert len(dm) == 3
    assert [o for _, o in dm.take(5)] == [0, 65536, 131072]


def test_region_size_must_be_sector_multiple() -> None:
    with pytest.raises(ValueError):
        DirtyMap([4096], region_bytes=1000)
