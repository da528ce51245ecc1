"""What the on-call page shows beyond ``cdp status``: RPO history, thresholds, verification.

Owns :class:`RpoHistory` (a bounded ring per group, sampled by a task of the web app, so
the page can draw the last hour at once), the per-group extras that ``/api/v1/status``
adds (RPO threshold, last verified point, failover progress), the labelled points drawn
on the timeline band, and the verification gauges of ``/metrics``. It reads the target and its audit
log; it never changes anything.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cdp.audit import target_log
from cdp.journal import index
from cdp.restore.spec import format_ns
from cdp.status import GroupStatus
from cdp.target.target import Target
from cdp.verified import GroupVerified, VerifiedCache

DEFAULT_RPO_SAMPLE_S = 10.0
"""Seconds between two samples of every group's RPO."""
RPO_HISTORY_S = 3600.0
"""How far back the RPO history reaches (the page's chart: the last hour)."""
MARKS_SHOWN = 200
"""Labelled points (bookmarks, app-consistent) drawn on a timeline band: the newest."""


MARK_KINDS = {
    index.POINT_BOOKMARK: "bookmark",
    index.POINT_APP_CONSISTENT: "app-consistent",
    index.POINT_CONSISTENCY: "consistency",
}
"""Labelled point kinds by their index value, as the page names them."""


class RpoHistory:
    """Per group, the last hour of (Unix time s, RPO s), oldest first, in memory."""

    def __init__(self, sample_s: float = DEFAULT_RPO_SAMPLE_S) -> None:
        self.sample_s = sample_s
        self._size = max(1, int(RPO_HISTORY_S / sample_s))
        self._rings: dict[str, deque[tuple[float, float]]] = {}

    def sample(self, statuses: list[GroupStatus], now_s: float) -> None:
        """Add one sample per group (the worst member's RPO)."""
        worst: dict[str, float] = {}
        for s in statuses:
            worst[s.group_id] = max(worst.get(s.group_id, 0.0), s.rpo_s)
        for group, rpo in worst.items():
            ring = self._rings.setdefault(group, deque(maxlen=self._size))
            ring.append((round(now_s, 3), round(rpo, 3)))

    def series(self, group: str) -> list[tuple[float, float]]:
        """The group's samples, oldest first ([] for a group never sampled)."""
        return list(self._rings.get(group, ()))


async def sample_forever(target: Target, history: RpoHistory) -> None:
    """The web app's sampling task: one sample of every group each ``sample_s``."""
    while True:
        history.sample(target.status(), time.time())
        await asyncio.sleep(history.sample_s)


def rpo_threshold_s(target: Target, group_id: str) -> float:
    """The RPO alert threshold of a group (seconds): its policy's ``rpo_alert``."""
    return float(target.config.policy_for(group_id).rpo_alert_s)


def verified_cache(target: Target) -> VerifiedCache:
    """The verification facts of ``target``, read from its audit log."""
    return VerifiedCache(target_log(target.config.data_dir))


def group_extras(target: Target, verified: dict[str, GroupVerified], group: str) -> dict[str, Any]:
    """What ``/api/v1/status`` adds to a group: threshold and last verified point."""
    v = verified.get(group)
    facts: dict[str, Any] = (
        v.to_json()
        if v
        else {
            "last_verified_seq": None, "last_verified_point_unix_ns": None,
            "last_verify_result": None, "last_verify_unix_ns": None, "verify_every_s": 0.0,
        }
    )  # fmt: skip
    at = facts["last_verified_point_unix_ns"]
    facts["last_verified_point"] = format_ns(at) if at else None
    facts["failovers"] = failovers(target, group)
    return {"rpo_threshold_s": rpo_threshold_s(target, group), **facts}


def failovers(target: Target, group: str) -> list[dict[str, Any]]:
    """Failover operations of plans with this group, as reported: active first (UTC times)."""
    found = target.progress.for_group(group, time.time_ns())
    return [
        {**p.to_json(), "started": format_ns(p.started_ns), "updated": format_ns(p.received_ns)}
        for p in found
    ]


def timeline_marks(target: Target, group: str) -> list[dict[str, Any]]:
    """The group's newest labelled points (bookmarks, app-consistent) and verdicts, oldest first."""
    points = target.list_points(group, 0, 2**63 - 1, None, 10_000, True)[-MARKS_SHOWN:]
    verdicts = target.verdicts(group, points)
    return [
        {"seq": p.seq, "time": format_ns(p.source_ns), "time_unix_ns": p.source_ns,
         "kind": MARK_KINDS.get(p.kind, "other"), "label": p.label, "verdict": v}
        for p, v in zip(points, verdicts, strict=True)
    ]  # fmt: skip


class VerifiedCollector(Collector):
    """Per-group verification gauges, from the target's audit log at scrape time."""

    def __init__(self, cache: VerifiedCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        """Four families, one sample per group ever verified."""
        last = GaugeMetricFamily(
            "cdp_group_last_verified_timestamp_seconds",
            "Source time (Unix s) of the group's newest restore point a verification passed",
            labels=["group"],
        )
        run = GaugeMetricFamily(
            "cdp_group_verify_last_run_timestamp_seconds",
            "Unix time the group's newest verification result was recorded",
            labels=["group"],
        )
        failed = GaugeMetricFamily(
            "cdp_group_verify_failed",
            "1 when the group's newest verification did not pass, else 0",
            labels=["group"],
        )
        every = GaugeMetricFamily(
            "cdp_group_verify_interval_seconds",
            "Cadence (s) the verification scheduler promises for the group (0: none)",
            labels=["group"],
        )
        for group, v in sorted(self._cache.get().items()):
            if v.last_passed is not None:
                last.add_metric([group], v.last_passed.point_unix_ns / 1e9)
            run.add_metric([group], v.last_run_unix_ns / 1e9)
            failed.add_metric([group], float(v.last_run.result != "passed"))
            every.add_metric([group], v.every_s)
        yield from (last, run, failed, every)
