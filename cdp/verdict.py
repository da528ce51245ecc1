"""Verdicts on restore points: clean, suspect or unknown, and the suspicions behind them.

A :class:`Suspicion` is one stretch of a group's history that something (the target's
encryption detector, or an outside tool such as an EDR or SIEM through the API) says may
hold an attack's writes. It starts at a seq and a trusted (target-received) time and is
open until the signal stops; an operator may dismiss it as a false alarm. A restore point
is **suspect** when it lies at or after the start of any suspicion that is not dismissed
(an encrypted file stays encrypted in every later point), **unknown** when the detector
was not yet watching (training) at its seq, and **clean** otherwise.

Value module: imports nothing of the layered packages. The persisted table lives in
``cdp.target.verdicts``; the detector in ``cdp.target.detect``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

CLEAN = "clean"
"""No suspicion covers the point and the detector was watching."""
SUSPECT = "suspect"
"""The point lies at or after the start of a suspicion that is not dismissed."""
UNKNOWN = "unknown"
"""The detector was not watching yet (training) when the point was written."""
VERDICTS = (CLEAN, SUSPECT, UNKNOWN)

DETECTOR = "detector"
"""``Suspicion.raised_by`` of a suspicion the target's detector raised."""


@dataclass(frozen=True)
class Suspicion:
    """One stretch of history that may hold an attack's writes."""

    id: str
    """Stable id within the group, e.g. ``s-3``."""
    start_seq: int
    """First seq of the suspect writes."""
    start_ns: int
    """Trusted (target-received) time of ``start_seq``, Unix ns."""
    end_seq: int = 0
    """Last seq the signal covered; 0 while the suspicion is open."""
    end_ns: int = 0
    """Trusted time of ``end_seq``; 0 while open."""
    disks: tuple[int, ...] = ()
    """Disk indexes the signal was seen on (empty: the whole group)."""
    signal: str = ""
    """What was seen, in words, e.g. ``entropy rise on overwrites (cusum 12.4)``."""
    raised_by: str = DETECTOR
    """``detector`` or the identity of the caller that marked the range."""
    raised_ns: int = 0
    """When it was raised (target clock), Unix ns."""
    dismissed_by: str = ""
    """Identity that dismissed it as a false alarm; "" while it stands."""
    dismissed_ns: int = 0
    reason: str = ""
    """The marker's or dismisser's reason, as given."""

    @property
    def is_open(self) -> bool:
        """Whether the signal is still going (no end yet)."""
        return self.end_seq == 0

    @property
    def stands(self) -> bool:
        """Whether it counts (not dismissed)."""
        return not self.dismissed_by

    def closed(self, end_seq: int, end_ns: int) -> Suspicion:
        """A copy that ended at ``end_seq``."""
        return replace(self, end_seq=end_seq, end_ns=end_ns)

    def dismissed(self, who: str, now_ns: int, reason: str) -> Suspicion:
        """A copy dismissed as a false alarm by ``who``."""
        return replace(self, dismissed_by=who, dismissed_ns=now_ns, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (disks as a list)."""
        out = asdict(self)
        out["disks"] = list(self.disks)
        return out

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> Suspicion:
        """Parse :meth:`to_dict`'s form."""
        fields = dict(raw)
        fields["disks"] = tuple(int(d) for d in fields.get("disks", ()))
        return Suspicion(**fields)


def verdict_of(seq: int, suspicions: Iterable[Suspicion], watched_from_seq: int) -> str:
    """The verdict on the restore point at ``seq``.

    ``watched_from_seq`` is the first seq the detector judged (after its training); 0
    when it never started, which makes every point unknown unless a suspicion covers it.
    """
    if any(s.stands and seq >= s.start_seq for s in suspicions):
        return SUSPECT
    if watched_from_seq <= 0 or seq < watched_from_seq:
        return UNKNOWN
    return CLEAN


def onset_seq(suspicions: Iterable[Suspicion]) -> int:
    """First seq of the earliest standing suspicion; 0 when none stands."""
    return min((s.start_seq for s in suspicions if s.stands), default=0)
