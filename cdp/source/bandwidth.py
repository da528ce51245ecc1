"""Bandwidth caps on the source: token buckets, a daily schedule and strict priorities.

Owns :class:`TokenBucket` (pure arithmetic over an injected clock), :class:`Schedule`
(a rate per UTC time window, e.g. a lower cap in business hours), :class:`Limiter` (an
async gate over one bucket, shared by every group of a source process, granting tokens
to the highest-priority waiter first) and :class:`Throttle` (what one shipper consults
before each batch: its group's own limiter, then the source's). Payload bytes are
counted as sent (compressed frames), as the send window counts them. It never reads a
flag, a file or the wall clock itself: the command line builds these from its flags.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from cdp.waiting import wait_set

PRIORITIES = ("high", "normal", "low")
"""A group's claim on a saturated cap, best first (the target's policy names the same)."""
DEFAULT_PRIORITY = "normal"
"""The priority of a group that names none."""
DEFAULT_BURST_S = 0.05
"""A bucket holds this many seconds of its rate: short enough that a waiting
high-priority batch is not held long behind one just granted to a lower one."""
MIN_BURST_BYTES = 64 * 2**10
"""The smallest burst (and so the smallest batch a capped shipper aims for)."""
UNLIMITED = math.inf
"""A rate without a cap (bytes per second)."""
DAY_S = 86400


def burst_for(rate_bytes_s: float) -> int:
    """The burst of a bucket of this rate: :data:`DEFAULT_BURST_S` of it, at least 64 KiB."""
    if rate_bytes_s == UNLIMITED:
        return MIN_BURST_BYTES
    return max(MIN_BURST_BYTES, int(rate_bytes_s * DEFAULT_BURST_S))


class TokenBucket:
    """Tokens (bytes) refill at ``rate_bytes_s`` up to ``burst_bytes``; times are seconds.

    A request of n bytes may go once :meth:`wait_s` is 0, i.e. when the bucket holds
    ``min(n, burst)`` tokens; :meth:`take` then removes n (a request larger than the burst
    leaves the bucket in debt, which the next requests wait out). So for requests of at
    most the burst, the bytes granted in any window of T seconds are at most
    ``rate x T + burst``.
    """

    def __init__(self, rate_bytes_s: float, burst_bytes: int, now_s: float) -> None:
        if rate_bytes_s <= 0 or burst_bytes <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate_bytes_s = rate_bytes_s
        self.burst_bytes = burst_bytes
        self.tokens = float(burst_bytes)
        self.updated_s = now_s

    def _refill(self, now_s: float) -> None:
        if now_s > self.updated_s:
            if self.rate_bytes_s == UNLIMITED:
                self.tokens = float(self.burst_bytes)
            else:
                gained = (now_s - self.updated_s) * self.rate_bytes_s
                self.tokens = min(float(self.burst_bytes), self.tokens + gained)
            self.updated_s = now_s

    def set_rate(self, rate_bytes_s: float, now_s: float) -> None:
        """Change the rate from ``now_s`` on (tokens gained so far count at the old rate)."""
        if rate_bytes_s <= 0:
            raise ValueError("rate must be positive")
        self._refill(now_s)
        self.rate_bytes_s = rate_bytes_s

    def wait_s(self, n: int, now_s: float) -> float:
        """Seconds until a request of ``n`` bytes may go (0: now)."""
        self._refill(now_s)
        need = min(float(n), float(self.burst_bytes)) - self.tokens
        if need <= 0 or self.rate_bytes_s == UNLIMITED:
            return 0.0
        return need / self.rate_bytes_s

    def take(self, n: int, now_s: float) -> None:
        """Remove ``n`` tokens for a request that may go now (see :meth:`wait_s`)."""
        self._refill(now_s)
        if self.rate_bytes_s != UNLIMITED:
            self.tokens -= n


@dataclass(frozen=True)
class Window:
    """A daily UTC time window with its own rate: [start_s, end_s) seconds after midnight.

    ``end_s <= start_s`` wraps past midnight (22:00-06:00).
    """

    start_s: int
    end_s: int
    rate_bytes_s: float

    def holds(self, day_s: float) -> bool:
        """Whether this second of the day falls in the window."""
        if self.start_s < self.end_s:
            return self.start_s <= day_s < self.end_s
        return day_s >= self.start_s or day_s < self.end_s


@dataclass(frozen=True)
class Schedule:
    """A cap that changes with the UTC time of day: the first window that holds, else default."""

    default_bytes_s: float = UNLIMITED
    windows: tuple[Window, ...] = ()

    def rate_at(self, unix_s: float) -> float:
        """The cap (bytes per second) at this wall-clock time."""
        day_s = unix_s % DAY_S
        for w in self.windows:
            if w.holds(day_s):
                return w.rate_bytes_s
        return self.default_bytes_s

    @property
    def capped(self) -> bool:
        """Whether any rate of the schedule is finite."""
        return self.default_bytes_s != UNLIMITED or bool(self.windows)


def rank(priority: str) -> int:
    """0 for high, 1 for normal, 2 for low."""
    return PRIORITIES.index(priority)


class Limiter:
    """One cap, shared by whoever holds it; waiting requests are served by strict priority.

    A lower-priority request waits while any higher-priority one waits; equal priorities
    go in arrival order. The rate follows ``schedule`` (read from ``wall_s`` on each
    request). ``clock_s`` is monotonic seconds; both are injected for tests.
    """

    def __init__(
        self,
        schedule: Schedule,
        clock_s: Callable[[], float] = time.monotonic,
        wall_s: Callable[[], float] = time.time,
    ) -> None:
        self.schedule = schedule
        self.clock_s, self.wall_s = clock_s, wall_s
        rate = schedule.rate_at(wall_s())
        self.bucket = TokenBucket(rate, burst_for(rate), clock_s())
        self.granted_bytes = 0
        """Bytes this limiter has let through."""
        self._queue: list[tuple[int, int]] = []
        self._arrivals = itertools.count()
        self._changed = asyncio.Event()

    def _follow_schedule(self, now_s: float) -> None:
        rate = self.schedule.rate_at(self.wall_s())
        if rate != self.bucket.rate_bytes_s:
            self.bucket.set_rate(rate, now_s)
            self.bucket.burst_bytes = burst_for(rate)

    @property
    def burst_bytes(self) -> int:
        """The current burst: the most a batch should hold to keep priorities responsive."""
        return self.bucket.burst_bytes

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def acquire(self, n: int, priority: str = DEFAULT_PRIORITY) -> None:
        """Wait until ``n`` bytes may be sent at this priority, and take them."""
        ticket = (rank(priority), next(self._arrivals))
        heapq.heappush(self._queue, ticket)
        self._notify()
        try:
            while True:
                changed = self._changed
                wait = 0.0
                if self._queue[0] == ticket:
                    now = self.clock_s()
                    self._follow_schedule(now)
                    wait = self.bucket.wait_s(n, now)
                    if wait <= 0:
                        self.bucket.take(n, now)
                        self.granted_bytes += n
                        return
                await _wait(changed, wait)
        finally:
            self._queue.remove(ticket)
            heapq.heapify(self._queue)
            self._notify()


async def _wait(changed: asyncio.Event, timeout_s: float) -> None:
    """Until ``changed`` is set, or ``timeout_s`` passed (0: no timeout)."""
    if not timeout_s:
        await changed.wait()
        return
    await wait_set(changed, min(timeout_s, 1.0))


@dataclass(frozen=True)
class Throttle:
    """What one shipper consults before each batch: its group's cap, then its source's."""

    limiters: tuple[Limiter, ...]
    priority: str = DEFAULT_PRIORITY

    def max_batch_bytes(self) -> int:
        """The largest batch to aim for: the smallest burst of its limiters."""
        return min(x.burst_bytes for x in self.limiters)

    async def acquire(self, n: int) -> None:
        """Wait until ``n`` payload bytes may be sent under every cap."""
        for limiter in self.limiters:
            await limiter.acquire(n, self.priority)
