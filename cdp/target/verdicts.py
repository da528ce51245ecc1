"""The persisted suspicions of one member, and where its detector started watching.

One JSON document per member in the index's meta table (``verdicts/<member key>``),
rewritten whole on every change (suspicions are few: one per attack or false alarm).
The detector raises and closes suspicions; the RPC edge marks ranges for an outside
tool and dismisses false alarms, naming the caller. Nothing here decides what is
suspicious: see ``cdp.target.detect``. Verdicts on points come from
:func:`cdp.verdict.verdict_of`. Thread-safe: the detector writes from its own worker
thread while the RPC edge marks and dismisses on the event loop; every change is one
read-modify-write under a lock.
"""

from __future__ import annotations

import json
import threading

from cdp.errors import InvalidInputError, NotFoundError
from cdp.journal.index import Index
from cdp.verdict import DETECTOR, Suspicion, onset_seq, verdict_of

MAX_REASON_CHARS = 512
"""Longest reason kept with a mark or a dismissal."""


def verdicts_key(member_key: str) -> str:
    """Index meta key of a member's suspicion table."""
    return f"verdicts/{member_key}"


class Verdicts:
    """The suspicions of one member and the seq its detector watches from."""

    def __init__(self, index: Index, member_key: str) -> None:
        self._index, self._key = index, verdicts_key(member_key)
        raw = json.loads(index.get_meta(self._key) or b"{}")
        self._items: list[Suspicion] = [Suspicion.from_dict(s) for s in raw.get("items", [])]
        self.watched_from_seq: int = int(raw.get("watched_from_seq", 0))
        """First seq the detector judged after its training; 0 until then."""
        self._lock = threading.RLock()

    def all(self) -> list[Suspicion]:
        """Every suspicion, dismissed ones too, oldest first."""
        return list(self._items)

    def standing(self) -> list[Suspicion]:
        """The suspicions that are not dismissed."""
        return [s for s in self._items if s.stands]

    def alerting(self) -> list[Suspicion]:
        """Standing suspicions: each one is an open alert until dismissed."""
        return self.standing()

    def verdict(self, seq: int) -> str:
        """clean, suspect or unknown for the point at ``seq``."""
        return verdict_of(seq, self._items, self.watched_from_seq)

    def onset_seq(self) -> int:
        """First seq of the earliest standing suspicion; 0 when none stands."""
        return onset_seq(self._items)

    def get(self, suspicion_id: str) -> Suspicion:
        """The suspicion ``suspicion_id`` (NotFoundError if there is none)."""
        for s in self._items:
            if s.id == suspicion_id:
                return s
        raise NotFoundError(f"no suspicion {suspicion_id!r} in this group")

    def start_watching(self, seq: int) -> None:
        """The detector judges from ``seq`` on (its training ended), durably; once."""
        with self._lock:
            if not self.watched_from_seq:
                self.watched_from_seq = seq
                self._store()

    def raise_(
        self, start_seq: int, start_ns: int, *, disks: tuple[int, ...], signal: str,
        raised_by: str = DETECTOR, now_ns: int, reason: str = "",
    ) -> Suspicion:  # fmt: skip
        """Record a new open suspicion from ``start_seq`` on, durably; return it."""
        if start_seq < 1:
            raise InvalidInputError("start_seq", "must be 1 or more")
        checked = _reason(reason)
        with self._lock:
            s = Suspicion(
                id=f"s-{len(self._items) + 1}", start_seq=start_seq, start_ns=start_ns,
                disks=disks, signal=signal, raised_by=raised_by, raised_ns=now_ns,
                reason=checked,
            )  # fmt: skip
            self._items.append(s)
            self._store()
            return s

    def mark(
        self, start_seq: int, start_ns: int, end_seq: int, end_ns: int, *, who: str,
        reason: str, now_ns: int,
    ) -> Suspicion:  # fmt: skip
        """Record a closed range an outside tool says is compromised, durably."""
        if end_seq and end_seq < start_seq:
            raise InvalidInputError("end", "is before start")
        with self._lock:
            s = self.raise_(
                start_seq, start_ns, disks=(), signal="marked compromised", raised_by=who,
                now_ns=now_ns, reason=reason,
            )  # fmt: skip
            if end_seq:
                return self.close(s.id, end_seq, end_ns)
            return s

    def close(self, suspicion_id: str, end_seq: int, end_ns: int) -> Suspicion:
        """The signal of ``suspicion_id`` stopped at ``end_seq``, durably."""
        with self._lock:
            return self._replace(self.get(suspicion_id).closed(end_seq, end_ns))

    def dismiss(self, suspicion_id: str, who: str, now_ns: int, reason: str) -> Suspicion:
        """``who`` says ``suspicion_id`` was a false alarm, durably; a second call is a no-op."""
        checked = _reason(reason)
        with self._lock:
            s = self.get(suspicion_id)
            if not s.stands:
                return s
            return self._replace(s.dismissed(who, now_ns, checked))

    def _replace(self, new: Suspicion) -> Suspicion:
        self._items = [new if s.id == new.id else s for s in self._items]
        self._store()
        return new

    def _store(self) -> None:
        doc = {"watched_from_seq": self.watched_from_seq,
               "items": [s.to_dict() for s in self._items]}  # fmt: skip
        self._index.put_meta(self._key, json.dumps(doc, sort_keys=True).encode())


def _reason(text: str) -> str:
    if len(text) > MAX_REASON_CHARS or not text.isprintable():
        raise InvalidInputError("reason", f"at most {MAX_REASON_CHARS} printable characters")
    return text
