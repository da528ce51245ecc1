"""Bandwidth caps: the bucket's arithmetic on an injected clock, schedules, priorities, flags."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.cli.bandwidth_flags import parse_priorities, parse_rate, parse_schedule
from cdp.errors import InvalidInputError
from cdp.source.bandwidth import UNLIMITED, Limiter, Schedule, TokenBucket, Window

MiB = 2**20


def _grants(rate: float, burst: int, requests: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """(time, bytes) each request goes at, a request asking ``gap`` seconds after the last."""
    bucket, now, out = TokenBucket(rate, burst, 0.0), 0.0, []
    for gap, n in requests:
        now += gap
        now += bucket.wait_s(n, now)
        assert bucket.wait_s(n, now) == pytest.approx(0.0, abs=1e-9)
        bucket.take(n, now)
        out.append((now, n))
    return out


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(1e3, 1e9),
    burst=st.integers(1, 4 * MiB),
    requests=st.lists(st.tuples(st.floats(0, 2.0), st.floats(0.0, 1.0)), min_size=1,
                      max_size=60),
)  # fmt: skip
def test_bytes_in_any_window_stay_under_rate_times_window_plus_burst(
    rate: float, burst: int, requests: list[tuple[float, float]]
) -> None:
    grants = _grants(rate, burst, [(gap, max(1, int(share * burst))) for gap, share in requests])
    for i, (t1, _) in enumerate(grants):
        for j in range(i, len(grants)):
            t2 = grants[j][0]
            sent = sum(n for _, n in grants[i : j + 1])
            assert sent <= rate * (t2 - t1) + burst + 1e-6 * sent


def test_a_saturated_bucket_passes_its_rate() -> None:
    grants = _grants(10 * MiB, 512 * 1024, [(0.0, 256 * 1024)] * 400)
    seconds = grants[-1][0]
    sent = sum(n for _, n in grants)
    # The first burst is free; everything after it is paid at the rate.
    assert sent - 512 * 1024 == pytest.approx(10 * MiB * seconds, rel=1e-9)


def test_a_request_larger_than_the_burst_goes_into_debt_that_the_next_waits_out() -> None:
    bucket = TokenBucket(1000.0, 100, 0.0)
    assert bucket.wait_s(500, 0.0) == 0.0  # full bucket: a large one may go
    bucket.take(500, 0.0)
    assert bucket.wait_s(100, 0.0) == pytest.approx(0.5)  # 400 of debt + 100 at 1000 B/s


def test_a_new_rate_counts_from_the_change_on() -> None:
    bucket = TokenBucket(1000.0, 1000, 0.0)
    bucket.take(1000, 0.0)
    bucket.set_rate(100.0, 0.5)  # 500 tokens earned at the old rate
    assert bucket.wait_s(1000, 0.5) == pytest.approx(5.0)  # 500 more at 100 B/s


def test_the_schedule_picks_the_window_holding_the_utc_time() -> None:
    s = Schedule(20e6, (Window(8 * 3600, 18 * 3600, 2e6), Window(22 * 3600, 2 * 3600, 5e6)))
    day = 19_000 * 86400  # a midnight UTC
    assert s.rate_at(day + 7 * 3600 + 3599) == 20e6
    assert s.rate_at(day + 8 * 3600) == 2e6
    assert s.rate_at(day + 18 * 3600) == 20e6
    assert s.rate_at(day + 23 * 3600) == 5e6
    assert s.rate_at(day + 3600) == 5e6  # wraps past midnight


class FakeClock:
    """Monotonic and wall seconds a test moves by hand."""

    def __init__(self, wall: float) -> None:
        self.now, self.wall = 0.0, wall

    def mono(self) -> float:
        """Monotonic seconds."""
        return self.now

    def unix(self) -> float:
        """Wall seconds."""
        return self.wall + self.now


def test_a_limiter_follows_the_schedule_as_the_clock_passes_a_window_edge() -> None:
    day = 19_000 * 86400
    clock = FakeClock(day + 8 * 3600 - 1)  # one second before business hours
    limiter = Limiter(parse_schedule("--s", "08:00-18:00=100k/s,default=1M/s"), clock.mono,
                      clock.unix)  # fmt: skip
    assert limiter.bucket.rate_bytes_s == MiB
    clock.now = 2.0

    async def go() -> None:
        await limiter.acquire(10)

    asyncio.run(go())
    assert limiter.bucket.rate_bytes_s == 100 * 1024


def test_waiting_requests_are_served_high_priority_first() -> None:
    async def go() -> list[str]:
        limiter = Limiter(Schedule(MiB))  # burst 64 KiB
        order: list[str] = []
        await limiter.acquire(64 * 1024)  # empty the bucket: the others must wait

        async def one(name: str, priority: str) -> None:
            await limiter.acquire(32 * 1024, priority)
            order.append(name)

        tasks = [asyncio.ensure_future(one(f"{p}{i}", p)) for i in range(2)
                 for p in ("low", "normal", "high")]  # fmt: skip
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(go()) == ["high0", "high1", "normal0", "normal1", "low0", "low1"]


@pytest.mark.parametrize(
    ("text", "want"),
    [("10MB/s", 10 * MiB), ("512k/s", 512 * 1024), ("1048576", MiB), ("unlimited", UNLIMITED)],
)
def test_rates_parse(text: str, want: float) -> None:
    assert parse_rate("--bandwidth", text) == want


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("default=fast", "not a rate"),
        ("default=0MB/s", "must be positive"),
        ("08:00-18:00", "not WINDOW=RATE"),
        ("8-18=2MB/s", "not a UTC time"),
        ("0800=2MB/s", "not a UTC window"),
        ("08:00-25:00=2MB/s", "not a UTC time"),
        ("08:00-08:00=2MB/s", "empty"),
        ("08:00-18:00=2MB/s,17:00-19:00=1MB/s", "overlaps"),
        ("22:00-06:00=2MB/s,05:00-07:00=1MB/s", "overlaps"),
        ("default=1MB/s,default=2MB/s", "default twice"),
        ("08:00-18:00=slow", "not a rate"),
    ],
)
def test_bad_schedules_name_the_flag(text: str, why: str) -> None:
    with pytest.raises(InvalidInputError, match=why) as err:
        parse_schedule("--bandwidth-schedule", text)
    assert "--bandwidth-schedule" in str(err.value)


def test_a_schedule_parses_windows_and_default() -> None:
    s = parse_schedule("--bandwidth-schedule", "08:00-18:00=2MB/s, default=20MB/s")
    assert s == Schedule(20 * MiB, (Window(8 * 3600, 18 * 3600, 2 * MiB),))
    assert parse_schedule("--x", "08:00-18:00=2MB/s", 5.0).default_bytes_s == 5.0


def test_priorities_parse_and_refuse_unknown_names() -> None:
    assert parse_priorities("--priority", "high, low") == ("high", "low")
    with pytest.raises(InvalidInputError, match="--priority.*'urgent'"):
        parse_priorities("--priority", "urgent")
