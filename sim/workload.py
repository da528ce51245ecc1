"""Seeded guest workloads: where each write goes, how big it is, what it holds.

Patterns: ``random`` (uniform over the disk), ``sequential`` (a cursor per disk),
``mixed`` (sizes 512 B-1 MiB with fixed weights, random places) and ``overwrite``
(random places inside a small hot set). The same seed gives the same writes. The
ransomware and benign high-entropy scenarios of sim/ransomware.py are patterns too
(``--pattern ransom-fast`` ...); the runner drives them by their own clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cdp.errors import InvalidInputError
from cdp.group import SECTOR
from sim.ransomware import SCENARIOS

PATTERNS = ("random", "sequential", "mixed", "overwrite")
SCENARIO_PATTERNS = tuple(SCENARIOS)
"""Ransomware and benign high-entropy scenarios (sim/ransomware.py), timed, not paced."""
MIXED_SIZES = (512, 4096, 8192, 16384, 65536, 262144, 1048576)
MIXED_WEIGHTS = (5, 40, 20, 15, 12, 6, 2)
MAX_BLOCK = 1048576
POOL_BYTES = 32 * 2**20
HOT_SET_FRACTION = 0.02
"""Part of each disk the overwrite pattern writes into."""


@dataclass(frozen=True)
class WorkloadSpec:
    """What a simulated guest writes, and how fast."""

    pattern: str = "random"
    block_bytes: int = 4096
    rate_mb_s: float = 0.0
    """Target write rate in MB/s (10^6 bytes); 0 with iops 0 means as fast as possible."""
    iops: float = 0.0
    compressibility: float = 0.5
    """Fraction of each 4 KiB that compresses away (0 = random data, 1 = zeros)."""
    seed: int = 1

    def validate(self) -> WorkloadSpec:
        """Raise naming the bad field, else return self."""
        if self.pattern not in PATTERNS + SCENARIO_PATTERNS:
            raise InvalidInputError(
                "--pattern", f"{self.pattern!r} is not one of {PATTERNS + SCENARIO_PATTERNS}"
            )
        bs = self.block_bytes
        if bs < SECTOR or bs > MAX_BLOCK or bs % SECTOR:
            raise InvalidInputError("--block-size", f"{bs} is not a multiple of 512 in 512..1MiB")
        if self.rate_mb_s < 0 or self.iops < 0:
            raise InvalidInputError("--rate-mb", "rates cannot be negative")
        if self.rate_mb_s and self.iops:
            raise InvalidInputError("--iops", "give either --rate-mb or --iops, not both")
        if not 0 <= self.compressibility <= 1:
            raise InvalidInputError("--compressibility", "must be between 0 and 1")
        return self

    def writes_per_s(self) -> float:
        """Target writes per second; 0 for unlimited."""
        if self.iops:
            return self.iops
        if self.rate_mb_s:
            mean = _mean_mixed() if self.pattern == "mixed" else self.block_bytes
            return self.rate_mb_s * 1e6 / mean
        return 0.0


def _mean_mixed() -> float:
    return sum(s * w for s, w in zip(MIXED_SIZES, MIXED_WEIGHTS, strict=True)) / sum(MIXED_WEIGHTS)


class Workload:
    """A deterministic stream of writes over a set of disks."""

    def __init__(self, spec: WorkloadSpec, capacities: list[int]) -> None:
        self.spec = spec.validate()
        self.capacities = capacities
        self._rng = random.Random(spec.seed)
        self._cursor = [0] * len(capacities)
        self._pool = _make_pool(self._rng, spec.compressibility)
        self.count = 0

    def next_write(self) -> tuple[int, int, bytes]:
        """The next write: (disk index, byte offset, data)."""
        disk = self._rng.randrange(len(self.capacities))
        length = self._length()
        cap = self.capacities[disk]
        length = min(length, cap)
        offset = self._offset(disk, length, cap)
        self.count += 1
        return disk, offset, self._data(length)

    def _length(self) -> int:
        if self.spec.pattern == "mixed":
            return self._rng.choices(MIXED_SIZES, MIXED_WEIGHTS)[0]
        return self.spec.block_bytes

    def _offset(self, disk: int, length: int, cap: int) -> int:
        pattern = self.spec.pattern
        if pattern == "sequential":
            if self._cursor[disk] + length > cap:
                self._cursor[disk] = 0
            offset = self._cursor[disk]
            self._cursor[disk] += length
            return offset
        span = cap
        if pattern == "overwrite":
            span = max(length, int(cap * HOT_SET_FRACTION) // SECTOR * SECTOR)
        align = length if length <= 4096 else 4096
        slots = (span - length) // align + 1
        return self._rng.randrange(slots) * align

    def _data(self, length: int) -> bytes:
        start = self._rng.randrange(0, POOL_BYTES - length + 1, SECTOR)
        stamp = self.count.to_bytes(8, "little")
        return stamp + self._pool[start + 8 : start + length]  # one copy, not two


def _make_pool(rng: random.Random, compressibility: float) -> memoryview:
    """POOL_BYTES + 1 MiB of data where each 4 KiB holds the given share of zeros."""
    size = POOL_BYTES + MAX_BLOCK
    keep = 4096 - int(4096 * compressibility)
    pool = bytearray(size)
    noise = rng.randbytes(size)
    for off in range(0, size, 4096):
        pool[off : off + keep] = noise[off : off + keep]
    return memoryview(bytes(pool))
