"""Per-window sums, the learned baseline and the one-sided CUSUM of one unit.

A unit is one disk of a member, or the member as a whole. Its judged signal is the
**rise share** of a window: entropy-rise bytes (see ``regions``) over the bytes written,
with :data:`MIN_WINDOW_BYTES` as the smallest denominator so that one odd write in an
idle second is not a 100 % share. Training learns its mean and spread (Welford); then
each window adds ``z - CUSUM_K`` to a sum that never drops below 0, ``z`` being the
share in units of the learned spread (at least :data:`SIGMA_FLOOR`). The unit alarms
when the sum reaches :data:`CUSUM_H`. Standard, scale-free values: k = 0.5 and h = 20
spreads, each window counting at most 8, need no tuning per site: the spread is the site's
own.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

MIN_WINDOW_BYTES = 2**20
"""Smallest denominator of a window's rise share (bytes): 1 MiB per window."""
SIGMA_FLOOR = 0.02
"""Smallest spread of the rise share used to normalise it (2 % of the bytes)."""
CUSUM_K = 0.5
"""Allowance per window, in spreads: drift below it never accumulates."""
CUSUM_H = 20.0
"""Alarm threshold of the CUSUM, in spreads."""
Z_MAX = 8.0
"""Most one window adds, in spreads: one odd burst (a few big compressed files saved over
old data in one second) cannot alarm alone; at least three windows must rise."""
RING_WINDOWS = 600
"""Windows a unit keeps to find where a rise began: those since its (slow) CUSUM's last zero
(usually a few), at most 10 minutes."""
ONSET_K = 1.0
"""Allowance (in spreads) of the change-point search: benign windows that barely rose
just before an attack are not counted into it."""
ONSET_SLOW_K = 0.25
"""Allowance (in spreads) of the slow CUSUM that places a weak rise's start (it never alarms):
a slow attack lifts the mean z only a little above the fast CUSUM's 0.5, so that one can
touch zero between the attack's sparse rising windows; this one, with half the allowance,
stays up through them and its last zero lies before the attack (benign windows still pull
it down, by a quarter of a spread each on average)."""
SLOTS = 4
"""Parts of a window whose rises are kept apart, to place an onset inside a window."""


@dataclass
class Window:
    """One unit's sums over one window of trusted time."""

    bytes: int = 0
    """Guest bytes written (uncompressed)."""
    hi: int = 0
    """Bytes of writes whose frames did not compress."""
    over: int = 0
    """Bytes written over regions that held data (overwrites)."""
    rise: float = 0.0
    """Entropy-rise bytes: incompressible writes over data that compressed, weighted."""
    first_rise: tuple[int, int] | None = None
    """(seq, trusted ns) of the window's first rising write."""
    last_rise: tuple[int, int] | None = None
    """(seq, trusted ns) of the window's last rising write."""
    slot_rise: list[float] = field(default_factory=lambda: [0.0] * SLOTS)
    """Rise bytes per quarter of the window."""
    slot_first: list[tuple[int, int] | None] = field(default_factory=lambda: [None] * SLOTS)
    """First rising write per quarter of the window."""

    def add_rise(self, rise: float, seq: int, ns: int, slot: int) -> None:
        """Count a rising write of the window's ``slot``-th quarter."""
        self.rise += rise
        self.slot_rise[slot] += rise
        if self.first_rise is None:
            self.first_rise = (seq, ns)
        self.last_rise = (seq, ns)
        if self.slot_first[slot] is None:
            self.slot_first[slot] = (seq, ns)

    @property
    def share(self) -> float:
        """The judged signal: rise bytes per written byte (at least 1 MiB counted)."""
        return self.rise / max(self.bytes, MIN_WINDOW_BYTES)


class Baseline:
    """Running mean and spread of one signal (Welford), learned while training."""

    def __init__(self, n: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        self.n, self.mean, self.m2 = n, mean, m2

    def add(self, x: float) -> None:
        """Learn one observation."""
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def sigma(self, floor: float = 0.0) -> float:
        """The spread (sample standard deviation), at least ``floor``."""
        sd = math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0
        return max(sd, floor)

    def to_list(self) -> list[float]:
        """[n, mean, m2], for the persisted baseline."""
        return [self.n, self.mean, self.m2]

    @staticmethod
    def from_list(raw: list[float]) -> Baseline:
        """Parse :meth:`to_list`'s form."""
        return Baseline(int(raw[0]), float(raw[1]), float(raw[2]))


class Unit:
    """One disk's (or the member's) baseline and CUSUM."""

    def __init__(self) -> None:
        self.share = Baseline()
        """The rise share per window (the judged signal)."""
        self.rate = Baseline()
        """Bytes written per second (reported against, not judged)."""
        self.over_rate = Baseline()
        """Bytes overwritten per second (reported against, not judged)."""
        self.hi = Baseline()
        """Share of bytes whose frames did not compress (reported, not judged)."""
        self.cusum = 0.0
        """The CUSUM of the rise share, in spreads."""
        self.z = 0.0
        """The last window's normalised rise share."""
        self._ring: deque[tuple[float, float, Window]] = deque(maxlen=RING_WINDOWS)
        """(CUSUM after the window, its z, the window), oldest first."""
        self.slow = 0.0
        """The slow CUSUM (allowance ONSET_SLOW_K): where a weak rise began, never an alarm."""
        self._slow_ring: deque[Window] = deque(maxlen=RING_WINDOWS)
        """The windows since the slow CUSUM's last zero (that window first), oldest first."""

    def learn(self, w: Window, window_s: float) -> None:
        """Learn a training window (windows without writes teach nothing)."""
        if w.bytes:
            self.share.add(w.share)
            self.rate.add(w.bytes / window_s)
            self.over_rate.add(w.over / window_s)
            self.hi.add(w.hi / w.bytes)

    def judge(self, w: Window) -> bool:
        """Add a judged window to the CUSUM; whether it reached the alarm threshold."""
        self.z = min(Z_MAX, (w.share - self.share.mean) / self.share.sigma(SIGMA_FLOOR))
        self.cusum = min(2 * CUSUM_H, max(0.0, self.cusum + self.z - CUSUM_K))
        if self.cusum <= 0:
            self._ring.clear()  # only the run since the last zero is ever walked back
        self._ring.append((self.cusum, self.z, w))
        self.slow = min(2 * CUSUM_H, max(0.0, self.slow + self.z - ONSET_SLOW_K))
        if self.slow <= 0:
            self._slow_ring.clear()
        self._slow_ring.append(w)
        return self.cusum >= CUSUM_H

    def idle(self, windows: int) -> None:
        """``windows`` windows without a write to this unit went by."""
        if windows <= 0:
            return
        self.z = -self.share.mean / self.share.sigma(SIGMA_FLOOR)
        self.cusum = max(0.0, self.cusum + windows * (self.z - CUSUM_K))
        if self.cusum <= 0:
            self._ring.clear()
        self.slow = max(0.0, self.slow + windows * (self.z - ONSET_SLOW_K))
        if self.slow <= 0:
            self._slow_ring.clear()

    def onset(self) -> tuple[int, int] | None:
        """(seq, ns) of the first rising write of the rise that ends in the latest window.

        Among the windows since the CUSUM's last zero, the rise most likely began at the
        window from which the sum of ``z - ONSET_K`` up to the alarm is largest (benign
        windows that barely rose just before a fast attack are not counted into it). A
        slow rise (mean z from there on under ``2 * ONSET_K``: a slow attack's windows
        that rose little are not told from noise, and cutting them off places the start
        late) goes back to the CUSUM's last zero; a weak one (:meth:`strong`: a slow
        attack at the noise level) further, to the last zero of the slow CUSUM (the
        classic CUSUM change-point estimate, on a slower time scale that does not touch
        zero between a slow attack's sparse rising windows): early rather than late. The
        trailing quarters of the window before the start whose rise share was above the
        allowance join it, and the quarter before those if it held a rising write (an
        attack that began late in that window).
        """
        zs, run, zero = self._fast_run()
        start = _change_point(zs, ONSET_K)
        if _mean(zs[: start + 1]) < 2 * ONSET_K:  # a slow rise: its start is unclear
            start = len(run) - 1
        if not self.strong():  # weak evidence: further back, to the slow CUSUM's last zero
            run, zero = self._slow_run(run, zero)
            start = len(run) - 1
        found = None
        for w in run[: start + 1]:
            found = _earliest(w.first_rise, found)
        before = run[start + 1] if start + 1 < len(run) else zero
        if before is None:
            return found
        floor = max(before.bytes, MIN_WINDOW_BYTES) / SLOTS
        allowance = self.share.mean + CUSUM_K * self.share.sigma(SIGMA_FLOOR)
        for slot in reversed(range(SLOTS)):
            found = _earliest(before.slot_first[slot], found)
            if before.slot_rise[slot] / floor <= allowance:
                break  # the quarter where the rise began (its first rising write counts)
        return found

    def strong(self) -> bool:
        """Whether the rise since the CUSUM's last zero is strong enough to be placed.

        Strong: its largest tail sum of ``z - ONSET_K`` is at least half the threshold.
        """
        tail, best = 0.0, float("-inf")
        for z in self._fast_run()[0]:
            tail += z - ONSET_K
            best = max(best, tail)
        return best >= CUSUM_H / 2

    def _fast_run(self) -> tuple[list[float], list[Window], Window | None]:
        """The z and windows since the CUSUM's last zero (newest first), that zero's window."""
        zs: list[float] = []
        run: list[Window] = []
        for cusum, z, w in reversed(self._ring):
            if cusum <= 0 and run:
                return zs, run, w
            zs.append(z)
            run.append(w)
        return zs, run, None

    def _slow_run(
        self, run: list[Window], zero: Window | None
    ) -> tuple[list[Window], Window | None]:
        """The windows since the slow CUSUM's last zero, newest first, and that zero's window.

        The slow CUSUM is never below the fast one, so its run holds the fast run; after a
        restart of the CUSUMs (an alarm) the fast run is kept if it reaches further back.
        """
        slow = list(reversed(self._slow_ring))
        if len(slow) <= len(run) + (zero is not None):
            return run, zero
        return slow[:-1], slow[-1]

    def reset(self) -> None:
        """Forget the CUSUMs (after an alarm was raised or closed)."""
        self.cusum = 0.0
        self.slow = 0.0

    def to_dict(self) -> dict[str, list[float]]:
        """The learned baseline, for the index meta."""
        return {"share": self.share.to_list(), "rate": self.rate.to_list(),
                "over_rate": self.over_rate.to_list(), "hi": self.hi.to_list()}  # fmt: skip

    def load(self, raw: dict[str, list[float]]) -> None:
        """Take a persisted baseline (see :meth:`to_dict`)."""
        self.share = Baseline.from_list(raw["share"])
        self.rate = Baseline.from_list(raw["rate"])
        self.over_rate = Baseline.from_list(raw["over_rate"])
        self.hi = Baseline.from_list(raw["hi"])


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _change_point(zs: list[float], k: float) -> int:
    """Index (in the newest-first ``zs``) where the largest tail sum of ``z - k`` starts."""
    tail, best, start = 0.0, float("-inf"), 0
    for i, z in enumerate(zs):
        tail += z - k
        if tail >= best:
            best, start = tail, i
    return start


def _earliest(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    return b if a is None else a if b is None else min(a, b)
