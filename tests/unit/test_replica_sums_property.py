"""Property: after any apply rounds, every region's stored sum is the extent's own.

An apply round verifies the regions it partly overwrites, keeps their bytes (up to
``MAX_IMAGED_REGIONS``), patches the round's writes into them and sums them without
reading the extent again; the other regions are re-read. Writes of any size and place
(across region edges, overlapping in one round, up to the disk's end, a disk whose last
region is short), rounds of any size, with the cap on kept regions set low: afterwards
the extent equals a model of the disk and a scrub of every region finds nothing.
"""

from __future__ import annotations

import tempfile

from conftest import small_group
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.target import replica as replica_mod
from cdp.target.extent_sums import REGION_BYTES
from cdp.target.replica import ReplicaSet

CAPACITY = 5 * REGION_BYTES + 3 * 4096
"""Five whole regions and a short last one."""

write_st = st.tuples(
    st.integers(0, 1),  # disk
    st.integers(0, CAPACITY // 512 - 1),  # sector
    st.integers(1, 2 * REGION_BYTES // 512 + 8),  # sectors (a write may span 3 regions)
    st.integers(1, 255),  # fill byte
)
rounds_st = st.lists(st.lists(write_st, min_size=1, max_size=12), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(rounds=rounds_st, cap=st.sampled_from([0, 1, 3, 512]))
def test_sums_after_apply_rounds_are_the_extents(rounds: list, cap: int) -> None:
    spec = small_group("g", disks=2, size=CAPACITY)
    model = [bytearray(CAPACITY), bytearray(CAPACITY)]
    old_cap = replica_mod.MAX_IMAGED_REGIONS
    replica_mod.MAX_IMAGED_REGIONS = cap
    try:
        with tempfile.TemporaryDirectory() as root:
            rs = ReplicaSet(root, spec)
            try:
                for writes in rounds:
                    placed = []
                    for disk, sector, sectors, fill in writes:
                        offset = sector * 512
                        length = min(sectors * 512, CAPACITY - offset)
                        placed.append((disk, offset, bytes([fill]) * length))
                    rs.begin([(d, o, len(b)) for d, o, b in placed])
                    for d, o, b in placed:
                        rs.write(d, o, b)
                        model[d][o : o + len(b)] = b
                    rs.sync()
                    rs.finish()
                for disk in range(2):
                    damage = [r for r, exc in rs.scrub_disk(disk) if exc is not None]
                    assert damage == [], (disk, damage)
                    reader = rs.base(disk)
                    assert reader.read(0, CAPACITY) == bytes(model[disk])
            finally:
                rs.close()
    finally:
        replica_mod.MAX_IMAGED_REGIONS = old_cap
