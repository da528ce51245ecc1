"""The ingest benchmark's scenarios and goals: which workloads, and when a case meets its aim.

Owns :data:`SCENARIOS` (4 KiB random, 64 KiB random, 1 MiB sequential), their goals from
the issue, the two modes, the ``cdp sim run`` rate flags of each, and :func:`judge`. Pure:
it runs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RPO_P99_GOAL_S = 0.5
RATE_TOLERANCE = 0.97
"""At the goal rate, the source must write this share of goal x seconds for the goal to count."""
MODES = ("max", "at-target-rate")


@dataclass(frozen=True)
class Goal:
    """The issue's aim for one scenario."""

    metric: str
    """``writes_per_s`` or ``mb_per_s`` (10^6 bytes/s)."""
    value: float

    def text(self, mode: str) -> str:
        """The goal in words, as the report's goal column shows it."""
        unit = "writes/s" if self.metric == "writes_per_s" else "MB/s"
        base = f">= {self.value:,.0f} {unit}"
        return base if mode == "max" else f"{base}, RPO p99 < {RPO_P99_GOAL_S} s"


@dataclass(frozen=True)
class Scenario:
    """One workload shape."""

    name: str
    pattern: str
    block_size: str
    goal: Goal

    def rate_flags(self, mode: str) -> list[str]:
        """The ``cdp sim run`` flags that set the write rate of ``mode``."""
        if mode == "max":
            return ["--rate-mb", "0"]
        if self.goal.metric == "writes_per_s":
            return ["--iops", num(self.goal.value)]
        return ["--rate-mb", num(self.goal.value)]


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("4k-random", "random", "4k", Goal("writes_per_s", 20_000)),
        Scenario("64k-random", "random", "64k", Goal("mb_per_s", 300)),
        Scenario("1m-sequential", "sequential", "1m", Goal("mb_per_s", 500)),
    )
}
ALIASES = {"4k": "4k-random", "64k": "64k-random", "1m": "1m-sequential"}


def resolve(names: list[str] | None) -> list[Scenario]:
    """Scenarios by name or alias, in the given order (all when ``names`` is empty)."""
    if not names:
        return list(SCENARIOS.values())
    out = []
    for name in names:
        key = ALIASES.get(name.lower(), name.lower())
        if key not in SCENARIOS:
            raise SystemExit(
                f"bench: unknown scenario {name!r}; choose from {', '.join(SCENARIOS)} "
                f"(or {', '.join(ALIASES)})"
            )
        out.append(SCENARIOS[key])
    return out


def judge(scenario: Scenario, mode: str, r: dict[str, Any]) -> str:
    """Why the case misses its goal; "" when it meets it.

    ``max``: the rate the target journaled (records or MB per second, measured at the
    target) reaches the goal. The guest writes as fast as it can and, since the source
    falls back to its dirty map when its buffer is full (the guest never waits), the
    guest's own rate says nothing about replication there.
    ``at-target-rate``: the source wrote the goal's volume, every write was journaled (no
    dirty-map fallback) and RPO p99 < 0.5 s.
    """
    goal = scenario.goal
    unit = "writes/s" if goal.metric == "writes_per_s" else "MB/s"
    why = []
    if r.get("target_applies", True) and r["applied_seq"] < r["acked_seq"]:
        why.append("not every acked write was applied")
    if mode == "max":
        got = float(r[f"journaled_{goal.metric}"])
        if got < goal.value:
            why.append(f"journaled {got:,.1f} {unit} < {goal.value:,.0f}")
        return "; ".join(why)
    # The volume written in the requested seconds: the source's own seconds also count its
    # workload set-up (~0.2 s), which would understate the rate of a short run.
    done = r["writes"] if goal.metric == "writes_per_s" else r["bytes"] / 1e6
    want = goal.value * r["seconds_requested"]
    if done < RATE_TOLERANCE * want:
        why.append(f"source wrote only {done:,.0f} of {want:,.0f} {unit.split('/')[0]}")
    if r.get("resyncs", 0) or r["acked_seq"] < r["writes"]:
        why.append(f"source fell back to its dirty map ({r.get('resyncs', 0)} resyncs)")
    if r["rpo_p99_s"] >= RPO_P99_GOAL_S:
        why.append(f"RPO p99 {r['rpo_p99_s']} s >= {RPO_P99_GOAL_S} s")
    return "; ".join(why)


def num(x: float) -> str:
    """A number as a short command-line argument (no trailing .0)."""
    return f"{x:g}" if float(x) != int(x) else str(int(x))
