"""What keeps history from leaving early: the retention lock and the clock guard.

A **retention lock** (compliance mode, :attr:`cdp.target.config.GroupPolicy.retention_lock_s`)
is a minimum history no API, CLI or config change can shorten. It is stored in the index
the first time a group runs with it (``retention-lock/<group id>``); from then on a
policy that lowers or removes it, or whose history window is shorter, is refused with a
:class:`~cdp.errors.ConfigError` naming the field (:func:`check_policy`). Lengthening is
allowed and stored.

The **clock guard** (:class:`ClockGuard`) decides when the target's wall clock may be
trusted for time-based retention. It compares the wall clock's advance with a clock that
cannot be set (``CLOCK_BOOTTIME``) and, across restarts, with a persisted high-water
mark of the wall clock. A move of more than :data:`CLOCK_JUMP_BOUND_S` either way is an
unexplained jump: retention time stands still at the last trusted reading until the
jump is explained (the clock returns, or, after a backward move, catches up with the
high-water mark). docs/ARCHITECTURE.md, "Retention lock and clock guard".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cdp.errors import ConfigError
from cdp.journal.index import Index
from cdp.verdict import Suspicion

log = logging.getLogger("cdp.target")

CLOCK_JUMP_BOUND_S = 60.0
"""Largest move of the wall clock against the boot clock taken as normal (either way)."""
REANCHOR_NS = 3600 * 10**9
"""How often (boot-clock ns) a trusted wall clock is re-anchored: slew below the bound per
hour is accepted; a faster creep adds up to a jump."""
HIGH_WATER_EVERY_NS = 10 * 10**9
"""How often the wall-clock high-water mark is written to the index (at most)."""
HOLD, PIN, LOCK = "hold", "pin", "lock"
"""What sets the ceiling apply may not pass: a base hold, a suspicion's pin, the lock."""


def boot_clock_ns() -> int:
    """A clock no one can set that keeps counting through suspend (Linux CLOCK_BOOTTIME)."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime_ns(clock) if clock is not None else time.monotonic_ns()


# -- the retention lock -----------------------------------------------------------------------


def lock_key(group_id: str) -> str:
    """Index meta key of a group's stored retention lock."""
    return f"retention-lock/{group_id}"


@dataclass(frozen=True)
class StoredLock:
    """A group's retention lock as first applied (and lengthened since)."""

    lock_s: float
    """Minimum history in seconds; 0: the group was never locked."""
    since_ns: int = 0
    """When the lock was first stored (target clock)."""


def load_lock(index: Index, group_id: str) -> StoredLock:
    """The stored lock of ``group_id`` (lock_s 0 when it was never locked)."""
    raw = index.get_meta(lock_key(group_id))
    if not raw:
        return StoredLock(0.0)
    doc = json.loads(raw)
    return StoredLock(float(doc["lock_s"]), int(doc["since_ns"]))


def check_policy(stored: StoredLock, group_id: str, lock_s: float, window_s: float) -> None:
    """Refuse (ConfigError naming the field) a policy that would shorten locked history."""
    effective = max(stored.lock_s, lock_s)
    if stored.lock_s and lock_s < stored.lock_s:
        what = "removes" if not lock_s else f"lowers to {lock_s:g} s"
        raise ConfigError(
            "retention_lock",
            f"group {group_id!r} is under a retention lock of {stored.lock_s:g} s (since "
            f"{_when(stored.since_ns)}); the new config {what} it; a lock can only be lengthened",
        )
    if effective and window_s < effective:
        raise ConfigError(
            "history_window",
            f"group {group_id!r}: {window_s:g} s is shorter than its retention lock of "
            f"{effective:g} s; the history window must be at least the lock",
        )


def check_retention_lock(index: Index, group_id: str, lock_s: float, window_s: float) -> None:
    """Refuse (ConfigError) to run ``group_id`` by a lock and window that shorten its lock."""
    check_policy(load_lock(index, group_id), group_id, lock_s, window_s)


def store_lock(index: Index, group_id: str, stored: StoredLock, lock_s: float) -> StoredLock:
    """Store ``lock_s`` when it is new or longer than ``stored``; the lock now in force."""
    if lock_s <= stored.lock_s:
        return stored
    new = StoredLock(lock_s, stored.since_ns or time.time_ns())
    index.put_meta(
        lock_key(group_id), json.dumps({"lock_s": lock_s, "since_ns": new.since_ns}).encode()
    )
    log.warning("group %s: retention lock of %g s in force (it can only be lengthened)",
                group_id, lock_s)  # fmt: skip
    return new


def stop_cause(who: str, limit_bytes: int, lock_s: float, onset: Suspicion | None) -> str:
    """Why intake stops while ``who`` (pin or lock) keeps the journal at its size limit."""
    if who == PIN and onset is not None:
        return (
            f"journal at its size limit of {limit_bytes} bytes while the history before "
            f"suspicion {onset.id} (onset seq {onset.start_seq}) is pinned: new (suspect) "
            "writes are refused so that clean history is kept"
        )
    return (
        f"journal at its size limit of {limit_bytes} bytes while the retention lock of "
        f"{lock_s:g} s keeps the newest history: intake stops"
    )


def stop_notice(who: str) -> str:
    """The timeline's gap cause while ``who`` stops intake ("" unless pin or lock)."""
    if who == PIN:
        return "new writes refused (journal size limit; suspected attack: clean history pinned)"
    if who == LOCK:
        return "new writes refused (journal size limit; retention lock)"
    return ""


def _when(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9)) if ns else "?"


# -- the clock guard --------------------------------------------------------------------------


class ClockGuard:
    """Trusted time for retention: the wall clock, unless it jumped beyond the bound."""

    def __init__(
        self, index: Index, key: str, wall_ns: Callable[[], int], mono_ns: Callable[[], int],
        bound_s: float = CLOCK_JUMP_BOUND_S,
    ) -> None:  # fmt: skip
        self._index, self._meta = index, f"clock-high-water/{key}"
        self._wall, self._mono = wall_ns, mono_ns
        self._bound = int(bound_s * 1e9)
        self._key = key
        raw = index.get_meta(self._meta)
        self.high_water_ns = int(raw) if raw else 0
        """Newest trusted wall-clock reading (persisted every few seconds)."""
        self._stored_ns = self.high_water_ns
        wall, mono = wall_ns(), mono_ns()
        self._anchor = (wall, mono)
        self.trusted_ns = wall
        """The newest reading retention may use (frozen while a jump is unexplained)."""
        self.jump_ns = 0
        """Signed size of the unexplained jump (wall minus expected); 0 when trusted."""
        if self.high_water_ns and wall < self.high_water_ns - self._bound:
            self.trusted_ns = self.high_water_ns  # the clock should read at least this
            self._anchor = (self.high_water_ns, mono)
            self._jumped(wall - self.high_water_ns, "since the target last ran")

    def now_ns(self) -> int:
        """Trusted time now: the wall clock, or the last trusted reading during a jump."""
        wall, mono = self._wall(), self._mono()
        dev = wall - (self._anchor[0] + mono - self._anchor[1])
        if self.jump_ns:
            if not self._explained(wall, mono, dev):
                self.jump_ns = dev
                return self.trusted_ns
        elif abs(dev) > self._bound:
            self._jumped(dev, "while running")
            return self.trusted_ns
        if mono - self._anchor[1] >= REANCHOR_NS:  # slew within the bound per hour
            self._anchor = (wall, mono)
        self.trusted_ns = wall
        self._advance(wall)
        return wall

    @property
    def jumped(self) -> bool:
        """Whether an unexplained jump stops time-based retention now."""
        return self.jump_ns != 0

    def _explained(self, wall: int, mono: int, dev: int) -> bool:
        """Whether the clock was set right again or, after a backward jump, caught up.

        Set right: the anchor stands (so repeated jumps cannot creep forward). Caught
        up: the slow clock is taken as it is (history then leaves later, never earlier).
        """
        caught_up = wall >= self.high_water_ns and dev < -self._bound  # behind, never ahead
        if abs(dev) > self._bound and not caught_up:
            return False
        if caught_up:
            self._anchor = (wall, mono)
        log.warning("group %s: wall clock trusted again (now %s); time-based retention "
                    "resumes", self._key, _when(wall))  # fmt: skip
        self.jump_ns = 0
        return True

    def _jumped(self, dev: int, when: str) -> None:
        self.jump_ns = dev
        log.error(
            "group %s: the wall clock moved %+.0f s against the boot clock %s (bound %g s): "
            "time-based retention stands still at %s until the clock is explained; nothing "
            "expires early", self._key, dev / 1e9, when, self._bound / 1e9,
            _when(self.trusted_ns),
        )  # fmt: skip

    def _advance(self, wall: int) -> None:
        if wall <= self.high_water_ns:
            return
        self.high_water_ns = wall
        if wall - self._stored_ns >= HIGH_WATER_EVERY_NS:
            self._stored_ns = wall
            self._index.put_meta(self._meta, str(wall).encode())

    def flush(self) -> None:
        """Store the high-water mark now (at close)."""
        if self.high_water_ns > self._stored_ns:
            self._stored_ns = self.high_water_ns
            self._index.put_meta(self._meta, str(self.high_water_ns).encode())
