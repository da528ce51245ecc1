"""In-memory index, for unit tests of the code around the index. Not durable."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from cdp.journal.index import POINT_CHECKPOINT, POINT_CRASH, POINT_OF_RECORD_KIND, IndexEntry, Point
from cdp.record import EVENT_KINDS


class MemoryIndex:
    """Dict-backed :class:`cdp.journal.index.Index`."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[int, IndexEntry]] = {}
        self._received: dict[str, list[tuple[int, int]]] = {}
        """(trusted time, seq) of points, per group."""
        self._points: dict[str, list[tuple[int, int]]] = {}
        self._point_by_seq: dict[str, dict[int, Point]] = {}
        self._bookmarks: dict[str, dict[str, int]] = {}
        self._meta: dict[str, bytes] = {}
        self._events: dict[str, dict[int, Point]] = {}

    def put_batch(
        self, group: str, entries: list[IndexEntry], ends: Sequence[int] = (),
        checkpoints: Sequence[int] = (),
    ) -> None:  # fmt: skip
        """Record entries; batch ends and markers are points."""
        if not entries:
            return
        end_seqs = set(ends) or {entries[-1].seq}
        table = self._entries.setdefault(group, {})
        received = self._received.setdefault(group, [])
        for e in entries:
            table[e.seq] = e
            if e.received_ns and (e.seq in end_seqs or e.kind != 1):
                received.append((e.received_ns, e.seq))
            if e.kind in POINT_OF_RECORD_KIND:
                self.tag_point(
                    group, Point(e.seq, e.source_ns, POINT_OF_RECORD_KIND[e.kind], e.label)
                )
                if e.kind == 2:
                    self.put_bookmark(group, e.label, e.seq)
            elif e.kind in EVENT_KINDS:
                self._events.setdefault(group, {})[e.seq] = Point(
                    e.seq, e.source_ns, e.kind, e.label
                )
                self.tag_point(group, Point(e.seq, e.source_ns, POINT_CRASH))
            elif e.seq in end_seqs and e.seq not in self._point_by_seq.get(group, {}):
                kind = POINT_CHECKPOINT if e.seq in checkpoints else POINT_CRASH
                self.tag_point(group, Point(e.seq, e.source_ns, kind))

    def get(self, group: str, seq: int) -> IndexEntry | None:
        """The entry for ``seq``."""
        return self._entries.get(group, {}).get(seq)

    def last_seq(self, group: str) -> int:
        """Highest indexed seq; 0 if none."""
        return max(self._entries.get(group, {}), default=0)

    def seq_received_before(self, group: str, received_ns: int) -> int | None:
        """Newest point received at or before ``received_ns`` (trusted time)."""
        times = sorted(self._received.get(group, []))
        i = bisect.bisect_right(times, (received_ns, 2**64))
        return times[i - 1][1] if i else None

    def put_received(self, group: str, seqs: Sequence[int], received_ns: int) -> None:
        """Record the trusted time of points."""
        self._received.setdefault(group, []).extend((received_ns, s) for s in seqs)

    def seq_at_time(self, group: str, source_ns: int) -> int | None:
        """Newest point at or before ``source_ns``."""
        times = self._points.get(group, [])
        i = bisect.bisect_right(times, (source_ns, 2**64))
        return times[i - 1][1] if i else None

    def points(
        self, group: str, start_ns: int, end_ns: int, after: tuple[int, int] | None, limit: int
    ) -> list[Point]:
        """Points in a time range, oldest first."""
        times = self._points.get(group, [])
        i = bisect.bisect_right(times, after) if after else bisect.bisect_left(times, (start_ns, 0))
        out: list[Point] = []
        for ns, seq in times[i:]:
            if ns > end_ns or len(out) >= limit:
                break
            if ns >= start_ns:
                p = self._point_by_seq[group][seq]
                names = tuple(
                    sorted(n for n, s in self._bookmarks.get(group, {}).items() if s == seq)
                )
                out.append(Point(p.seq, p.source_ns, p.kind, p.label, names))
        return out

    def point_at(self, group: str, seq: int) -> Point | None:
        """The point at ``seq``."""
        return self._point_by_seq.get(group, {}).get(seq)

    def tag_point(self, group: str, point: Point) -> None:
        """Store a point."""
        by_seq = self._point_by_seq.setdefault(group, {})
        old = by_seq.get(point.seq)
        if old is None:
            bisect.insort(self._points.setdefault(group, []), (point.source_ns, point.seq))
        by_seq[point.seq] = Point(
            point.seq, old.source_ns if old else point.source_ns, point.kind, point.label
        )

    def entries(self, group: str, first: int, last: int) -> list[IndexEntry]:
        """Entries first..last."""
        table = self._entries.get(group, {})
        return [table[s] for s in range(first, last + 1) if s in table]

    def events(self, group: str) -> list[Point]:
        """Resync markers, in seq order."""
        return [p for _, p in sorted(self._events.get(group, {}).items())]

    def get_bookmark(self, group: str, name: str) -> int | None:
        """Seq of a bookmark."""
        return self._bookmarks.get(group, {}).get(name)

    def put_bookmark(self, group: str, name: str, seq: int) -> None:
        """Name a point."""
        self._bookmarks.setdefault(group, {})[name] = seq

    def delete_upto(self, group: str, seq: int) -> None:
        """Forget entries and points with seq < ``seq``."""
        table = self._entries.get(group, {})
        for s in [s for s in table if s < seq]:
            del table[s]
        self._points[group] = [t for t in self._points.get(group, []) if t[1] >= seq]
        self._received[group] = [t for t in self._received.get(group, []) if t[1] >= seq]
        by_seq = self._point_by_seq.get(group, {})
        for s in [s for s in by_seq if s < seq]:
            del by_seq[s]

    def get_meta(self, key: str) -> bytes | None:
        """Metadata value."""
        return self._meta.get(key)

    def put_meta(self, key: str, value: bytes) -> None:
        """Store metadata."""
        self._meta[key] = value

    def close(self) -> None:
        """Nothing to release."""
