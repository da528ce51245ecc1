"""Verdicts as the operator meets them: the last clean point and the timeline's suspect bands.

The verdict on each of a member's seqs and its suspicions come from the target (through
the history's ``MemberView``); this module only projects them onto the group's restore
points. Pure reads: it never raises, closes or dismisses a suspicion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cdp.errors import PreconditionError
from cdp.journal.index import Point
from cdp.restore.catalog import MAX_COUNT, Catalog
from cdp.restore.spec import format_ns
from cdp.verdict import CLEAN, SUSPECT, UNKNOWN, Suspicion

SEARCH_START_NS = 2 * 10**9
"""First width of the time window searched back for the newest point before a seq."""
_ALL = (-(2**63), 2**63 - 1)
NO_CLEAN_HINT = (
    "see the verdicts with `cdp points list` and the alerts with `cdp suspicions list`; "
    "dismiss a false alarm with `cdp suspicions dismiss`, or name an older point with --at"
)
"""What the operator can do when no clean point exists."""


@dataclass(frozen=True)
class Band:
    """A stretch of the timeline a standing suspicion covers (seqs and point times as listed)."""

    suspicion_id: str
    member_id: str
    start_seq: int
    end_seq: int
    """Last seq covered; for an open suspicion the newest durable seq."""
    start_ns: int
    end_ns: int
    open: bool
    signal: str


def combine(verdicts: Iterable[str]) -> str:
    """A group point's verdict from its members' verdicts: suspect wins, then unknown."""
    found = set(verdicts)
    return next((v for v in (SUSPECT, UNKNOWN) if v in found), CLEAN)


def newest_point_upto(catalog: Catalog, base_seq: int, seq: int, time_ns: int) -> Point | None:
    """The newest restorable point with a seq at or below ``seq`` (None if there is none).

    ``time_ns`` is the listed time at ``seq``. Point times never go backwards with seq, so
    every point listed before ``time_ns`` qualifies: the search widens a time window back
    from ``time_ns`` until it holds one, instead of reading the whole history.
    """
    oldest = catalog.restorable(base_seq, *_ALL, None, 1, False)
    if not oldest or oldest[0].seq > seq:
        return None
    span = SEARCH_START_NS
    while True:
        low = max(time_ns - span, oldest[0].source_ns)
        page = catalog.restorable(base_seq, low, time_ns, None, MAX_COUNT, False)
        found = [p for p in page if p.seq <= seq]
        if found:
            best = max(p.seq for p in found)
            return next(p for p in found if p.seq == best)  # the point's own entry, not a bookmark
        if low <= oldest[0].source_ns:
            return oldest[0]
        span *= 16


def no_clean_point(group_id: str, why: str) -> PreconditionError:
    """The error for ``last-clean`` when no restorable point is clean, saying why."""
    return PreconditionError(
        f"at: group {group_id!r} has no clean restore point: {why}", hint=NO_CLEAN_HINT
    )


def why_not_clean(suspicions: list[Suspicion], newest: Point | None, newest_verdict: str) -> str:
    """Why a member offers no clean point: nothing yet, all suspect, or all unknown."""
    standing = [s for s in suspicions if s.stands]
    first = min(standing, key=lambda s: s.start_seq, default=None)
    onset = (
        f"suspicion {first.id} from seq {first.start_seq} ({format_ns(first.start_ns)})"
        if first
        else ""
    )
    if newest is None and first is not None:
        return f"every restorable point is at or after the onset of {onset}"
    if newest is None:
        return "it has no restorable point yet"
    if newest_verdict == UNKNOWN and first is not None:
        return (
            f"the points before the onset of {onset} are unknown (the detector was still "
            "training when they were written)"
        )
    return "every restorable point is unknown: the detector has not judged any point yet"


def member_band(
    s: Suspicion, member_id: str, durable_seq: int, time_of: Callable[[int], int]
) -> Band:
    """The band of one member's standing suspicion, on the member's seqs."""
    end = max(s.end_seq or durable_seq, s.start_seq)
    return Band(
        suspicion_id=s.id, member_id=member_id, start_seq=s.start_seq, end_seq=end,
        start_ns=time_of(s.start_seq), end_ns=time_of(end), open=s.is_open, signal=s.signal,
    )  # fmt: skip
