"""A trace-driven guest: replays timed writes from a normalised trace file.

The file is the simulator's own plain format, which ``bench/trace.py`` produces from the
public layouts (MSR Cambridge / SNIA CSV, fio iolog v2)::

    # cdp-trace v1
    <t_s> <disk> <offset> <length>

one write per line, ``t_s`` seconds since the trace's start (non-decreasing), ``disk`` an
index into the host's disks, ``offset`` and ``length`` in bytes, 512-aligned, length at
most 1 MiB. Payloads are seeded data with the workload's compressibility. This module
never parses the public formats and never reads anything but the file it is given.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from cdp.errors import InvalidInputError
from cdp.group import SECTOR
from sim.workload import MAX_BLOCK, POOL_BYTES, _make_pool

HEADER = "# cdp-trace v1"


@dataclass(frozen=True)
class TraceWrite:
    """One write of a trace: when (seconds since start), where, how long (bytes)."""

    t_s: float
    disk: int
    offset: int
    length: int


def format_trace(writes: Iterable[TraceWrite]) -> str:
    """The file text of a normalised trace."""
    lines = [HEADER]
    lines += [f"{w.t_s:.6f} {w.disk} {w.offset} {w.length}" for w in writes]
    return "\n".join(lines) + "\n"


def load_trace(path: str) -> list[TraceWrite]:
    """Read a normalised trace; a bad line raises naming its number."""
    with open(path, encoding="utf-8") as f:
        return parse_trace(f.read().splitlines())


def parse_trace(lines: list[str]) -> list[TraceWrite]:
    """Parse normalised trace lines (see the module docstring)."""
    if not lines or lines[0].strip() != HEADER:
        raise InvalidInputError("--trace", f"line 1: expected {HEADER!r}")
    out: list[TraceWrite] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        w = _parse_line(n, line)
        if out and w.t_s < out[-1].t_s:
            raise InvalidInputError("--trace", f"line {n}: time goes backwards")
        out.append(w)
    return out


def _parse_line(n: int, line: str) -> TraceWrite:
    parts = line.split()
    if len(parts) != 4:
        raise InvalidInputError("--trace", f"line {n}: expected 4 fields, got {len(parts)}")
    try:
        w = TraceWrite(float(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]))
    except ValueError as exc:
        raise InvalidInputError("--trace", f"line {n}: {exc}") from exc
    bad = w.t_s < 0 or w.disk < 0 or w.offset < 0 or w.offset % SECTOR
    if bad or not 0 < w.length <= MAX_BLOCK or w.length % SECTOR:
        raise InvalidInputError("--trace", f"line {n}: out of range or not 512-aligned")
    return w


def check_fits(writes: list[TraceWrite], disks: int, disk_bytes: int) -> None:
    """Raise unless every write lands inside the host's disks."""
    for w in writes:
        if w.disk >= disks or w.offset + w.length > disk_bytes:
            raise InvalidInputError(
                "--trace", f"write at t={w.t_s} s (disk {w.disk}, offset {w.offset}) "
                f"is outside {disks} disk(s) of {disk_bytes} bytes",
            )  # fmt: skip


class TraceData:
    """Seeded payloads with a given compressibility (as :class:`sim.workload.Workload`)."""

    def __init__(self, seed: int, compressibility: float) -> None:
        self._rng = random.Random(seed)
        self._pool = _make_pool(self._rng, compressibility)
        self.count = 0

    def data(self, length: int) -> bytes:
        """``length`` bytes, stamped with a counter so no two writes are equal."""
        start = self._rng.randrange(0, POOL_BYTES - length + 1, SECTOR)
        self.count += 1
        return self.count.to_bytes(8, "little") + bytes(self._pool[start + 8 : start + length])


async def replay(
    writes: list[TraceWrite],
    speedup: float,
    seconds: float,
    write: Callable[[TraceWrite, bytes], Awaitable[None]],
    data: TraceData,
    check: Callable[[], None],
) -> None:
    """Issue each write at ``t_s / speedup`` after the start, for at most ``seconds``.

    ``write(w, payload)`` is awaited; ``check()`` runs between bursts (it raises to stop).
    A replayer that falls behind issues the late writes at once (no time skew builds up).
    """
    t0 = time.monotonic()
    i = 0
    while i < len(writes):
        elapsed = time.monotonic() - t0
        if elapsed >= seconds:
            return
        check()
        due = writes[i].t_s / speedup
        if due > elapsed:
            await asyncio.sleep(min(due - elapsed, 0.05))
            continue
        burst = 0
        while i < len(writes) and writes[i].t_s / speedup <= elapsed and burst < 256:
            await write(writes[i], data.data(writes[i].length))
            i += 1
            burst += 1
        await asyncio.sleep(0)
