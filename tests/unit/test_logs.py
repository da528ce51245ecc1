"""The log rate limit: a flood of one message is cut to a burst per window, then said."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from cdp.logs import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str, level: int = logging.ERROR, name: str = "asyncio") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_a_flood_is_cut_to_a_burst_and_the_count_is_said_later() -> None:
    clock = Clock()
    limit = RateLimit(burst=3, window_s=10, clock=clock)
    passed = [limit.filter(record("socket.accept() out of system resource")) for _ in range(1000)]
    assert sum(passed) == 3
    clock.now = 10.0
    later = record("socket.accept() out of system resource")
    assert limit.filter(later)
    assert "997 like it suppressed" in str(later.msg)


def test_other_messages_pass_while_one_floods() -> None:
    limit = RateLimit(burst=2, window_s=10, clock=Clock())
    for _ in range(100):
        limit.filter(record("flood"))
    assert limit.filter(record("group g1: fsync failed"))
    assert limit.filter(record("flood", level=logging.WARNING))


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 5)), max_size=200))
def test_never_more_than_a_burst_per_kind_per_window(events: list[tuple[str, float]]) -> None:
    clock = Clock()
    limit = RateLimit(burst=4, window_s=10, clock=clock)
    per_window: dict[tuple[str, int], int] = {}
    for msg, step in events:
        clock.now += step
        if limit.filter(record(msg)):
            key = (msg, int(clock.now // 10))
            per_window[key] = per_window.get(key, 0) + 1
    # Windows start at the first message of a kind, so one may span two aligned windows.
    assert all(n <= 8 for n in per_window.values())
