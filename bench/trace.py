"""Block traces in public layouts, read into the simulator's normalised trace.

Formats (writes only; reads and other actions are skipped):

- **MSR Cambridge / SNIA CSV**: ``Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime``
  with ``Timestamp`` in Windows filetime (100 ns ticks), ``Type`` ``Read``/``Write``,
  ``Offset``/``Size`` in bytes. An optional header line is allowed.
- **fio iolog v2**: first line ``fio version 2 iolog``, then ``<file> <action> [<offset>
  <length>]``. v2 has no timestamps: writes are spaced evenly at ``iops`` (default
  :data:`DEFAULT_FIO_IOPS`). ``fio version 3 iolog`` (``<t_ms> <file> <action> ...``) is
  read with its timestamps.

Each (host, disk) or fio file becomes one simulator disk, in order of first appearance.
Writes are aligned outward to 512 B and split into pieces of at most 1 MiB. A malformed
line raises :class:`cdp.errors.InvalidInputError` naming the file and the line number.
The replayer is ``sim/trace_workload.py`` (``cdp sim run --trace F --speedup N``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from cdp.errors import InvalidInputError
from sim.trace_workload import TraceWrite, format_trace
from sim.workload import MAX_BLOCK

FILETIME_TICKS_PER_S = 10_000_000
DEFAULT_FIO_IOPS = 1000.0
MSR_FIELDS = ("Timestamp", "Hostname", "DiskNumber", "Type", "Offset", "Size", "ResponseTime")
SECTOR = 512
MiB = 2**20


@dataclass(frozen=True)
class Trace:
    """The writes of a trace, normalised, and what the simulator needs to hold them."""

    writes: list[TraceWrite]
    disks: list[str]
    """Name of each disk index ("host/disk" or the fio file name)."""
    source: str = ""
    reads_skipped: int = 0

    @property
    def disk_bytes(self) -> int:
        """Disk size that holds every write, rounded up to 1 MiB."""
        end = max((w.offset + w.length for w in self.writes), default=MiB)
        return -(-end // MiB) * MiB

    @property
    def duration_s(self) -> float:
        """Seconds from the first write to the last."""
        return self.writes[-1].t_s if self.writes else 0.0

    @property
    def bytes(self) -> int:
        """Bytes written."""
        return sum(w.length for w in self.writes)


def _bad(path: str, n: int, why: str) -> InvalidInputError:
    return InvalidInputError(f"{os.path.basename(path)} line {n}", why)


def detect(path: str) -> str:
    """``fio`` or ``msr``, from the first line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    return "fio" if first.startswith("fio version") else "msr"


def load(path: str, fmt: str = "auto", fio_iops: float = DEFAULT_FIO_IOPS) -> Trace:
    """Read a trace file in ``fmt`` (``msr``, ``fio`` or ``auto``)."""
    fmt = detect(path) if fmt == "auto" else fmt
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    if fmt == "msr":
        return parse_msr(lines, path)
    if fmt == "fio":
        return parse_fio(lines, path, fio_iops)
    raise InvalidInputError("--format", f"{fmt!r} is not msr, fio or auto")


class _Disks:
    """Disk names to indexes, in order of first appearance."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def index(self, name: str) -> int:
        if name not in self._index:
            self._index[name] = len(self.names)
            self.names.append(name)
        return self._index[name]


def split(t_s: float, disk: int, offset: int, length: int) -> Iterator[TraceWrite]:
    """One write, aligned outward to 512 B, in pieces of at most 1 MiB."""
    start = offset // SECTOR * SECTOR
    end = -(-(offset + length) // SECTOR) * SECTOR
    for off in range(start, end, MAX_BLOCK):
        yield TraceWrite(t_s, disk, off, min(MAX_BLOCK, end - off))


def parse_msr(lines: list[str], path: str = "trace.csv") -> Trace:
    """Parse MSR Cambridge / SNIA CSV lines."""
    disks, writes, reads = _Disks(), [], 0
    t0: int | None = None
    for n, line in enumerate(lines, start=1):
        if not line.strip() or (n == 1 and line.startswith("Timestamp")):
            continue
        ts, host, disk, kind, offset, size = _msr_fields(path, n, line)
        if kind == "read":
            reads += 1
            continue
        t0 = ts if t0 is None else t0
        if ts < t0:
            raise _bad(path, n, "Timestamp goes backwards")
        t_s = (ts - t0) / FILETIME_TICKS_PER_S
        writes.extend(split(t_s, disks.index(f"{host}/{disk}"), offset, size))
    return Trace(writes, disks.names, path, reads)


def _msr_fields(path: str, n: int, line: str) -> tuple[int, str, str, str, int, int]:
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != len(MSR_FIELDS):
        raise _bad(path, n, f"expected {len(MSR_FIELDS)} fields {MSR_FIELDS}, got {len(parts)}")
    kind = parts[3].lower()
    if kind not in ("read", "write"):
        raise _bad(path, n, f"Type {parts[3]!r} is not Read or Write")
    try:
        ts, offset, size = int(parts[0]), int(parts[4]), int(parts[5])
        int(parts[6])
    except ValueError as exc:
        raise _bad(path, n, f"not a number: {exc}") from exc
    if ts < 0 or offset < 0 or size <= 0:
        raise _bad(path, n, "Timestamp and Offset must be >= 0 and Size > 0")
    return ts, parts[1], parts[2], kind, offset, size


def parse_fio(lines: list[str], path: str = "trace.fio", iops: float = DEFAULT_FIO_IOPS) -> Trace:
    """Parse fio iolog v2 (evenly spaced at ``iops``) or v3 (timestamps in ms)."""
    head = lines[0].strip() if lines else ""
    if head not in ("fio version 2 iolog", "fio version 3 iolog"):
        raise _bad(path, 1, "expected 'fio version 2 iolog' (or version 3)")
    if iops <= 0:
        raise InvalidInputError("--fio-iops", "must be positive")
    v3 = head.startswith("fio version 3")
    disks, writes, reads = _Disks(), [], 0
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if not parts:
            continue
        t_ms = _fio_time(path, n, parts) if v3 else None
        parts = parts[1:] if v3 else parts
        if len(parts) < 2:
            raise _bad(path, n, "expected '<file> <action> [<offset> <length>]'")
        action = parts[1]
        if action == "read":
            reads += 1
        if action != "write":
            _fio_check_action(path, n, parts)
            continue
        offset, length = _fio_io(path, n, parts)
        t_s = t_ms / 1000 if t_ms is not None else len(writes) / iops
        writes.extend(split(t_s, disks.index(parts[0]), offset, length))
    if v3:
        writes.sort(key=lambda w: w.t_s)
    return Trace(writes, disks.names, path, reads)


FIO_ACTIONS = ("add", "open", "close", "read", "write", "sync", "datasync", "trim", "wait")


def _fio_time(path: str, n: int, parts: list[str]) -> float:
    try:
        return float(parts[0])
    except ValueError as exc:
        raise _bad(path, n, f"timestamp {parts[0]!r} is not a number") from exc


def _fio_check_action(path: str, n: int, parts: list[str]) -> None:
    if parts[1] not in FIO_ACTIONS:
        raise _bad(path, n, f"action {parts[1]!r} is not one of {FIO_ACTIONS}")


def _fio_io(path: str, n: int, parts: list[str]) -> tuple[int, int]:
    if len(parts) != 4:
        raise _bad(path, n, "a write needs '<file> write <offset> <length>'")
    try:
        offset, length = int(parts[2]), int(parts[3])
    except ValueError as exc:
        raise _bad(path, n, f"not a number: {exc}") from exc
    if offset < 0 or length <= 0:
        raise _bad(path, n, "offset must be >= 0 and length > 0")
    return offset, length


def write_normalised(trace: Trace, path: str) -> None:
    """Write the simulator's trace file (``cdp sim run --trace``)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(format_trace(trace.writes))


def bursts(
    base_iops: float, factor: float, phase_s: float, block: int = 4096, seed: int = 1
) -> Trace:
    """Synthetic bursts: ``base_iops`` for ``phase_s``, ``factor`` x that, then base again."""
    import random

    rng = random.Random(seed)
    slots = 256 * MiB // block
    writes: list[TraceWrite] = []
    for phase, rate in enumerate((base_iops, base_iops * factor, base_iops)):
        for k in range(int(rate * phase_s)):
            t = phase * phase_s + k / rate
            writes.append(TraceWrite(round(t, 6), rng.randrange(2), rng.randrange(slots) * block,
                                     block))  # fmt: skip
    return Trace(writes, ["burst/0", "burst/1"], "bursts")
