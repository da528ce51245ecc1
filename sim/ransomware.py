"""Seeded ransomware and benign high-entropy workloads, as timed writes.

Each scenario is a merge, by time, of streams over a simple disk layout (per disk: a
files area, the first half; a free area for new data; a database area, the last 15 %):

- ``fill`` (every scenario): at t = 0 the files area is written once with compressible
  data, as a disk that holds files (in a real deployment the initial sync shows it);
- ``office`` (every scenario): the guest's everyday writes, random places in the files
  area, each write's data compressing by a random share (0.3-0.8), and 5 % of writes
  incompressible (compressed attachments saved over old data): the baseline's noise;
- ``media`` (media-copy, flip): copies of 8-32 MiB of incompressible data into the free
  area at 30 MB/s, one every 20 s (into new regions; later copies over earlier ones);
- ``db`` (encrypted-db): an encrypted tablespace created in the database area at 8 MB/s
  from ``seconds / 4`` on (after training), then 8-16 KiB encrypted pages overwritten at
  random there at 1 MB/s, steadily;
- ``attack`` (ransom-*, flip): from ``attack_at_s`` on, the files of the files area
  (extents of 256 KiB-4 MiB) encrypted in place: whole files in 256 KiB writes (fast:
  50 MB/s, slow: 0.5 MB/s) or, intermittent, every 16th 4 KiB block of each file
  (5 MB/s of encrypted bytes). Attack data starts with :data:`ATTACK_TAG`.

The same spec gives the same writes. ``t_s`` is seconds since the start; the bench
drives the detector with it as simulated time, ``cdp sim run`` paces writes by it.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from cdp import codec
from cdp.errors import InvalidInputError

SCENARIOS = {
    "office": "benign: everyday compressible overwrites (5 % incompressible)",
    "media-copy": "benign: office + copies of compressed media into new regions",
    "encrypted-db": "benign: office + an encrypted tablespace created, then overwritten",
    "ransom-fast": "attack: office, then whole files encrypted in place at 50 MB/s",
    "ransom-slow": "attack: office, then whole files encrypted in place at 0.5 MB/s",
    "ransom-intermittent": "attack: office, then every 16th 4 KiB of each file encrypted",
    "flip": "benign media-copy, then intermittent encryption from attack_at_s",
}
"""Scenario name -> what it writes."""
ATTACKS = ("ransom-fast", "ransom-slow", "ransom-intermittent", "flip")
DEFAULT_ATTACK_MB_S = {"ransom-fast": 50.0, "ransom-slow": 0.5, "ransom-intermittent": 5.0,
                       "flip": 5.0}  # fmt: skip
"""Encrypted bytes per second (MB/s) of each attack, unless the spec says."""
ATTACK_TAG = b"RANSOMED"
"""First bytes of every attack write (the tests find the attack's first seq by it)."""
INTERMITTENT_STRIDE = 16
"""The intermittent attack encrypts one 4 KiB block in this many."""
OFFICE_SIZES = (4096, 8192, 16384, 65536, 262144)
OFFICE_WEIGHTS = (40, 20, 15, 15, 10)
FILL_MB_S = 64.0
MEDIA_MB_S = 30.0
MEDIA_EVERY_S = 20.0
DB_CREATE_MB_S = 8.0
DB_MB_S = 1.0
_POOL = 4 * 2**20
_LEVELS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass(frozen=True)
class ScenarioSpec:
    """One seeded scenario run."""

    name: str
    seconds: float = 120.0
    attack_at_s: float = 60.0
    """When an attack scenario's first encrypted write comes (seconds from the start)."""
    base_mb_s: float = 2.0
    """The office stream's MB/s."""
    attack_mb_s: float = 0.0
    """Encrypted MB/s of the attack; 0: the scenario's default."""
    disks: int = 2
    disk_bytes: int = 64 * 2**20
    seed: int = 1

    def validate(self) -> ScenarioSpec:
        """Raise naming the bad field, else return self."""
        if self.name not in SCENARIOS:
            raise InvalidInputError("--pattern", f"{self.name!r} is not one of {list(SCENARIOS)}")
        if self.disk_bytes < 8 * 2**20 or self.disk_bytes % 2**20:
            raise InvalidInputError("--disk-size", "a scenario needs whole MiB, at least 8 MiB")
        if self.seconds <= 0 or self.base_mb_s <= 0 or self.attack_mb_s < 0:
            raise InvalidInputError("--rate-mb", "rates and seconds must be positive")
        return self

    @property
    def is_attack(self) -> bool:
        """Whether the scenario encrypts data from ``attack_at_s`` on."""
        return self.name in ATTACKS

    @property
    def attack_rate_mb_s(self) -> float:
        """Encrypted MB/s of the attack (the spec's, else the default)."""
        return self.attack_mb_s or DEFAULT_ATTACK_MB_S.get(self.name, 0.0)


@dataclass(frozen=True, slots=True)
class TimedWrite:
    """One write of a scenario: when, where, what, and whether the attack wrote it."""

    t_s: float
    disk: int
    offset: int
    data: bytes
    attack: bool = False


class Scenario:
    """The timed writes of one :class:`ScenarioSpec`, in time order."""

    def __init__(self, spec: ScenarioSpec) -> None:
        self.spec = spec.validate()
        rng = random.Random(spec.seed)
        self._noise = rng.randbytes(_POOL + 2**20)
        self._pools = {c: _compressible(rng, c) for c in _LEVELS}
        self._rng = rng
        self._files_end = spec.disk_bytes // 2 // 2**20 * 2**20
        self._db_start = spec.disk_bytes - spec.disk_bytes * 15 // 100 // 2**20 * 2**20

    def writes(self) -> Iterator[TimedWrite]:
        """Every write of the run, ordered by time."""
        name = self.spec.name
        streams = [self._fill(), self._office()]
        if name in ("media-copy", "flip"):
            streams.append(self._media())
        if name == "encrypted-db":
            streams.append(self._db())
        if self.spec.is_attack:
            streams.append(self._attack())
        for w in heapq.merge(*streams, key=lambda w: w.t_s):
            if w.t_s >= self.spec.seconds:
                return
            yield w

    # -- data ------------------------------------------------------------------------------

    def _random(self, rng: random.Random, length: int, tag: bytes = b"") -> bytes:
        start = rng.randrange(0, _POOL - length + 1, 512)
        return tag + self._noise[start + len(tag) : start + length]

    def _text(self, rng: random.Random, length: int) -> bytes:
        pool = self._pools[rng.choice(_LEVELS)]
        start = rng.randrange(0, _POOL - length + 1, 512)
        return pool[start : start + length]

    # -- streams ---------------------------------------------------------------------------

    def _fill(self) -> Iterator[TimedWrite]:
        rng, t, step = random.Random(self.spec.seed + 1), 0.0, 2**20
        for disk in range(self.spec.disks):
            for off in range(0, self._files_end, step):
                yield TimedWrite(t, disk, off, self._text(rng, step))
                t += step / (FILL_MB_S * 1e6)

    def _office(self) -> Iterator[TimedWrite]:
        rng, t = random.Random(self.spec.seed + 2), 0.0
        while True:
            size = rng.choices(OFFICE_SIZES, OFFICE_WEIGHTS)[0]
            t += rng.expovariate(self.spec.base_mb_s * 1e6 / size)
            off = rng.randrange(0, self._files_end - size + 1, 4096)
            data = self._random(rng, size) if rng.random() < 0.05 else self._text(rng, size)
            yield TimedWrite(t, rng.randrange(self.spec.disks), off, data)

    def _media(self) -> Iterator[TimedWrite]:
        rng, t, step = random.Random(self.spec.seed + 3), 10.0, 2**20
        cursor, free = [self._files_end] * self.spec.disks, self._db_start - self._files_end
        while True:
            disk, size = rng.randrange(self.spec.disks), rng.randrange(8, 33) * 2**20
            for _ in range(min(size, free) // step):
                if cursor[disk] + step > self._db_start:
                    cursor[disk] = self._files_end  # the free area is full: copy over old media
                yield TimedWrite(t, disk, cursor[disk], self._random(rng, step))
                cursor[disk] += step
                t += step / (MEDIA_MB_S * 1e6)
            t += MEDIA_EVERY_S

    def _db(self) -> Iterator[TimedWrite]:
        rng, t, step = random.Random(self.spec.seed + 4), self.spec.seconds / 4, 2**20
        for off in range(self._db_start, self.spec.disk_bytes, step):
            yield TimedWrite(t, 0, off, self._random(rng, step))
            t += step / (DB_CREATE_MB_S * 1e6)
        while True:
            size = rng.choice((8192, 16384))
            t += rng.expovariate(DB_MB_S * 1e6 / size)
            off = rng.randrange(self._db_start, self.spec.disk_bytes - size + 1, 8192)
            yield TimedWrite(t, 0, off, self._random(rng, size))

    def _attack(self) -> Iterator[TimedWrite]:
        rng, t = random.Random(self.spec.seed + 5), self.spec.attack_at_s
        rate = self.spec.attack_rate_mb_s * 1e6
        intermittent = self.spec.name in ("ransom-intermittent", "flip")
        for disk in range(self.spec.disks):
            off = 0
            while off < self._files_end:
                size = min(rng.randrange(1, 17) * 256 * 2**10, self._files_end - off)
                pieces = _intermittent(off, size) if intermittent else _whole(off, size)
                for at, length in pieces:
                    yield TimedWrite(t, disk, at, self._random(rng, length, ATTACK_TAG), True)
                    t += length / rate
                off += size


def _whole(off: int, size: int) -> Iterator[tuple[int, int]]:
    """A file encrypted whole, in 256 KiB writes."""
    step = 256 * 2**10
    for at in range(off, off + size, step):
        yield at, min(step, off + size - at)


def _intermittent(off: int, size: int) -> Iterator[tuple[int, int]]:
    """Every :data:`INTERMITTENT_STRIDE`-th 4 KiB block of a file encrypted."""
    for at in range(off, off + size, 4096 * INTERMITTENT_STRIDE):
        yield at, 4096


def _compressible(rng: random.Random, compressibility: float) -> bytes:
    """A pool where each 4 KiB holds ``compressibility`` zeros, the rest random."""
    keep = 4096 - int(4096 * compressibility)
    pool = bytearray(_POOL + 2**20)
    noise = rng.randbytes(len(pool))
    for off in range(0, len(pool), 4096):
        pool[off : off + keep] = noise[off : off + keep]
    return bytes(pool)


@dataclass(frozen=True, slots=True)
class SimRecord:
    """A scenario write as the target's detector sees it (simulated trusted time)."""

    seq: int
    disk: int
    offset: int
    length: int
    frame_len: int
    """Bytes of the write's lz4 frame, as the source would ship it."""
    ns: int
    """Simulated trusted time, Unix ns."""
    attack: bool


START_NS = 1_750_000_000 * 10**9
"""Simulated time of a scenario's start (a fixed instant: runs are reproducible)."""


def records(spec: ScenarioSpec, start_ns: int = START_NS) -> Iterator[SimRecord]:
    """The scenario's writes as records with seqs from 1 and simulated times."""
    for seq, w in enumerate(Scenario(spec).writes(), start=1):
        yield SimRecord(seq, w.disk, w.offset, len(w.data), len(codec.compress(w.data)),
                        start_ns + int(w.t_s * 1e9), w.attack)  # fmt: skip


async def drive(
    spec: ScenarioSpec,
    write: Callable[[TimedWrite], Awaitable[None]],
    check: Callable[[], None],
) -> int:
    """Issue the scenario's writes in real time; when the attack's first write came.

    Each write is issued ``t_s`` after the start; the result is the wall-clock time (Unix
    ns) of the attack's first write, 0 if none came. ``check()`` runs between bursts (it
    raises to stop). A driver that falls behind issues the late writes at once.
    """
    t0, attack_ns, burst = time.monotonic(), 0, 0
    for w in Scenario(spec).writes():
        if (due := w.t_s - (time.monotonic() - t0)) > 0:
            check()
            await asyncio.sleep(due)
            burst = 0
        if w.attack and not attack_ns:
            attack_ns = time.time_ns()
        await write(w)
        burst += 1
        if burst >= 256:
            check()
            await asyncio.sleep(0)
            burst = 0
    return attack_ns
