"""Validation of incoming batches, before anything is written.

Checks every record of a batch against the group (disk known, offset and length
aligned and within capacity, payload decompresses to the length, checksum matches, seq
is the next one) and drops exact re-sends of durable records. Raises the first problem
found, naming the field; a batch that fails changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cdp import codec
from cdp.errors import (
    BookmarkExistsError,
    CdpError,
    ChecksumError,
    InvalidInputError,
    NotFoundError,
    PreconditionError,
    SeqConflictError,
    SeqGapError,
)
from cdp.group import SECTOR
from cdp.journal.index import IndexEntry
from cdp.record import KIND_BOOKMARK, KIND_CONSISTENCY, MARKER_KINDS, MAX_WRITE_BYTES, Record
from cdp.restore.spec import check_bookmark_name, check_label, parse_marker_label

DEFAULT_MAX_BATCH_PAYLOAD_BYTES = 17 * 2**20
"""Payload bytes of one batch, at most: above the worst-case LZ4 frame of the largest write
(16 MiB incompressible gives a frame of about 16.07 MiB), so every legal write can be sent."""
DEFAULT_MAX_BATCH_RECORDS = 8192
MAX_SOURCE_AHEAD_NS = 300 * 10**9
"""How far a record's source time may be ahead of the target's clock (clock skew allowed)."""


@dataclass(frozen=True)
class Limits:
    """Largest batch the target accepts."""

    max_payload_bytes: int = DEFAULT_MAX_BATCH_PAYLOAD_BYTES
    max_records: int = DEFAULT_MAX_BATCH_RECORDS


@dataclass(frozen=True)
class GroupView:
    """What validation needs to know of a group."""

    group: str
    capacities: tuple[int, ...]
    """Capacity in bytes of each disk, by group disk number."""
    durable_seq: int
    expected_seq: int
    """Next seq the group accepts (durable or queued + 1)."""
    lookup: Callable[[int], IndexEntry | None]
    bookmark_taken: Callable[[str], bool]
    """Whether a bookmark name is already used (durable or in flight)."""
    now_ns: int = 0
    """The target's clock at receipt (trusted time); 0 skips the source time check."""


def check_limits(n_records: int, payload_bytes: int, limits: Limits) -> None:
    """Reject a batch that is larger than the target accepts."""
    if n_records > limits.max_records:
        raise InvalidInputError(
            "records", f"{n_records} records in one batch; the limit is {limits.max_records}"
        )
    if payload_bytes > limits.max_payload_bytes:
        raise InvalidInputError(
            "payload",
            f"{payload_bytes} bytes in one batch; the limit is {limits.max_payload_bytes}",
        )


def check_payloads(group: str, records: list[Record]) -> list[CdpError | None]:
    """Whether each write's payload decompresses to its length and matches its checksum.

    The costly part of :func:`validate` (a batch may expand to gigabytes): run it in a
    thread, one batch of a stream at a time, and pass the verdicts to :func:`validate`,
    which raises them in record order among its other checks.
    """
    verdicts: list[CdpError | None] = []
    for rec in records:
        try:
            if not rec.is_marker:
                _check_payload(group, rec)
        except CdpError as exc:
            verdicts.append(exc)
        else:
            verdicts.append(None)
    return verdicts


def validate(
    view: GroupView, records: list[Record], verdicts: list[CdpError | None] | None = None
) -> list[Record]:
    """Return the records to append (re-sent durable ones dropped), or raise.

    ``verdicts``: the payload checks already made by :func:`check_payloads` (None: check here).
    """
    fresh: list[Record] = []
    expect = view.expected_seq
    names: set[str] = set()
    for i, rec in enumerate(records):
        _check_source_time(view, i, rec)
        if rec.is_marker:
            _check_marker(view, i, rec, names)
        else:
            _check_extent(view, i, rec)
            if verdicts is None:
                _check_payload(view.group, rec)
            elif (verdict := verdicts[i]) is not None:
                raise verdict
        if rec.seq < expect and not fresh:
            _check_resent(view, i, rec)
            continue
        if rec.seq != expect:
            raise SeqGapError(view.group, expect, rec.seq)
        fresh.append(rec)
        expect += 1
    return fresh


def _check_source_time(view: GroupView, i: int, rec: Record) -> None:
    """A source time is positive and at most MAX_SOURCE_AHEAD_NS ahead of trusted time."""
    if not view.now_ns:
        return
    ahead = rec.source_ns - view.now_ns
    if rec.source_ns <= 0 or ahead > MAX_SOURCE_AHEAD_NS:
        why = "is not positive" if rec.source_ns <= 0 else f"is {ahead / 1e9:.0f} s ahead"
        raise InvalidInputError(
            f"records[{i}].source_time_unix_ns",
            f"{rec.source_ns} {why} of the target's clock; it must be > 0 and at most "
            f"{MAX_SOURCE_AHEAD_NS // 10**9} s ahead: fix the source's clock (NTP)",
        )


def _check_extent(view: GroupView, i: int, rec: Record) -> None:
    where = f"records[{i}]"
    if rec.disk >= len(view.capacities):
        raise NotFoundError(
            f"{where}.disk_index: group {view.group!r} has no disk {rec.disk} "
            f"(it has {len(view.capacities)})"
        )
    if rec.offset % SECTOR:
        raise InvalidInputError(f"{where}.offset_bytes", f"{rec.offset} is not a multiple of 512")
    if rec.length <= 0 or rec.length % SECTOR or rec.length > MAX_WRITE_BYTES:
        raise InvalidInputError(
            f"{where}.length_bytes",
            f"{rec.length} is not a positive multiple of 512 up to {MAX_WRITE_BYTES}",
        )
    cap = view.capacities[rec.disk]
    if rec.offset + rec.length > cap:
        raise InvalidInputError(
            f"{where}.offset_bytes",
            f"write {rec.offset}+{rec.length} ends past the disk's capacity {cap}",
        )


def _check_marker(view: GroupView, i: int, rec: Record, names: set[str]) -> None:
    """A bookmark or app-consistent marker: no data, a printable unique label."""
    where = f"records[{i}]"
    if rec.kind not in MARKER_KINDS:
        raise InvalidInputError(f"{where}.kind", f"unknown record kind {rec.kind}")
    if rec.offset:
        raise InvalidInputError(f"{where}.offset_bytes", "a marker carries no data: must be 0")
    if rec.length:
        raise InvalidInputError(f"{where}.length_bytes", "a marker carries no data: must be 0")
    label = check_label(f"{where}.label", rec.frame)
    if codec.checksum(rec.frame) != rec.data_xxh3:
        raise ChecksumError(view.group, rec.seq, "of the marker label")
    if rec.kind == KIND_BOOKMARK:
        check_bookmark_name(f"{where}.label", label)
        if label in names or view.bookmark_taken(label):
            raise BookmarkExistsError(view.group, label)
        names.add(label)
    if rec.kind == KIND_CONSISTENCY and parse_marker_label(label) is None:
        raise InvalidInputError(
            f"{where}.label",
            f"{label!r}: a consistency marker is labelled cg-<n> (n from 1, no leading zeros)",
        )


def _check_payload(group: str, rec: Record) -> None:
    """Raise unless the frame decompresses to the record's length with its checksum."""
    if codec.frame_checksum(rec.frame, rec.length) != rec.data_xxh3:
        raise ChecksumError(group, rec.seq, "of the uncompressed bytes")


def _check_resent(view: GroupView, i: int, rec: Record) -> None:
    """A seq below the expected one: accept an exact re-send of a durable record."""
    if rec.seq > view.durable_seq:
        raise PreconditionError(f"records[{i}].seq: {rec.seq} was already received in this session")
    known = view.lookup(rec.seq)
    if known is None:
        raise PreconditionError(
            f"records[{i}].seq: {rec.seq} is older than the journal holds; "
            f"resume from durable seq {view.durable_seq} + 1"
        )
    if known.data_xxh3 != rec.data_xxh3:
        raise SeqConflictError(view.group, rec.seq)


MAX_REGIONS = 4096
"""Regions in one CompareRegions request, at most."""


def check_regions(
    capacities: tuple[int, ...], disk: int, region_bytes: int, offsets: list[int], hashes: list[int]
) -> int:
    """Validate a CompareRegions request; return the disk's capacity."""
    if disk >= len(capacities):
        raise NotFoundError(f"disk_index: no disk {disk} (the group has {len(capacities)})")
    if region_bytes % SECTOR or not 4096 <= region_bytes <= 64 * 2**20:
        raise InvalidInputError(
            "region_bytes", f"{region_bytes} is not a multiple of 512 in 4KiB..64MiB"
        )
    if len(offsets) > MAX_REGIONS:
        raise InvalidInputError("offsets", f"{len(offsets)} regions; at most {MAX_REGIONS}")
    if len(hashes) != len(offsets):
        raise InvalidInputError("xxh3_64", f"{len(hashes)} hashes for {len(offsets)} offsets")
    cap = capacities[disk]
    for i, o in enumerate(offsets):
        if o % region_bytes or o >= cap:
            raise InvalidInputError(
                f"offsets[{i}]", f"{o} is not a multiple of region_bytes below the capacity {cap}"
            )
    return cap
