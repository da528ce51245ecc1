"""The Grafana dashboard and the alert rules name only metrics a real target exports.

A real target (gRPC + RocksDB) takes writes from the simulator and runs one scrub, so that
every family it can export is present; its /metrics is fetched over real HTTP and parsed,
and each ``cdp_*`` name in the dashboard's expressions (deploy/grafana/cdp-dashboard.json)
and in the alert rules (deploy/prometheus/cdp-rules.yml) must be among the exported ones.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import aiohttp
import yaml
from conftest import start_target, stop_target
from prometheus_client.parser import text_string_to_metric_families

from cdp.verified import ACTION, Verification
from cdp.web import start_web
from sim import runner
from sim.workload import WorkloadSpec

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"\bcdp_[a-z0-9_]+")


def dashboard_exprs() -> list[str]:
    """Every query expression of every panel (and of the template variables)."""
    board = json.loads((DEPLOY / "grafana" / "cdp-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


def rule_exprs() -> list[str]:
    """Every alert rule's expression."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "cdp-rules.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


async def exported_names(tmp_path: str) -> set[str]:
    """Sample names on a real target's /metrics after writes, a scrub and a verification."""
    r = await start_target(os.path.join(tmp_path, "target"), history_window_s=60.0)
    web_runner, port = await start_web(r.target, "127.0.0.1", 0)
    try:
        await runner.run(
            runner.SimConfig(
                target=r.address,
                folder=os.path.join(tmp_path, "src"),
                group="dash",
                vms=("vm-d",),
                disks_per_vm=1,
                disk_bytes=4 * 2**20,
                workload=WorkloadSpec("random", 4096, iops=500, seed=2),
                seconds=0.3,
            )  # fmt: skip
        )
        await r.target.scrub_once()
        result = Verification("dash", "plan", "passed", 1, 1, 3600.0)  # as `failover verify`
        await r.client.record_audit(ACTION, result.to_object(), "ok")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            text = await resp.text()
    finally:
        await web_runner.cleanup()
        await stop_target(r)
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


async def test_dashboard_and_rules_name_only_exported_metrics(tmp_path: str) -> None:
    exported = await exported_names(str(tmp_path))
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    wanted = {n for e in exprs for n in NAME.findall(e)}
    assert wanted, "the dashboard queries cdp metrics"
    assert wanted - exported == set(), f"dashboard names unexported metrics; {sorted(exported)}"
    in_rules = {n for e in rule_exprs() for n in NAME.findall(e)}
    assert in_rules - exported == set(), "alert rules name unexported metrics"


def test_dashboard_is_utc_and_every_panel_has_a_query() -> None:
    board = json.loads((DEPLOY / "grafana" / "cdp-dashboard.json").read_text())
    assert board["timezone"] == "utc"
    assert all(p["targets"] and p["title"] for p in board["panels"])
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


RETENTION_AND_DETECTION = {
    "cdp_group_suspicions",
    "cdp_group_last_clean_point_timestamp_seconds",
    "cdp_group_intake_refused",
    "cdp_group_clock_jump_seconds",
    "cdp_group_retention_lock_seconds",
}
"""Issue 15's gauges: standing suspicions, the last clean point, what keeps history."""


def test_dashboard_shows_suspicions_and_what_keeps_history() -> None:
    wanted = {n for e in dashboard_exprs() for n in NAME.findall(e)}
    assert RETENTION_AND_DETECTION - wanted == set()
