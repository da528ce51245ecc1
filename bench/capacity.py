"""Sizing from a trace: journal bytes for a history window, bandwidth for a target RPO.

Model (pure, no I/O but reading the trace):

- **compression**: the lz4 frame ratio of the simulator's payloads at the given
  compressibility (what the source ships and the target stores), measured on 4 MiB of them,
  plus :data:`RECORD_OVERHEAD_BYTES` per record (header + index).
- **journal for a history window H**: the most bytes the trace writes in any H seconds
  (sliding window), times the ratio. A trace shorter than H is extrapolated at its mean
  rate (``extrapolated`` says so): a one-hour window from a ten-second trace is a guess.
- **bandwidth for an RPO**: the link is a fluid queue of compressed bytes; each write
  leaves when the link has sent everything before it. RPO at time t is t minus the time of
  the newest write that has left with all earlier ones (DESIGN.md). The answer is the
  smallest bandwidth (bisection) whose worst sampled RPO stays under the target, plus a
  fixed ``latency_s`` (batching, fsync, one round trip).
"""

from __future__ import annotations

import argparse
import bisect
import json
from dataclasses import asdict, dataclass
from typing import Any

import lz4.frame

from bench import trace as tracemod
from cdp.errors import InvalidInputError
from cdp.source.rpo import SAMPLE_INTERVAL_S, percentile
from sim.trace_workload import TraceData, TraceWrite

RECORD_OVERHEAD_BYTES = 64
"""Journal header and index entry per record (an estimate; the payload dominates)."""
DEFAULT_LATENCY_S = 0.05
"""Fixed part of RPO on an idle link: batching, group commit fsync, one round trip."""


def compression_ratio(compressibility: float, seed: int = 1) -> float:
    """Stored bytes per guest byte for payloads of this compressibility (lz4 frame)."""
    data = TraceData(seed, compressibility)
    raw = stored = 0
    for _ in range(64):
        chunk = data.data(65536)
        raw += len(chunk)
        stored += len(lz4.frame.compress(chunk))
    return stored / raw


def _stored(w: TraceWrite, ratio: float) -> float:
    return w.length * ratio + RECORD_OVERHEAD_BYTES


def journal_bytes(writes: list[TraceWrite], history_s: float, ratio: float) -> tuple[float, bool]:
    """(bytes the journal needs for ``history_s`` of history, extrapolated?)."""
    if not writes:
        return 0.0, False
    duration = max(writes[-1].t_s - writes[0].t_s, 1e-9)
    if duration < history_s:
        total = sum(_stored(w, ratio) for w in writes)
        return total / max(duration, SAMPLE_INTERVAL_S) * history_s, True
    best = run = 0.0
    lo = 0
    for w in writes:
        run += _stored(w, ratio)
        while writes[lo].t_s <= w.t_s - history_s:
            run -= _stored(writes[lo], ratio)
            lo += 1
        best = max(best, run)
    return best, False


def rpo_series(
    writes: list[TraceWrite], bandwidth_bytes_s: float, ratio: float, latency_s: float = 0.0
) -> list[tuple[float, float]]:
    """Predicted (t, RPO) every 100 ms through a link of ``bandwidth_bytes_s``."""
    if not writes:
        return []
    times = [w.t_s for w in writes]
    done = []  # time each write has left the link, with every earlier one
    busy = 0.0
    for w in writes:
        busy = max(busy, w.t_s) + _stored(w, ratio) / bandwidth_bytes_s
        done.append(busy + latency_s)
    out = []
    t = SAMPLE_INTERVAL_S
    end = done[-1] + SAMPLE_INTERVAL_S
    while t <= end:
        shipped = bisect.bisect_right(done, t)  # done is non-decreasing
        issued = bisect.bisect_right(times, t)
        rpo = 0.0 if shipped >= issued else t - times[max(shipped - 1, 0)]
        out.append((round(t, 3), max(0.0, rpo)))
        t += SAMPLE_INTERVAL_S
    return out


def rpo_summary(series: list[tuple[float, float]]) -> dict[str, float]:
    """p50/p99/max of a predicted series."""
    values = sorted(r for _, r in series)
    return {
        "rpo_p50_s": percentile(values, 50),
        "rpo_p99_s": percentile(values, 99),
        "rpo_max_s": values[-1] if values else 0.0,
    }


def bandwidth_for_rpo(
    writes: list[TraceWrite], rpo_s: float, ratio: float, latency_s: float = DEFAULT_LATENCY_S
) -> float:
    """Smallest bytes/s (within 1 %) whose predicted RPO max stays under ``rpo_s``."""
    if not writes or rpo_s <= latency_s:
        return float("inf") if writes else 0.0
    total = sum(_stored(w, ratio) for w in writes)
    # Below this even a perfectly smooth trace could not be shipped within rpo_s of its end.
    lo = total / (writes[-1].t_s + rpo_s) * 0.99
    hi = lo * 2
    while rpo_summary(rpo_series(writes, hi, ratio, latency_s))["rpo_max_s"] > rpo_s:
        lo, hi = hi, hi * 4
    while hi - lo > hi * 0.01:
        mid = (lo + hi) / 2
        ok = rpo_summary(rpo_series(writes, mid, ratio, latency_s))["rpo_max_s"] <= rpo_s
        lo, hi = (lo, mid) if ok else (mid, hi)
    return hi


def scale(writes: list[TraceWrite], speedup: float) -> list[TraceWrite]:
    """The trace as replayed ``speedup`` times faster."""
    return [TraceWrite(w.t_s / speedup, w.disk, w.offset, w.length) for w in writes]


@dataclass(frozen=True)
class Plan:
    """The sizing of one trace."""

    trace: str
    writes: int
    bytes: int
    duration_s: float
    mean_mb_s: float
    peak_1s_mb_s: float
    compression_ratio: float
    history_s: float
    journal_bytes: float
    journal_extrapolated: bool
    rpo_target_s: float
    bandwidth_bytes_s: float
    bandwidth_mbit_s: float


def plan(
    tr: tracemod.Trace, history_s: float, rpo_s: float, compressibility: float = 0.5,
    speedup: float = 1.0, latency_s: float = DEFAULT_LATENCY_S,
) -> Plan:  # fmt: skip
    """Size journal and link for ``tr`` replayed at ``speedup``."""
    writes = scale(tr.writes, speedup)
    ratio = compression_ratio(compressibility)
    journal, extrapolated = journal_bytes(writes, history_s, ratio)
    bw = bandwidth_for_rpo(writes, rpo_s, ratio, latency_s)
    duration = writes[-1].t_s if writes else 0.0
    total = sum(w.length for w in writes)
    peak = max(journal_bytes(writes, 1.0, 1.0)[0] if duration >= 1 else total / 1.0, 0.0)
    return Plan(
        tr.source, len(writes), total, round(duration, 3),
        round(total / max(duration, 1e-9) / 1e6, 2), round(peak / 1e6, 2), round(ratio, 3),
        history_s, round(journal), extrapolated, rpo_s, round(bw), round(bw * 8 / 1e6, 2),
    )  # fmt: skip


def parse_duration(flag: str, text: str) -> float:
    """Seconds of ``30s``, ``15m``, ``1h``, ``2d`` or a bare number of seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        if t and t[-1] in units:
            return float(t[:-1]) * units[t[-1]]
        return float(t)
    except ValueError:
        raise InvalidInputError(flag, f"{text!r} is not a duration (30s, 15m, 1h)") from None


def add_parser(sub: Any) -> None:
    """Register ``plan-capacity``."""
    p = sub.add_parser("plan-capacity", help="journal size and bandwidth needed, from a trace")
    p.add_argument("trace", help="MSR Cambridge/SNIA CSV or fio iolog file")
    p.add_argument("--format", default="auto", choices=("auto", "msr", "fio"))
    p.add_argument("--history", default="1h", help="history window to keep (e.g. 1h)")
    p.add_argument("--rpo", default="1s", help="target RPO (e.g. 1s)")
    p.add_argument("--compressibility", type=float, default=0.5, help="0 (random) to 1 (zeros)")
    p.add_argument("--speedup", type=float, default=1.0, help="size for the trace N x faster")
    p.add_argument("--fio-iops", type=float, default=tracemod.DEFAULT_FIO_IOPS,
                   help="spacing of fio iolog v2 writes (v2 has no timestamps)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Print the plan of one trace."""
    from cdp.errors import CdpError

    try:
        tr = tracemod.load(args.trace, args.format, args.fio_iops)
        result = plan(
            tr, parse_duration("--history", args.history), parse_duration("--rpo", args.rpo),
            args.compressibility, args.speedup,
        )  # fmt: skip
    except (CdpError, OSError) as exc:
        print(f"plan-capacity: {exc}")
        return 2
    print(json.dumps(asdict(result)) if args.json else render(result))
    return 0


def render(p: Plan) -> str:
    """The plan, for people."""
    guess = " (extrapolated at the mean rate: the trace is shorter)"
    guess = guess if p.journal_extrapolated else ""
    return (
        f"trace {p.trace}: {p.writes:,} writes, {p.bytes / 1e6:,.1f} MB in {p.duration_s} s "
        f"(mean {p.mean_mb_s} MB/s, peak 1 s {p.peak_1s_mb_s} MB/s)\n"
        f"compression (lz4, stored/guest): {p.compression_ratio}\n"
        f"journal for {p.history_s:g} s of history: {p.journal_bytes / 1e9:,.3f} GB{guess}\n"
        f"bandwidth for RPO <= {p.rpo_target_s:g} s: {p.bandwidth_mbit_s:,.1f} Mbit/s "
        f"({p.bandwidth_bytes_s / 1e6:,.2f} MB/s)"
    )
