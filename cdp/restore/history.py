"""A consistency group's history as the operator sees it: points, bookmarks, timeline.

Two shapes, one interface:

- :class:`SingleHistory`: a group one source streams alone. Every acknowledged batch
  boundary is a restore point; markers and checkpoints are labelled points.
- :class:`MultiHistory`: a group whose VMs sit on several hosts. Each host streams its
  own member journal with its own seqs; the source-side coordinator puts the same
  consistency marker ``cg-<n>`` into every member's stream while it holds their writes.
  The group's restore points are the markers present (and still restorable) in every
  member; a point's id is the marker number n, and each member maps it to its own seq.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from cdp.errors import (
    BookmarkExistsError,
    CdpError,
    InvalidInputError,
    NotFoundError,
    PointOutsideHistoryError,
    PreconditionError,
)
from cdp.group import GroupSpec
from cdp.journal.index import POINT_BOOKMARK, POINT_CONSISTENCY, IndexEntry, Point
from cdp.restore.catalog import Catalog, PageKey, Span, Timeline, expand, history_health
from cdp.restore.clean import (
    Band,
    combine,
    member_band,
    newest_point_upto,
    no_clean_point,
    why_not_clean,
)
from cdp.restore.spec import (
    MAX_NS,
    AtSeq,
    AtTime,
    LastClean,
    Latest,
    check_bookmark_name,
    check_label,
    format_ns,
    parse_at,
    parse_marker_label,
)
from cdp.verdict import CLEAN, UNKNOWN, Suspicion, onset_seq

_ALL = (-(2**63), 2**63 - 1)
MARKER_PREFIX = "cg-"


class MemberView(Protocol):
    """What a history reads of one member journal (the target's ``Member``)."""

    @property
    def key(self) -> str:
        """The member key: names the member's index rows and catalog."""

    @property
    def spec(self) -> GroupSpec:
        """The member's VMs."""

    @property
    def member_id(self) -> str:
        """The member's id within its group; empty for a group one source streams alone."""

    @property
    def created_ns(self) -> int:
        """When the member was first registered (Unix ns)."""

    @property
    def catalog(self) -> Catalog:
        """The member's restore points."""

    @property
    def bookmark_lock(self) -> asyncio.Lock:
        """Held while a bookmark name is checked and written."""

    @property
    def durable_seq(self) -> int:
        """Newest durable seq."""

    @property
    def durable_ns(self) -> int:
        """Source time of the newest durable record."""

    @property
    def applied_seq(self) -> int:
        """Newest seq applied to the base: older points are no longer restorable."""

    @property
    def size_cuts(self) -> int:
        """Apply rounds forced by the journal size limit."""

    def journal_bytes(self) -> int:
        """Bytes of journal on disk."""

    def retention_notice(self) -> str:
        """Why new writes are refused to keep pinned or locked history ("" when taken)."""

    def damage(self) -> CdpError | None:
        """The corruption that ends the member's journal early (None when intact)."""

    def lookup(self, seq: int) -> IndexEntry | None:
        """The index entry of a seq still in the journal."""

    def holds_vm(self, vm_id: str) -> bool:
        """Whether the member streams this VM."""

    def bookmark_taken(self, name: str) -> bool:
        """Whether a bookmark has this name, durable or in flight."""

    async def quiesce(self) -> None:
        """Wait until every queued batch is durable or failed."""

    def verdict(self, seq: int) -> str:
        """clean, suspect or unknown for the member's point at ``seq``."""

    def suspicions(self) -> list[Suspicion]:
        """Every suspicion on the member's history, dismissed ones too, oldest first."""


M = TypeVar("M", bound=MemberView)
"""The member type a history hands back (the target's ``Member``)."""


class History(Protocol[M]):
    """What the target asks of a group's history."""

    def points(
        self, start_ns: int, end_ns: int, after: PageKey | None, limit: int,
        labelled_only: bool,
    ) -> list[Point]:  # fmt: skip
        """Restorable points, oldest first."""

    def resolve(self, at: str) -> Point:
        """The group restore point ``at`` names."""

    def member_of(self, vm_id: str) -> M:
        """The member journal holding a VM."""

    def member_seq(self, point: Point, member: M) -> int:
        """The seq in ``member``'s journal that ``point`` corresponds to."""

    async def bookmark(self, name: str) -> Point:
        """Name the newest restorable point."""

    def bookmark_point(self, name: str) -> Point:
        """The point a bookmark ``name`` would name now (BookmarkExistsError if taken).

        The caller holds the bookmark locks; no await, so it reads one instant.
        """

    async def put_bookmark(self, name: str, point: Point) -> None:
        """Record ``name`` at ``point`` (from :meth:`bookmark_point`, under the same locks)."""

    def timeline(self) -> Timeline:
        """Intervals, gaps and history health."""

    def verdicts(self, points: list[Point]) -> list[str]:
        """The verdict on each of ``points`` (as :meth:`points` lists them)."""

    def last_clean(self) -> Point:
        """The newest restorable point whose verdict is clean (PreconditionError: none)."""

    def suspect_bands(self) -> list[Band]:
        """The stretches of the timeline that standing suspicions cover, oldest first."""


def _member_by_vm(members: list[M], group_id: str, vm_id: str) -> M:
    for m in members:
        if m.holds_vm(vm_id):
            return m
    raise NotFoundError(f"vm_id: group {group_id!r} has no VM {vm_id!r}")


def _refusing(
    spans: list[Span], notice: str, durable: int, health: str, message: str
) -> tuple[str, str]:
    """While intake refuses new writes to keep history, a gap after ``durable`` says so."""
    if not notice:
        return health, message
    spans.append(Span(durable + 1, durable + 1, 0, 0, False, notice))
    return "error", f"{notice}: the source keeps them and catches up once there is room"


def _health(window_s: float, spans: list[Span], created_ns: int) -> tuple[float, str, str]:
    """History available (newest minus oldest restorable point time) and its grade.

    The grade is measured from now, not from the newest point: an idle source loses no
    history, so it is not graded down for being idle.
    """
    now = time.time_ns()
    kept = [s for s in spans if s.restorable]
    if not kept or not kept[0].start_ns:
        return 0.0, *history_health(window_s, 0.0, (now - created_ns) / 1e9)
    available = max(0.0, (kept[-1].end_ns - kept[0].start_ns) / 1e9)
    graded = (now - kept[0].start_ns) / 1e9
    health, message = history_health(window_s, graded, (now - created_ns) / 1e9)
    return available, health, message


class SingleHistory(Generic[M]):
    """History of a group streamed by one source."""

    def __init__(self, member: M, window_s: float, journal_limit_bytes: int) -> None:
        self.m = member
        self.window_s = window_s
        """The history window promised (seconds)."""
        self.journal_limit_bytes = journal_limit_bytes
        self.group_id = member.spec.group_id

    def points(
        self, start_ns: int, end_ns: int, after: PageKey | None, limit: int,
        labelled_only: bool,
    ) -> list[Point]:  # fmt: skip
        """Restorable points, oldest first."""
        base = self.m.applied_seq
        found = self.m.catalog.restorable(base, start_ns, end_ns, after, limit, labelled_only)
        if self.m.damage() is not None:  # a corruption ends the restorable range
            found = [p for p in found if p.seq <= self.m.durable_seq]
        return found

    def resolve(self, at: str) -> Point:
        """The restore point ``at`` names (DATA_LOSS past a corruption)."""
        m = self.m
        if at.strip() and isinstance(parse_at(at), LastClean):
            return self.last_clean()
        damage = m.damage()
        past = at.strip() == "latest" or (at.strip().isdecimal() and int(at) > m.durable_seq)
        if damage is not None and past:
            raise damage
        point = m.catalog.resolve(at, m.applied_seq, m.durable_seq, m.durable_ns)
        if damage is not None and point.seq > m.durable_seq:
            raise damage
        return point

    def member_of(self, vm_id: str) -> M:
        """The (only) member, if it holds the VM."""
        return _member_by_vm([self.m], self.group_id, vm_id)

    def member_seq(self, point: Point, member: M) -> int:
        """Points are seqs of the only member."""
        return point.seq

    async def bookmark(self, name: str) -> Point:
        """Name the newest durable restore point."""
        index, key = self.m.catalog.index, self.m.key
        check_bookmark_name("name", check_label("name", name.encode()))
        async with self.m.bookmark_lock:
            if self.m.bookmark_taken(name):
                raise BookmarkExistsError(self.group_id, name)
            await self.m.quiesce()
            seq = self.m.durable_seq
            if seq == 0:
                raise PreconditionError(
                    f"group_id: group {self.group_id!r} has nothing durable yet"
                )
            await asyncio.to_thread(index.put_bookmark, key, name, seq)
        return Point(seq, self.m.durable_ns, POINT_BOOKMARK, name)

    def bookmark_point(self, name: str) -> Point:
        """The newest durable point, to be named ``name`` (the caller holds the lock)."""
        if self.m.bookmark_taken(name):
            raise BookmarkExistsError(self.group_id, name)
        if self.m.durable_seq == 0:
            raise PreconditionError(f"group_ids: group {self.group_id!r} has nothing durable yet")
        return Point(self.m.durable_seq, self.m.durable_ns, POINT_BOOKMARK, name)

    async def put_bookmark(self, name: str, point: Point) -> None:
        """Record the bookmark in the index."""
        index, key = self.m.catalog.index, self.m.key
        await asyncio.to_thread(index.put_bookmark, key, name, point.seq)

    def timeline(self) -> Timeline:
        """Restorable intervals and gaps, with the history's health."""
        m = self.m
        base, durable = m.applied_seq, m.durable_seq
        oldest = m.catalog.restorable(base, *_ALL, None, 1, False)
        cursor = oldest[0].seq if oldest else max(base, 1)
        spans: list[Span] = []
        if base > 0 and cursor > 1:  # seqs before the first batch end are no gap
            cause = "retention (journal size limit)" if m.size_cuts else "retention"
            spans.append(Span(1, cursor - 1, 0, self._time_of(cursor - 1), False, cause))
        for gap in m.catalog.gaps():
            end = min(gap.end_seq, durable)
            if end < cursor:
                continue
            if gap.start_seq > cursor:
                spans.append(self._interval(cursor, gap.start_seq - 1))
            spans.append(Span(gap.start_seq, end, self._time_of(gap.start_seq),
                              self._time_of(end), False, gap.cause))  # fmt: skip
            cursor = end + 1
        if durable >= cursor:
            spans.append(self._interval(cursor, durable))
        available, health, message = _health(self.window_s, spans, m.created_ns)
        health, message = _refusing(spans, m.retention_notice(), durable, health, message)
        return Timeline(
            spans, self.window_s, available, health, message,
            m.journal_bytes(), self.journal_limit_bytes, m.size_cuts,
        )  # fmt: skip

    def verdicts(self, points: list[Point]) -> list[str]:
        """The member's verdict on each point's seq."""
        return [self.m.verdict(p.seq) for p in points]

    def last_clean(self) -> Point:
        """The newest restorable point before the earliest standing onset, if it is clean."""
        m = self.m
        suspicions = m.suspicions()
        onset = onset_seq(suspicions)
        upto = min(m.durable_seq, onset - 1) if onset else m.durable_seq
        point = newest_point_upto(m.catalog, m.applied_seq, upto, self._time_of(upto) or MAX_NS)
        verdict = m.verdict(point.seq) if point is not None else ""
        if point is not None and verdict == CLEAN:
            return point
        raise no_clean_point(self.group_id, why_not_clean(suspicions, point, verdict))

    def suspect_bands(self) -> list[Band]:
        """One band per standing suspicion, on the member's seqs."""
        m = self.m
        return [
            member_band(s, m.member_id, m.durable_seq, self._time_of)
            for s in m.suspicions()
            if s.stands
        ]

    def _interval(self, first: int, last: int) -> Span:
        count = self.m.catalog.count(self.m.applied_seq, first, last)
        return Span(first, last, self._time_of(first), self._time_of(last), True, "", count)

    def _time_of(self, seq: int) -> int:
        point = self.m.catalog.index.point_at(self.m.key, seq)
        if point is not None:
            return point.source_ns
        entry = self.m.lookup(seq)
        return entry.source_ns if entry else 0


@dataclass(frozen=True)
class _Marker:
    """One consistency marker as every member holds it."""

    n: int
    points: dict[str, Point]
    """Member key -> the member's point of this marker."""

    def group_point(self, kind: int = POINT_CONSISTENCY, label: str = "") -> Point:
        ns = max(p.source_ns for p in self.points.values())
        return Point(self.n, ns, kind, label or f"{MARKER_PREFIX}{self.n}")


class MultiHistory(Generic[M]):
    """History of a group whose VMs sit on several hosts (member journals)."""

    def __init__(
        self, group_id: str, members: list[M], window_s: float, journal_limit_bytes: int
    ) -> None:
        self.group_id = group_id
        self.members = members
        self.window_s = window_s
        """The history window promised (seconds)."""
        self.journal_limit_bytes = journal_limit_bytes
        self.index = members[0].catalog.index

    def _markers(self) -> list[_Marker]:
        """Markers restorable in every member, oldest first."""
        per_member: dict[str, dict[int, Point]] = {}
        for m in self.members:
            found: dict[int, Point] = {}
            base = m.applied_seq
            for p in m.catalog.restorable(base, *_ALL, None, 10**9, True):
                n = parse_marker_label(p.label) if p.kind == POINT_CONSISTENCY else None
                if n is not None:  # a bad label stored by an old version is skipped
                    found[n] = p
            per_member[m.key] = found
        common = set.intersection(*(set(f) for f in per_member.values()))
        return [_Marker(n, {k: f[n] for k, f in per_member.items()}) for n in sorted(common)]

    def _labelled(self, marker: _Marker) -> Point:
        """The marker's group point, carrying its bookmarks."""
        p = marker.group_point()
        names = tuple(sorted(k for k, n in self._bookmark_names().items() if n == marker.n))
        return Point(p.seq, p.source_ns, p.kind, p.label, names)

    def _bookmark_names(self) -> dict[str, int]:
        """Group bookmark name -> marker number."""
        raw = self.index.get_meta(f"group-bookmarks/{self.group_id}")
        return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}

    def points(
        self, start_ns: int, end_ns: int, after: PageKey | None, limit: int,
        labelled_only: bool,
    ) -> list[Point]:  # fmt: skip
        """Group points (one per common marker, then its bookmarks) in a range, oldest first."""
        out: list[Point] = []
        for marker in self._markers():
            p = self._labelled(marker)
            if not start_ns <= p.source_ns <= end_ns:
                continue
            entries = expand(p, labelled_only)
            if after is not None:
                if (p.source_ns, p.seq) < after[:2]:
                    continue
                if (p.source_ns, p.seq) == after[:2]:
                    entries = entries[after[2] :]
            out.extend(entries)
        return out[:limit]

    def resolve(self, at: str) -> Point:
        """latest, a marker number, an ISO time or a bookmark name."""
        if not at.strip():
            raise InvalidInputError("at", "give latest, a marker number, a time or a bookmark")
        markers = self._markers()
        if not markers:
            raise NotFoundError(
                f"at: group {self.group_id!r} has no consistency marker in every member yet"
            )
        spec = parse_at(at)
        if isinstance(spec, LastClean):
            return self.last_clean()
        if isinstance(spec, Latest):
            return self._labelled(markers[-1])
        if isinstance(spec, AtSeq):
            return self._by_marker(spec.n, markers)
        if isinstance(spec, AtTime):
            return self._by_time(spec, markers)
        names = self._bookmark_names()
        if spec.name not in names:
            raise NotFoundError(f"at: group {self.group_id!r} has no bookmark named {spec.name!r}")
        p = self._by_marker(names[spec.name], markers, f"bookmark {spec.name!r}")
        return Point(p.seq, p.source_ns, POINT_BOOKMARK, spec.name)

    def _by_marker(self, n: int, markers: list[_Marker], what: str = "") -> Point:
        found = next((m for m in markers if m.n == n), None)
        if found is None:
            if n < markers[0].n:
                raise PointOutsideHistoryError(
                    f"at: {what or f'marker {n}'} is older than the history window; the oldest "
                    f"restorable marker is {markers[0].n}"
                )
            raise NotFoundError(f"at: marker {n} is not in every member of {self.group_id!r}")
        return self._labelled(found)

    def _by_time(self, spec: AtTime, markers: list[_Marker]) -> Point:
        before = [m for m in markers if m.group_point().source_ns <= spec.ns]
        if not before:
            raise PointOutsideHistoryError(
                f"at: no restorable marker at or before {spec.text}; the oldest is at "
                f"{format_ns(markers[0].group_point().source_ns)}"
            )
        return self._labelled(before[-1])

    def member_of(self, vm_id: str) -> M:
        """The member journal holding a VM."""
        return _member_by_vm(self.members, self.group_id, vm_id)

    def _verdict(self, marker: _Marker) -> str:
        """Suspect if any member's seq of the marker is, else unknown if any is, else clean."""
        return combine(m.verdict(marker.points[m.key].seq) for m in self.members)

    def verdicts(self, points: list[Point]) -> list[str]:
        """The combined verdict on each group point (a marker number)."""
        by_n = {mk.n: mk for mk in self._markers()}
        return [self._verdict(by_n[p.seq]) if p.seq in by_n else "" for p in points]

    def last_clean(self) -> Point:
        """The newest common marker whose combined verdict is clean."""
        markers = self._markers()
        for marker in reversed(markers):
            if self._verdict(marker) == CLEAN:
                return self._labelled(marker)
        suspicions = [s for m in self.members for s in m.suspicions()]
        unknown = [mk for mk in markers if self._verdict(mk) == UNKNOWN]
        newest = self._labelled(unknown[-1]) if unknown else None
        raise no_clean_point(
            self.group_id, why_not_clean(suspicions, newest, UNKNOWN if unknown else "")
        )

    def suspect_bands(self) -> list[Band]:
        """Each member's standing suspicions, projected onto the common markers."""
        markers = self._markers()
        bands: list[Band] = []
        for m in self.members:
            for s in (s for s in m.suspicions() if s.stands):
                inside = [mk for mk in markers if mk.points[m.key].seq >= s.start_seq]
                if s.end_seq:
                    inside = [mk for mk in inside if mk.points[m.key].seq <= s.end_seq]
                first = inside[0] if inside else None
                last = inside[-1] if inside else None
                n0 = first.n if first else (markers[-1].n + 1 if markers else 1)
                bands.append(Band(
                    suspicion_id=s.id, member_id=m.member_id, start_seq=n0,
                    end_seq=last.n if last else n0,
                    start_ns=first.group_point().source_ns if first else 0,
                    end_ns=last.group_point().source_ns if last else 0,
                    open=s.is_open, signal=s.signal,
                ))  # fmt: skip
        return sorted(bands, key=lambda b: b.start_seq)

    def member_seq(self, point: Point, member: M) -> int:
        """The member's seq of marker ``point.seq``."""
        marker = next((m for m in self._markers() if m.n == point.seq), None)
        if marker is None:
            raise PointOutsideHistoryError(f"at: marker {point.seq} left the history window")
        return marker.points[member.key].seq

    async def bookmark(self, name: str) -> Point:
        """Name the newest common marker."""
        check_bookmark_name("name", check_label("name", name.encode()))
        async with self.members[0].bookmark_lock:
            names = self._bookmark_names()
            if name in names:
                raise BookmarkExistsError(self.group_id, name)
            markers = self._markers()
            if not markers:
                raise PreconditionError(
                    f"group_id: group {self.group_id!r} has no consistency marker in every "
                    "member yet"
                )
            names[name] = markers[-1].n
            data = json.dumps(names).encode()
            await asyncio.to_thread(self.index.put_meta, f"group-bookmarks/{self.group_id}", data)
        return markers[-1].group_point(POINT_BOOKMARK, name)

    def bookmark_point(self, name: str) -> Point:
        """The newest common marker, to be named ``name`` (the caller holds the locks)."""
        if name in self._bookmark_names():
            raise BookmarkExistsError(self.group_id, name)
        markers = self._markers()
        if not markers:
            raise PreconditionError(
                f"group_ids: group {self.group_id!r} has no consistency marker in every member yet"
            )
        return markers[-1].group_point(POINT_BOOKMARK, name)

    async def put_bookmark(self, name: str, point: Point) -> None:
        """Record the bookmark (marker ``point.seq``) in the group's bookmark table."""
        names = self._bookmark_names()
        names[name] = point.seq
        data = json.dumps(names).encode()
        await asyncio.to_thread(self.index.put_meta, f"group-bookmarks/{self.group_id}", data)

    def timeline(self) -> Timeline:
        """One interval of common markers, after a retention gap if history was cut."""
        markers = self._markers()
        spans: list[Span] = []
        cut = any(m.applied_seq > 0 for m in self.members)
        size_cuts = sum(m.size_cuts for m in self.members)
        if markers and (cut or markers[0].n > 1):
            cause = "retention (journal size limit)" if size_cuts else "retention"
            if markers[0].n > 1:
                spans.append(Span(1, markers[0].n - 1, 0, 0, False, cause))
        if markers:
            first, last = markers[0].group_point(), markers[-1].group_point()
            spans.append(
                Span(first.seq, last.seq, first.source_ns, last.source_ns, True, "", len(markers))
            )
        created = min(m.created_ns for m in self.members)
        available, health, message = _health(self.window_s, spans, created)
        notice = next((n for n in (m.retention_notice() for m in self.members) if n), "")
        newest = markers[-1].n if markers else 0
        health, message = _refusing(spans, notice, newest, health, message)
        journal = sum(m.journal_bytes() for m in self.members)
        return Timeline(
            spans, self.window_s, available, health, message, journal,
            self.journal_limit_bytes, size_cuts,
        )  # fmt: skip
