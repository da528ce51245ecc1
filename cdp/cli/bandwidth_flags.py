"""The bandwidth flags of a source: caps, a daily schedule, priorities; parsed at the edge.

Grammar (sizes as every size flag: binary units, so ``10MB/s`` is 10 MiB per second):

- a rate: ``SIZE/s`` (``10MB/s``, ``512k/s``; ``/s`` may be left out) or ``unlimited``;
- a schedule: comma-separated ``HH:MM-HH:MM=RATE`` windows in UTC (``22:00-06:00`` wraps
  past midnight; windows may not overlap) and at most one ``default=RATE``, used outside
  the windows (without it: ``--bandwidth``, or no cap);
- priorities: ``high``, ``normal`` or ``low``, or one per group, comma-separated, for
  ``cdp sim run --groups N``.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from cdp.cli import common
from cdp.errors import InvalidInputError
from cdp.source.bandwidth import DEFAULT_PRIORITY, PRIORITIES, UNLIMITED, Schedule, Window

_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class BandwidthSettings:
    """A source's caps as the flags give them (schedules in bytes per second)."""

    source: Schedule = Schedule()
    """Shared by every group of the source process."""
    group: Schedule = Schedule()
    """Each group's own cap."""
    priorities: tuple[str, ...] = (DEFAULT_PRIORITY,)
    """One per group (the last one repeats)."""

    def priority_of(self, i: int) -> str:
        """Group ``i``'s priority."""
        return self.priorities[min(i, len(self.priorities) - 1)]


def add_bandwidth_args(p: argparse.ArgumentParser) -> None:
    """--bandwidth, --group-bandwidth, --bandwidth-schedule and --priority."""
    p.add_argument("--bandwidth", default="", metavar="RATE",
                   help="cap of this source, shared by its groups, e.g. 10MB/s "
                   "(binary units; default: no cap)")  # fmt: skip
    p.add_argument("--group-bandwidth", default="", metavar="RATE",
                   help="cap of each group of this source, e.g. 4MB/s")  # fmt: skip
    p.add_argument("--bandwidth-schedule", default="", metavar="SPEC",
                   help="the source's cap by UTC time of day, e.g. "
                   "'08:00-18:00=2MB/s,default=20MB/s' (default: --bandwidth)")  # fmt: skip
    p.add_argument("--priority", default=DEFAULT_PRIORITY, metavar="P[,P...]",
                   help="high, normal or low (strict: a lower priority sends only what "
                   "a higher one leaves of the source's cap); one per group with --groups",
                   )  # fmt: skip


def bandwidth_settings(args: argparse.Namespace) -> BandwidthSettings:
    """The flags as a :class:`BandwidthSettings`; bad input names its flag."""
    default = parse_rate("--bandwidth", args.bandwidth) if args.bandwidth else UNLIMITED
    source = Schedule(default)
    if args.bandwidth_schedule:
        source = parse_schedule("--bandwidth-schedule", args.bandwidth_schedule, default)
    group = UNLIMITED
    if args.group_bandwidth:
        group = parse_rate("--group-bandwidth", args.group_bandwidth)
    return BandwidthSettings(source, Schedule(group), parse_priorities("--priority", args.priority))


def parse_rate(flag: str, text: str) -> float:
    """Bytes per second in ``10MB/s``, ``512k/s``, ``1048576`` or ``unlimited``."""
    body = text.strip()
    if body.lower() == "unlimited":
        return UNLIMITED
    if body.lower().endswith("/s"):
        body = body[:-2]
    try:
        rate = common.parse_size(flag, body)
    except InvalidInputError:
        raise InvalidInputError(
            flag, f"{text!r} is not a rate like 10MB/s, 512k/s or unlimited"
        ) from None
    if rate <= 0:
        raise InvalidInputError(flag, f"{text!r}: a rate must be positive (or unlimited)")
    return float(rate)


def parse_schedule(flag: str, text: str, default: float = UNLIMITED) -> Schedule:
    """A :class:`Schedule` from ``08:00-18:00=2MB/s,default=20MB/s``."""
    windows: list[Window] = []
    seen_default = False
    for item in (x.strip() for x in text.split(",")):
        when, sep, rate_text = item.partition("=")
        if not sep or not when.strip():
            raise InvalidInputError(flag, f"{item!r} is not WINDOW=RATE or default=RATE")
        rate = parse_rate(flag, rate_text)
        if when.strip().lower() == "default":
            if seen_default:
                raise InvalidInputError(flag, "names default twice")
            default, seen_default = rate, True
            continue
        window = _window(flag, when.strip(), rate)
        for other in windows:
            if _overlap(window, other):
                raise InvalidInputError(flag, f"window {when.strip()!r} overlaps another")
        windows.append(window)
    return Schedule(default, tuple(windows))


def _window(flag: str, text: str, rate: float) -> Window:
    start, sep, end = text.partition("-")
    if not sep:
        raise InvalidInputError(flag, f"{text!r} is not a UTC window like 08:00-18:00")
    a, b = _clock(flag, start.strip()), _clock(flag, end.strip())
    if a == b:
        raise InvalidInputError(flag, f"window {text!r} is empty")
    return Window(a, b, rate)


def _clock(flag: str, text: str) -> int:
    m = _CLOCK.fullmatch(text)
    if not m:
        raise InvalidInputError(flag, f"{text!r} is not a UTC time HH:MM (00:00..23:59)")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60


def _overlap(a: Window, b: Window) -> bool:
    """Whether two daily windows share a minute."""
    return any(a.holds(m * 60) and b.holds(m * 60) for m in range(24 * 60))


def parse_priorities(flag: str, text: str) -> tuple[str, ...]:
    """``high`` or ``high,low,...``: each one of high, normal, low."""
    out = tuple(x.strip().lower() for x in text.split(","))
    for p in out:
        if p not in PRIORITIES:
            raise InvalidInputError(flag, f"{p!r} is not one of {', '.join(PRIORITIES)}")
    return out
