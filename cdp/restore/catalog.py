"""Restore points of a group: resolving what an operator asks for, listing, timeline.

Every acknowledged batch boundary is a crash-consistent restore point; markers from the
source (bookmarks, app-consistent points) and the target's checkpoints are labelled
points. Only points at or after the base (the applied seq) are restorable: older ones
left the history window and are never offered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cdp.errors import InvalidInputError, NotFoundError, PointOutsideHistoryError
from cdp.journal.index import POINT_BOOKMARK, POINT_CHECKPOINT, POINT_CRASH, Index, Point
from cdp.record import KIND_RESYNC_END, KIND_RESYNC_START
from cdp.restore.spec import AtBookmark, AtSeq, AtTime, LastClean, Latest, parse_at

DEFAULT_CHECKPOINT_INTERVAL_S = 1.0
"""Cadence of the target's checkpoints (browsable points on the timeline)."""
DEFAULT_HISTORY_WINDOW_S = 3600.0
MAX_HISTORY_WINDOW_S = 30 * 86400.0
HEALTH_WARNING = 0.85
HEALTH_ERROR = 0.75
MAX_COUNT = 1_000_000
"""Timeline point counts stop here (reported as at least this many)."""
OPEN_END = 2**63 - 1
"""End seq of a gap that is still open (a resync in progress)."""


@dataclass(frozen=True)
class Gap:
    """A stretch of seqs with no restore point, and why."""

    start_seq: int
    end_seq: int
    cause: str


@dataclass(frozen=True)
class Span:
    """One stretch of the timeline: a restorable interval or a gap."""

    start_seq: int
    end_seq: int
    start_ns: int
    end_ns: int
    restorable: bool
    cause: str = ""
    points: int = 0


@dataclass(frozen=True)
class Timeline:
    """A group's history: spans oldest first, and how much history is there."""

    spans: list[Span]
    history_window_s: float
    available_s: float
    health: str
    message: str
    journal_bytes: int
    journal_limit_bytes: int
    size_cuts: int = 0
    extra: dict[str, object] = field(default_factory=dict)


PageKey = tuple[int, int, int]
"""Where a listing page ends: (time ns, seq, entries of that seq already listed)."""


def expand(p: Point, labelled_only: bool) -> list[Point]:
    """The listing entries of a point: itself, then one entry per bookmark it carries.

    A bare batch end is left out when only labelled points are wanted.
    """
    own = [Point(p.seq, p.source_ns, p.kind, p.label)]
    if labelled_only and p.kind == POINT_CRASH:
        own = []
    names = [n for n in p.bookmarks if not (p.kind == POINT_BOOKMARK and n == p.label)]
    return own + [Point(p.seq, p.source_ns, POINT_BOOKMARK, n) for n in names]


class Catalog:
    """Restore points of one group, over the index."""

    def __init__(self, index: Index, group: str) -> None:
        self.index = index
        self.group = group

    def resolve(self, text: str, base_seq: int, durable_seq: int, durable_ns: int) -> Point:
        """The restore point ``text`` names: latest, a seq, an ISO time or a bookmark."""
        spec = parse_at(text)
        if isinstance(spec, Latest):
            if durable_seq == 0:
                raise NotFoundError(f"at: group {self.group!r} has no restore point yet")
            gap = self.in_gap(durable_seq)
            if gap is not None:  # during a resync the newest consistent point is before it
                return self._by_seq(gap.start_seq - 1, base_seq, durable_seq, "latest")
            point = self.index.point_at(self.group, durable_seq)
            return point or Point(durable_seq, durable_ns, POINT_CRASH)
        if isinstance(spec, AtSeq):
            return self._by_seq(spec.n, base_seq, durable_seq)
        if isinstance(spec, AtTime):
            return self._by_time(spec.ns, spec.text, base_seq)
        if isinstance(spec, LastClean):  # the history resolves it: it knows the verdicts
            raise InvalidInputError("at", "last-clean needs the group's verdicts")
        return self._by_bookmark(spec, base_seq, durable_seq)

    def _by_bookmark(self, spec: AtBookmark, base_seq: int, durable_seq: int) -> Point:
        seq = self.index.get_bookmark(self.group, spec.name)
        if seq is None:
            raise NotFoundError(f"at: group {self.group!r} has no bookmark named {spec.name!r}")
        point = self._by_seq(seq, base_seq, durable_seq, f"bookmark {spec.name!r}")
        return Point(point.seq, point.source_ns, POINT_BOOKMARK, spec.name)

    def _by_seq(self, seq: int, base_seq: int, durable_seq: int, what: str = "") -> Point:
        what = what or f"restore point {seq}"
        if seq > durable_seq:
            raise NotFoundError(f"at: {what}: the newest restore point is {durable_seq}")
        if seq < base_seq:
            raise PointOutsideHistoryError(
                f"at: {what} is older than the history window; the oldest restorable "
                f"point is seq {base_seq}",
                hint="list restorable points with `cdp points list`",
            )
        gap = self.in_gap(seq)
        if gap is not None:
            raise NotFoundError(
                f"at: {what} lies in a {gap.cause} gap (seqs {gap.start_seq}.."
                f"{'' if gap.end_seq == OPEN_END else gap.end_seq}): no consistent image there",
                hint="the last point before the gap is restorable",
            )
        point = self.index.point_at(self.group, seq)
        if point is None:
            raise NotFoundError(
                f"at: seq {seq} is not a restore point (points are batch boundaries and markers)"
            )
        return point

    def _by_time(self, ns: int, text: str, base_seq: int) -> Point:
        seq = self.index.seq_at_time(self.group, ns)
        gap = self.in_gap(seq) if seq is not None else None
        if gap is not None:
            seq = gap.start_seq - 1  # the resync start marker: the last consistent point
        if seq is None or seq < base_seq:
            raise PointOutsideHistoryError(
                f"at: no restorable point at or before {text}; it is before the history window",
                hint="list restorable points with `cdp points list`",
            )
        point = self.index.point_at(self.group, seq)
        assert point is not None
        return point

    def restorable(
        self, base_seq: int, start_ns: int, end_ns: int, after: PageKey | None,
        limit: int, labelled_only: bool,
    ) -> list[Point]:  # fmt: skip
        """Restorable points in a time range, oldest first, at most ``limit``.

        A point with bookmarks is followed by one entry per bookmark (kind bookmark,
        label its name); ``after`` is (time, seq, entries of that seq already given).
        """
        out: list[Point] = []
        gaps = self.gaps()
        skip = after[2] if after else 0
        cursor = (after[0], after[1] - 1) if after else None  # re-read after's seq, skip some
        while len(out) < limit:
            page = self.index.points(self.group, start_ns, end_ns, cursor, limit * 2)
            if not page:
                break
            for p in page:
                if p.seq < base_seq or (gaps and self.in_gap(p.seq, gaps)):
                    continue
                entries = expand(p, labelled_only)
                if after and (p.source_ns, p.seq) == (after[0], after[1]):
                    entries = entries[skip:]
                out.extend(entries[: limit - len(out)])
                if len(out) == limit:
                    break
            cursor = (page[-1].source_ns, page[-1].seq)
        return out

    def tag_checkpoint(self, seq: int, ns: int) -> None:
        """Label the point at ``seq`` a checkpoint unless it already has a label."""
        point = self.index.point_at(self.group, seq)
        if point is not None and point.kind == POINT_CRASH:
            self.index.tag_point(self.group, Point(seq, ns, POINT_CHECKPOINT))

    def gaps(self) -> list[Gap]:
        """Stretches of seqs with no consistent point (resync; recorded causes), oldest first.

        A resync gap holds the seqs strictly between its first start marker and the next end
        marker: a later start marker (a source restarted during its resync) extends the same
        gap, only an end marker closes it. One still open reaches to OPEN_END.
        """
        raw = self.index.get_meta(f"gaps/{self.group}")
        gaps = [Gap(**g) for g in json.loads(raw)] if raw else []
        start: int | None = None
        why = ""
        for e in self.index.events(self.group):
            if e.kind == KIND_RESYNC_START and start is None:
                start, why = e.seq, _cause(e.label)
            elif e.kind == KIND_RESYNC_START:  # a restarted source's resync extends the gap
                why = why or _cause(e.label)
            elif e.kind == KIND_RESYNC_END and start is not None:
                if e.seq > start + 1:
                    gaps.append(Gap(start + 1, e.seq - 1, f"resync{why}"))
                start = None
        if start is not None:
            gaps.append(Gap(start + 1, OPEN_END, f"resync{why} (in progress)"))
        return sorted(gaps, key=lambda g: g.start_seq)

    def in_gap(self, seq: int, gaps: list[Gap] | None = None) -> Gap | None:
        """The gap holding ``seq``, if any."""
        for g in self.gaps() if gaps is None else gaps:
            if g.start_seq <= seq <= g.end_seq:
                return g
        return None

    def record_gap(self, gap: Gap) -> None:
        """Remember that no restore point exists in a stretch of seqs."""
        gaps = [*self.gaps(), gap]
        data = [{"start_seq": g.start_seq, "end_seq": g.end_seq, "cause": g.cause} for g in gaps]
        self.index.put_meta(f"gaps/{self.group}", json.dumps(data).encode())

    def count(self, base_seq: int, first_seq: int, last_seq: int) -> int:
        """Restore points with first_seq <= seq <= last_seq (capped at MAX_COUNT)."""
        n, after = 0, None
        gaps = self.gaps()
        while n < MAX_COUNT:
            page = self.index.points(self.group, -(2**63), 2**63 - 1, after, 10000)
            if not page:
                break
            n += sum(
                len(expand(p, False))
                for p in page
                if max(first_seq, base_seq) <= p.seq <= last_seq and not self.in_gap(p.seq, gaps)
            )
            after = (page[-1].source_ns, page[-1].seq)
        return n


def _cause(label: str) -> str:
    """The cause suffix of a resync start label ("... cause=link down" -> " (link down)")."""
    _, found, why = label.partition("cause=")
    return f" ({why})" if found and why and why != "unknown" else ""


def history_health(window_s: float, available_s: float, age_s: float) -> tuple[str, str]:
    """Grade the history against what the window promises (as far as the group is old)."""
    expected = min(window_s, age_s)
    if expected <= 1.0:
        return "ok", ""
    ratio = available_s / expected
    if ratio >= HEALTH_WARNING:
        return "ok", ""
    level = "error" if ratio < HEALTH_ERROR else "warning"
    return level, (
        f"only {available_s:.0f} s of the expected {expected:.0f} s of history are available "
        f"({ratio:.0%}); the journal size limit is cutting history"
    )
