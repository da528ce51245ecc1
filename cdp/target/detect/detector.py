"""The detector of one member: fed every accepted record, it trains, then judges.

Time is the records' trusted (target-received) time, cut into windows of
``window_s``. A window closes when the first record of a later window arrives; closing
it either teaches the baselines (training) or judges it (every disk's unit and the
member's). Training ends once ``training_s`` of trusted time went by since the first
write *and* a quarter of that time had writes; from the next record on the detector
watches (:class:`Watching`). A unit whose CUSUM reaches the threshold raises a
suspicion (:class:`Raised`) starting at the first rising write of the rise (looked
back over the windows that led to it), once; the CUSUMs restart, and the suspicion
closes (:class:`Closed`, at the last rising write of a window that still rose) after
``quiet_s`` of trusted time with every CUSUM below half the threshold.

Not judged: records between RESYNC_START and RESYNC_END (they only update the region
map: after a full resync the detector knows what every region held), and markers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cdp.record import KIND_RESYNC_END, KIND_RESYNC_START, KIND_WRITE, Record
from cdp.target.detect.regions import INCOMPRESSIBLE_RATIO, RegionMap
from cdp.target.detect.stats import CUSUM_H, CUSUM_K, SLOTS, Unit, Window

DEFAULT_TRAINING_S = 600.0
"""Trusted seconds of training before the detector judges (10 minutes)."""
DEFAULT_WINDOW_S = 1.0
"""Length of one judged window of trusted time."""
DEFAULT_QUIET_S = 60.0
"""Seconds with every CUSUM below half the threshold after which a suspicion closes."""
BASELINE_VERSION = 1
"""Version of the persisted baseline document."""


@dataclass(frozen=True)
class DetectorConfig:
    """How long the detector trains, and its window and quiet time (seconds)."""

    training_s: float = DEFAULT_TRAINING_S
    window_s: float = DEFAULT_WINDOW_S
    quiet_s: float = DEFAULT_QUIET_S


@dataclass(frozen=True)
class Watching:
    """Training ended: every record from ``seq`` on is judged."""

    seq: int


@dataclass(frozen=True)
class Raised:
    """A rise of entropy on overwrites: suspect from ``start_seq`` on."""

    start_seq: int
    start_ns: int
    """Trusted time of the first suspect write."""
    disks: tuple[int, ...]
    signal: str
    at_ns: int
    """Trusted time at which the alarm was raised (the detection instant)."""


@dataclass(frozen=True)
class Closed:
    """The signal of the open suspicion stopped: its last rising write."""

    end_seq: int
    end_ns: int


@dataclass(frozen=True)
class DetectorState:
    """What the detector is doing now."""

    phase: str
    """training, watching or alerting."""
    resyncing: bool
    """Inside a resync: writes are not judged."""
    cusum: float
    """Highest CUSUM of any disk or the member, in spreads."""
    threshold: float
    """The CUSUM at which it raises a suspicion."""
    training_until_ns: int = 0
    """While training: the trusted time at which training can end at the earliest (it also
    needs writes in a quarter of that time), Unix ns; 0 when not training or before the
    first write."""


Event = Watching | Raised | Closed
"""What :meth:`Detector.observe` reports."""


class Detector:
    """Encryption detection on one member's write stream (see the module docstring)."""

    def __init__(
        self, capacities: Iterable[int], config: DetectorConfig | None = None,
        baseline: dict[str, Any] | None = None, alarmed: bool = False,
    ) -> None:  # fmt: skip
        self.config = config or DetectorConfig()
        self._maps = [RegionMap(c) for c in capacities]
        n = len(self._maps)
        self._units = [Unit() for _ in range(n)]
        self._member = Unit()
        self._sums = [Window() for _ in range(n)]
        self._window_ns = max(1, int(self.config.window_s * 1e9))
        self._window_end = 0
        self._train_from_ns = 0
        self._active_windows = 0
        self.trained = False
        """Whether training ended (the detector judges)."""
        self.resyncing = False
        """Inside RESYNC_START..RESYNC_END: writes only update the region map."""
        self.alarmed = alarmed
        """Whether a raised suspicion is open."""
        self._last_active_ns = 0
        self._last_rise: tuple[int, int] = (0, 0)
        if baseline is not None:
            self._load(baseline)

    # -- feeding ---------------------------------------------------------------------------

    def observe(self, records: Iterable[Record], received_ns: int) -> list[Event]:
        """Take a durable batch received at ``received_ns`` (trusted); the events it caused."""
        events: list[Event] = []
        first = True
        for r in records:
            if first:
                if received_ns >= self._window_end:
                    self._roll(received_ns, r.seq, events)
                first = False
            if r.kind == KIND_WRITE:
                self._write(r.seq, r.disk, r.offset, r.length, len(r.frame), received_ns)
            elif r.kind == KIND_RESYNC_START:
                self.resyncing = True
            elif r.kind == KIND_RESYNC_END:
                self.resyncing = False
        return events

    def observe_write(
        self, seq: int, disk: int, offset: int, length: int, frame_len: int, ns: int
    ) -> list[Event]:
        """Take one write record (its fields, not the record); the events it caused."""
        events: list[Event] = []
        if ns >= self._window_end:
            self._roll(ns, seq, events)
        self._write(seq, disk, offset, length, frame_len, ns)
        return events

    def tick(self, now_ns: int, next_seq: int) -> list[Event]:
        """Close the windows that ended by ``now_ns`` without a record (an idle member)."""
        events: list[Event] = []
        if self._window_end and now_ns >= self._window_end:
            self._roll(now_ns, next_seq, events)
        return events

    def _write(self, seq: int, disk: int, offset: int, length: int, frame_len: int,
               ns: int) -> None:  # fmt: skip
        ratio = frame_len / length
        over, rise = self._maps[disk].write(offset, length, ratio)
        if self.resyncing:
            return
        w = self._sums[disk]
        w.bytes += length
        w.over += over
        if ratio >= INCOMPRESSIBLE_RATIO:
            w.hi += length
        if rise:
            slot = (ns - self._window_end + self._window_ns) * SLOTS // self._window_ns
            w.add_rise(rise, seq, ns, min(SLOTS - 1, max(0, slot)))

    # -- windows ---------------------------------------------------------------------------

    def _roll(self, now_ns: int, seq: int, events: list[Event]) -> None:
        """Close the current window, account the idle ones, open the one holding ``now_ns``."""
        start = now_ns - now_ns % self._window_ns
        if not self._window_end:
            self._train_from_ns = now_ns
        else:
            self._close(seq, now_ns, events)
            idle = (start - self._window_end) // self._window_ns
            if self.trained and idle > 0:
                for unit in [*self._units, self._member]:
                    unit.idle(idle)
            self._check_quiet(start, events)
        self._window_end = start + self._window_ns

    def _close(self, seq: int, now_ns: int, events: list[Event]) -> None:
        sums, self._sums = self._sums, [Window() for _ in self._sums]
        total = _merge(sums)
        if not self.trained:
            self._learn(sums, total, seq, events)
            return
        crossed = [i for i, (u, w) in enumerate(zip(self._units, sums, strict=True)) if u.judge(w)]
        member_crossed = self._member.judge(total)
        units = [*self._units, self._member]
        if self.alarmed and any(u.cusum >= CUSUM_H / 2 for u in units):
            self._last_active_ns = self._window_end
            if total.last_rise is not None and any(u.z > CUSUM_K for u in units):
                self._last_rise = total.last_rise
        if (crossed or member_crossed) and not self.alarmed:
            events.append(self._raise(crossed, member_crossed, total, now_ns))

    def _learn(self, sums: list[Window], total: Window, seq: int, events: list[Event]) -> None:
        window_s = self._window_ns / 1e9
        for unit, w in zip(self._units, sums, strict=True):
            unit.learn(w, window_s)
        self._member.learn(total, window_s)
        self._active_windows += bool(total.bytes)
        trained_s = (self._window_end - self._train_from_ns) / 1e9
        need = self.config.training_s / 4 / window_s
        if trained_s >= self.config.training_s and self._active_windows >= need:
            self.trained = True
            events.append(Watching(seq))

    def _raise(
        self, crossed: list[int], member_crossed: bool, total: Window, now_ns: int
    ) -> Raised:
        alarming = [self._units[i] for i in crossed] + ([self._member] if member_crossed else [])
        rose = alarming
        if not any(u.strong() for u in alarming):  # a slow attack: every unit that rose too
            rose = [u for u in [*self._units, self._member] if u in alarming or u.slow > 0]
        onsets = [o for u in rose if (o := u.onset()) is not None]
        start_seq, start_ns = min(onsets) if onsets else self._fallback_onset(total)
        disks = tuple(i for i, u in enumerate(self._units) if u.cusum > 0 or i in crossed)
        worst = max(alarming, key=lambda u: u.cusum)
        self.alarmed, self._last_active_ns = True, self._window_end
        self._last_rise = total.last_rise or (start_seq, start_ns)
        for unit in [*self._units, self._member]:
            unit.reset()
        signal = _describe(worst, total, self._window_ns)
        return Raised(start_seq, start_ns, disks, signal, now_ns)

    def _fallback_onset(self, total: Window) -> tuple[int, int]:
        return total.first_rise or self._last_rise

    def _check_quiet(self, now_ns: int, events: list[Event]) -> None:
        """Close the open suspicion after ``quiet_s`` without a window above the allowance."""
        if self.alarmed and now_ns - self._last_active_ns >= self.config.quiet_s * 1e9:
            self.alarmed = False
            for unit in [*self._units, self._member]:
                unit.reset()
            events.append(Closed(*self._last_rise))

    # -- persistence and status -----------------------------------------------------------

    def baseline(self) -> dict[str, Any]:
        """The learned baseline (JSON-ready), to persist once training ended."""
        return {"version": BASELINE_VERSION, "disks": len(self._units),
                "member": self._member.to_dict(),
                "units": [u.to_dict() for u in self._units]}  # fmt: skip

    def _load(self, raw: dict[str, Any]) -> None:
        """Judge at once from a persisted baseline (a different disk count re-trains)."""
        if raw.get("version") != BASELINE_VERSION or raw.get("disks") != len(self._units):
            return
        self._member.load(raw["member"])
        for unit, u in zip(self._units, raw["units"], strict=True):
            unit.load(u)
        self.trained = True

    def cusum(self) -> float:
        """The highest CUSUM of any unit now, in spreads (the alarm is at CUSUM_H)."""
        return max(u.cusum for u in [*self._units, self._member])

    def set_resyncing(self, active: bool) -> None:
        """Whether a resync is open (after a restart: the journal's last event says)."""
        self.resyncing = active

    def state(self) -> DetectorState:
        """A snapshot for status surfaces."""
        phase = "alerting" if self.alarmed else "watching" if self.trained else "training"
        until = 0
        if not self.trained and self._train_from_ns:
            until = self._train_from_ns + int(self.config.training_s * 1e9)
        return DetectorState(phase, self.resyncing, round(self.cusum(), 2), CUSUM_H, until)


def _merge(sums: list[Window]) -> Window:
    """The member's window: the sum of its disks'."""
    return Window(
        bytes=sum(w.bytes for w in sums), hi=sum(w.hi for w in sums),
        over=sum(w.over for w in sums), rise=sum(w.rise for w in sums),
        first_rise=_earliest(w.first_rise for w in sums),
        last_rise=max((w.last_rise for w in sums if w.last_rise is not None), default=None),
        slot_rise=[sum(w.slot_rise[i] for w in sums) for i in range(SLOTS)],
        slot_first=[_earliest(w.slot_first[i] for w in sums) for i in range(SLOTS)],
    )  # fmt: skip


def _earliest(firsts: Iterable[tuple[int, int] | None]) -> tuple[int, int] | None:
    return min((f for f in firsts if f is not None), default=None)


def _describe(unit: Unit, total: Window, window_ns: int) -> str:
    """The raised signal in words, with the reported (not judged) signals beside it."""
    window_s = window_ns / 1e9
    hi = total.hi / total.bytes if total.bytes else 0.0
    return (
        f"entropy rise on overwrites: {total.share:.0%} of the bytes written made data that "
        f"compressed incompressible (baseline {unit.share.mean:.1%}), cusum reached "
        f"{CUSUM_H:g} spreads; incompressible writes {hi:.0%} of bytes (baseline "
        f"{unit.hi.mean:.0%}); write rate {total.bytes / window_s / 1e6:.1f} MB/s (baseline "
        f"{unit.rate.mean / 1e6:.1f}), overwrites {total.over / window_s / 1e6:.1f} MB/s "
        f"(baseline {unit.over_rate.mean / 1e6:.1f})"
    )
