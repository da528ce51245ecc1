"""Measured RPO, as DESIGN.md defines it, and its summary statistics.

At time t, RPO is t minus the source timestamp of the newest write W such that W and
every earlier write are durable at the target; 0 when nothing is waiting for an ack.
Pure: the caller passes the clock readings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SAMPLE_INTERVAL_S = 0.1
"""How often RPO is sampled by the tools that report it."""


def rpo_seconds(now_ns: int, unacked: int, acked_ns: int, oldest_unacked_ns: int) -> float:
    """RPO at ``now_ns``: 0 when nothing is unacked, else now - newest durable write."""
    if unacked == 0:
        return 0.0
    since = acked_ns if acked_ns else oldest_unacked_ns
    return max(0.0, (now_ns - since) / 1e9)


def percentile(sorted_values: list[float], p: float) -> float:
    """The p-th percentile (0-100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class RpoSeries:
    """RPO samples over a run."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since start, RPO seconds)."""

    def add(self, t_s: float, rpo_s: float) -> None:
        """Add one sample."""
        self.samples.append((t_s, rpo_s))

    def summary(self, sla_s: float = 1.0) -> dict[str, float]:
        """p50/p95/p99/max RPO, and the seconds spent above ``sla_s``."""
        values = sorted(r for _, r in self.samples)
        above = sum(1 for _, r in self.samples if r > sla_s) * SAMPLE_INTERVAL_S
        return {
            "rpo_p50_s": percentile(values, 50),
            "rpo_p95_s": percentile(values, 95),
            "rpo_p99_s": percentile(values, 99),
            "rpo_max_s": values[-1] if values else 0.0,
            "rpo_above_sla_s": above,
        }
