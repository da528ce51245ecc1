"""The scrub: replica regions checked against their sums, journal records against CRCs.

On demand, ``cdp target scrub`` on a stopped target; on a schedule (and on SIGUSR1) inside a
running target, through :func:`scrub_live`, with apply paused only while one chunk of
regions is read.

It opens each group's replica the way a starting target does (so the same recovery runs:
a pending apply note is settled, a missing sums file is rebuilt loudly) and reports
what is damaged with group, VM, disk and region. Damaged regions are marked in the sums
file (:meth:`cdp.target.replica.ReplicaSet.mark_damaged`), so the next handshake of the
group's source answers resync_required and the resync rewrites them; until then images
that read them are refused. It never repairs bytes itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from cdp import naming
from cdp.group import GroupSpec
from cdp.journal.index import Index
from cdp.journal.seal import Keyring
from cdp.journal.segment import scan
from cdp.target.applier import load_applied
from cdp.target.extent_sums import REGION_BYTES
from cdp.target.replica import ReplicaSet

DEFAULT_SCRUB_RATE_BYTES_S = 200 * 2**20
"""Replica bytes read per second at most, so a scrub does not starve intake."""
DEFAULT_SCRUB_INTERVAL_S = 24 * 3600.0
"""How often a running target scrubs every group (0: never on its own)."""
CHUNK_REGIONS = 64
"""Regions read per apply pause in a live scrub: apply waits for at most one chunk."""

Guard = Callable[[], AbstractContextManager[object]]
"""Held while one chunk of regions is read (a live scrub pauses apply with it)."""


@dataclass(frozen=True)
class Damage:
    """One damaged thing the scrub found."""

    group: str
    what: str
    """"replica" or "journal"."""
    vm_id: str
    disk: int
    region: int | None
    detail: str


@dataclass
class ScrubReport:
    """What a scrub checked and found."""

    regions_checked: int = 0
    records_checked: int = 0
    segments_checked: int = 0
    damage: list[Damage] = field(default_factory=list)


def scrub_group(
    spec: GroupSpec, replica_dir: str, journal_dir: str, index: Index, report: ScrubReport,
    rate_bytes_s: int = DEFAULT_SCRUB_RATE_BYTES_S, keys: Keyring | None = None,
) -> None:  # fmt: skip
    """Scrub one group's replica extents and journal segments into ``report``.

    ``keys``: the journal keyring, needed to check the chain of keyed segments.
    """
    had_data = load_applied(index, spec.group_id) > 0
    replica = ReplicaSet(replica_dir, spec, had_data)
    try:
        _scrub_replica(spec, replica, report, rate_bytes_s)
    finally:
        replica.close()
    _scrub_journal(spec.group_id, journal_dir, index, report, keys)


def scrub_live(
    spec: GroupSpec, replica: ReplicaSet, guard: Guard, report: ScrubReport,
    rate_bytes_s: int = DEFAULT_SCRUB_RATE_BYTES_S, stopping: Callable[[], bool] = bool,
) -> None:  # fmt: skip
    """Scrub a running member's replica; ``guard`` (apply paused) is held per chunk only.

    The journal is not scanned here: a running target checks every record's CRC when it
    reads it (apply, images), and the active segment is being written.
    """
    _scrub_replica(spec, replica, report, rate_bytes_s, guard, stopping)


def _scrub_replica(
    spec: GroupSpec, replica: ReplicaSet, report: ScrubReport, rate_bytes_s: int,
    guard: Guard = contextlib.nullcontext, stopping: Callable[[], bool] = bool,
) -> None:  # fmt: skip
    refs = spec.disks()
    broken = {(p.vm_id, p.disk) for p in replica.problems}
    for p in replica.problems:
        report.damage.append(Damage(spec.group_id, "replica", p.vm_id, p.disk, None, p.detail))
    started, read = time.monotonic(), 0
    for number, ref in enumerate(refs):
        if (ref.vm_id, ref.index_in_vm) in broken:
            continue
        regions = replica.scrub_disk(number)
        while not stopping():
            with guard():
                chunk = list(itertools.islice(regions, CHUNK_REGIONS))
            if not chunk:
                break
            for region, exc in chunk:
                report.regions_checked += 1
                read += REGION_BYTES
                if exc is not None:
                    replica.mark_damaged(number, region, exc)
                    report.damage.append(
                        Damage(spec.group_id, "replica", ref.vm_id, ref.index_in_vm, region,
                               exc.detail)
                    )  # fmt: skip
            _keep_rate(read, rate_bytes_s, started)


def _keep_rate(read: int, rate_bytes_s: int, started: float) -> None:
    """Sleep until ``read`` bytes since ``started`` are within ``rate_bytes_s``."""
    if rate_bytes_s:
        ahead = read / rate_bytes_s - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


def _scrub_journal(
    group: str, journal_dir: str, index: Index, report: ScrubReport, keys: Keyring | None
) -> None:
    folder = os.path.join(journal_dir, group)
    if not os.path.isdir(folder):
        return
    firsts = sorted(
        s for s in (naming.parse_segment(n) for n in os.listdir(folder)) if s is not None
    )
    indexed = index.last_seq(group)
    for i, first in enumerate(firsts):
        path = os.path.join(folder, naming.format_segment(first))
        found = scan(path, first, keys)
        report.segments_checked += 1
        report.records_checked += len(found.records)
        last = found.records[-1].header.seq if found.records else first - 1
        newest = i + 1 == len(firsts)
        if found.stop_reason and (not newest or indexed > last):
            report.damage.append(
                Damage(group, "journal", "", -1, None, f"segment {path}: {found.stop_reason}")
            )
