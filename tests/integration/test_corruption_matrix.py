"""Corruption matrix: damage one stored file of a stopped target, start it, export images.

Every case starts from the same data dir (real records through a real gRPC target, a
one-hour history so nothing is applied, 1 MiB segments so there are sealed ones), damages
one place (the newest segment, a sealed segment, the largest index sst, the index
MANIFEST / CURRENT, the whole index dir) in one way (flipped, zeroed, truncated,
deleted), starts a target on it and exports every disk at ``latest`` and at the newest
point it still lists. The verdict per case is one of:

- ``repaired``: the image exported at ``latest`` equals the source at that point;
- ``refused``: the target refused the export (or refused to start) with a typed error
  naming the damage; the points it still lists export images equal to the source;
- ``SILENTLY WRONG``: an export succeeded and differs from the source (must never happen).

:data:`EXTRA_CASES` is the hook for other stores (replica extents): append a
:class:`Case` and the matrix and the fault scorecard run it too.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conftest import Running, make_record, score, small_group, start_target, stop_target

from cdp import naming
from cdp.errors import CdpError, RemoteError
from cdp.record import Record

GROUP = "mx"
DISKS = 2
DISK_BYTES = 2 * 2**20
SPEC = small_group(GROUP, disks=DISKS, size=DISK_BYTES)
VM = f"{GROUP}-vm0"
CONFIG = dict(history_window_s=3600.0, segment_bytes=2**20)
BATCHES, PER_BATCH = 80, 100

REFUSAL_CODES = {"DATA_LOSS", "FAILED_PRECONDITION", "UNAVAILABLE"}
"""Codes by which a target refuses to serve damaged data."""


@dataclass(frozen=True)
class Case:
    """One damage: where, how, and the function that does it to a data dir."""

    place: str
    damage: str
    apply: Callable[[str], None]


@dataclass
class Row:
    """What one case gave."""

    case: Case
    verdict: str
    detail: str
    exports: int = 0
    """Images exported and compared (each equal to the source, or the verdict says so)."""


@dataclass
class Source:
    """The written data dir and what the source wrote into it."""

    data_dir: str
    records: list[Record]

    def image(self, disk: int, upto: int) -> bytes:
        """The source's disk as it was at seq ``upto``."""
        from cdp import codec

        buf = bytearray(DISK_BYTES)
        for r in self.records[:upto]:
            if r.disk == disk:
                buf[r.offset : r.offset + r.length] = codec.decompress(r.frame, r.length)
        return bytes(buf)


# -- the damages ---------------------------------------------------------------------------


def _flip(path: str) -> None:
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 3)
        old = f.read(8)
        f.seek(os.path.getsize(path) // 3)
        f.write(bytes(b ^ 0xFF for b in old) or b"\xff" * 8)


def _zero(path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 3)
        f.write(b"\0" * min(4096, max(size - size // 3, 1)))


def _truncate(path: str) -> None:
    os.truncate(path, os.path.getsize(path) // 2)


def _delete(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


DAMAGES: dict[str, Callable[[str], None]] = {
    "flipped": _flip,
    "zeroed": _zero,
    "truncated": _truncate,
    "deleted": _delete,
}


def _segments(data_dir: str) -> list[str]:
    folder = os.path.join(data_dir, "journal", GROUP)
    names = sorted(n for n in os.listdir(folder) if naming.parse_segment(n) is not None)
    return [os.path.join(folder, n) for n in names]


def _index_file(data_dir: str, which: str) -> str:
    folder = os.path.join(data_dir, "index")
    names = os.listdir(folder)
    if which == "sst":
        ssts = [n for n in names if n.endswith(".sst")]
        return os.path.join(folder, max(ssts, key=lambda n: os.path.getsize(f"{folder}/{n}")))
    if which == "MANIFEST":
        return os.path.join(folder, next(n for n in names if n.startswith("MANIFEST-")))
    return os.path.join(folder, which)


PLACES: dict[str, Callable[[str], list[str]]] = {
    "segment (newest)": lambda d: [_segments(d)[-1]],
    "segment (sealed)": lambda d: [_segments(d)[len(_segments(d)) // 2]],
    "index sst (largest)": lambda d: [_index_file(d, "sst")],
    "index MANIFEST": lambda d: [_index_file(d, "MANIFEST")],
    "index CURRENT": lambda d: [_index_file(d, "CURRENT")],
    "index dir (every file)": lambda d: [
        os.path.join(d, "index", n) for n in sorted(os.listdir(os.path.join(d, "index")))
    ],
}


def _case(place: str, damage: str) -> Case:
    def apply(data_dir: str) -> None:
        targets = PLACES[place](data_dir)
        if place.startswith("index dir") and damage == "deleted":
            targets = [os.path.join(data_dir, "index")]
        for path in targets:
            if os.path.getsize(path) or damage == "deleted":
                DAMAGES[damage](path)

    return Case(place, damage, apply)


CASES: list[Case] = [_case(p, d) for p in PLACES for d in DAMAGES]
"""Journal and index damages, every place times every damage."""

EXTRA_CASES: list[Case] = []
"""Hook: other stores (e.g. replica extents) append their cases here."""


# -- running a case ------------------------------------------------------------------------


async def write_source(folder: str) -> Source:
    """A stopped target's data dir holding BATCHES acked batches of PER_BATCH records."""
    data_dir = os.path.join(folder, "pristine")
    rng = random.Random(12)
    records: list[Record] = []
    r = await start_target(data_dir, **CONFIG)
    try:
        reply = await r.client.open_session("host-m", SPEC, 0, 1)
        stream = r.client.stream(reply.session_id)
        for b in range(BATCHES):
            batch = []
            for i in range(PER_BATCH):
                seq = b * PER_BATCH + i + 1
                data = rng.randbytes(512 * rng.randint(1, 2))
                offset = rng.randrange(DISK_BYTES // 4096) * 4096
                batch.append(make_record(seq, seq % DISKS, offset, data, time.time_ns()))
            await stream.send(batch)
            ack = await stream.recv()
            assert ack is not None and ack.durable_seq == batch[-1].seq
            records += batch
        stream.cancel()
    finally:
        await stop_target(r)
    return Source(data_dir, records)


async def read_disk(r: Running, disk: int, at: str) -> tuple[int, bytes]:
    """(point seq, image) of one disk exported through ReadImage."""
    buf, seq = bytearray(DISK_BYTES), -1
    async for msg in r.client.read_image(GROUP, VM, disk, at):
        if msg.HasField("plan"):
            seq = msg.plan.point.seq
            continue
        buf[msg.offset_bytes : msg.offset_bytes + len(msg.data)] = msg.data
    return seq, bytes(buf)


async def _export(r: Running, src: Source, at: str) -> tuple[str, int]:
    """Export every disk at ``at``: ("ok" | "wrong" | "short" | the refusal, exports)."""
    n = 0
    for disk in range(DISKS):
        try:
            seq, image = await read_disk(r, disk, at)
        except RemoteError as exc:
            if exc.code not in REFUSAL_CODES:
                return f"bad code {exc}", n
            return f"refused: {exc}", n
        n += 1
        if image != src.image(disk, seq):
            return f"wrong at seq {seq}", n
        if at == "latest" and seq != len(src.records):
            return f"short: latest is seq {seq} of {len(src.records)} acked", n
    return "ok", n


async def run_case(src: Source, folder: str, case: Case) -> Row:
    """Damage a copy of the source's data dir, start a target on it, export, judge."""
    data_dir = os.path.join(folder, f"{case.place}-{case.damage}".replace(" ", "_"))
    shutil.copytree(src.data_dir, data_dir)
    case.apply(data_dir)
    try:
        r = await start_target(data_dir, **CONFIG)
    except CdpError as exc:  # refused to start: the message must say what to do
        return Row(case, "refused", f"at start: {exc}")
    try:
        latest, n = await _export(r, src, "latest")
        older, m = "no point listed", 0
        try:
            points = await r.client.list_points(GROUP)
        except RemoteError as exc:
            points, older = [], f"points refused: {exc.code}"
        if points:
            older, m = await _export(r, src, str(points[-1].seq))
    finally:
        await stop_target(r)
    if any(word in latest + older for word in ("wrong", "bad code", "short")):
        return Row(case, "SILENTLY WRONG", f"latest: {latest}; newest listed: {older}", n + m)
    verdict = "repaired" if latest == "ok" else "refused"
    return Row(case, verdict, f"latest: {latest[:110]}; newest listed: {older[:40]}", n + m)


async def run_matrix(folder: str, cases: list[Case] | None = None) -> list[Row]:
    """Run every case (CASES + EXTRA_CASES by default) on one freshly written source."""
    src = await write_source(folder)
    rows = []
    for case in cases if cases is not None else [*CASES, *EXTRA_CASES]:
        row = await run_case(src, folder, case)
        rows.append(row)
        score("corruptions tried")
        score("corruptions detected or repaired", int(row.verdict != "SILENTLY WRONG"))
        score("corruptions silently wrong", int(row.verdict == "SILENTLY WRONG"))
    return rows


def render(rows: list[Row]) -> str:
    """The matrix as a text table."""
    head = f"{'place':<24} {'damage':<10} {'verdict':<15} {'exports':>7}  detail"
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(
            f"{row.case.place:<24} {row.case.damage:<10} {row.verdict:<15} {row.exports:>7}  "
            f"{row.detail}"
        )
    return "\n".join(lines)


async def test_corruption_matrix_has_no_silently_wrong_image(tmp_path: Path) -> None:
    rows = await run_matrix(str(tmp_path))
    print("\ncorruption matrix\n" + render(rows))
    wrong = [r for r in rows if r.verdict == "SILENTLY WRONG"]
    assert not wrong, render(wrong)
    for row in rows:
        if row.verdict == "refused":
            assert "DATA_LOSS" in row.detail or "at start" in row.detail, row.detail
        if row.case.place == "segment (newest)":  # the points before the damage stay exportable
            assert "newest listed: ok" in row.detail and row.exports >= DISKS, row.detail
