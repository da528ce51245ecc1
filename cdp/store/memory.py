"""In-memory index, for unit tests of the code around the index. Not durable."""

from __future__ import annotations

import bisect

from cdp.index import IndexEntry


class MemoryIndex:
    """Dict-backed :class:`cdp.index.Index`."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[int, IndexEntry]] = {}
        self._times: dict[str, list[tuple[int, int]]] = {}
        self._meta: dict[str, bytes] = {}

    def put_batch(self, group: str, entries: list[IndexEntry]) -> None:
        """Record entries; the last is a time point."""
        if not entries:
            return
        table = self._entries.setdefault(group, {})
        for e in entries:
            table[e.seq] = e
        bisect.insort(self._times.setdefault(group, []), (entries[-1].source_ns, entries[-1].seq))

    def get(self, group: str, seq: int) -> IndexEntry | None:
        """The entry for ``seq``."""
        return self._entries.get(group, {}).get(seq)

    def last_seq(self, group: str) -> int:
        """Highest indexed seq; 0 if none."""
        return max(self._entries.get(group, {0: None}), default=0)

    def seq_at_time(self, group: str, source_ns: int) -> int | None:
        """Newest time point at or before ``source_ns``."""
        times = self._times.get(group, [])
        i = bisect.bisect_right(times, (source_ns, 2**64))
        return times[i - 1][1] if i else None

    def delete_upto(self, group: str, seq: int) -> None:
        """Forget entries with seq <= ``seq``."""
        table = self._entries.get(group, {})
        for s in [s for s in table if s <= seq]:
            del table[s]
        self._times[group] = [t for t in self._times.get(group, []) if t[1] > seq]

    def get_meta(self, key: str) -> bytes | None:
        """Metadata value."""
        return self._meta.get(key)

    def put_meta(self, key: str, value: bytes) -> None:
        """Store metadata."""
        self._meta[key] = value

    def close(self) -> None:
        """Nothing to release."""
