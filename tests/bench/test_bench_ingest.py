"""The ingest benchmark's code path, end to end on one tiny case (real processes)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import ingest, ingest_scenarios, monitor, report

TINY = ingest_scenarios.Scenario(
    "tiny-4k", "random", "4k", ingest_scenarios.Goal("writes_per_s", 500)
)


async def test_one_tiny_case_has_every_figure(tmp_path: Path) -> None:
    settings = ingest.Settings(
        seconds=2, disk_size="64MiB", work_dir=str(tmp_path), sync_first=False
    )
    r = await ingest.run_case(TINY, "at-target-rate", settings)

    missing = [k for k in ingest.FIELDS if k not in r]
    assert not missing, missing
    assert r["sim_rate_flags"] == "--iops 500"
    assert r["writes"] > 0
    assert r["acked_seq"] == r["writes"]
    assert r["bytes"] == r["writes"] * 4096
    assert r["applied_seq"] >= r["acked_seq"] == r["durable_seq"]
    for key in ("rpo_p50_s", "rpo_p95_s", "rpo_p99_s", "rpo_max_s"):
        assert r[key] >= 0, key
    assert r["rpo_p50_s"] <= r["rpo_p99_s"] <= r["rpo_max_s"]
    assert r["apply_lag_s"] is not None and r["apply_lag_s"] >= 0
    assert r["resyncs"] == 0 and r["target_received_bytes"] == r["bytes"]
    assert r["journaled_writes_per_s"] > 0 and r["journaled_mb_per_s"] > 0
    assert r["target_cpu_s"] > 0 and r["target_cpu_s_per_gb"] > 0
    assert r["source_process_cpu_s"] >= r["source_cpu_s"] > 0
    assert isinstance(r["goal_met"], bool) and isinstance(r["goal_miss"], str)
    assert r["series"], "the monitor took no samples"
    assert list(tmp_path.iterdir()) == [], "the case's data dir was not removed"

    doc = {
        "environment": report.environment(ingest.REPO),
        "settings": {"seconds": 2},
        "results": [r],
    }
    table = report.render(doc)
    report.write(tmp_path / "out", doc, table)
    again = json.loads((tmp_path / "out" / "results.json").read_text())
    assert again["results"][0]["writes"] == r["writes"]
    assert again["environment"]["nproc"] >= 1 and again["environment"]["python"]
    assert "| tiny-4k " in table and "at-target-rate" in table


def test_goal_judgement() -> None:
    base = {"writes": 100_000, "acked_seq": 100_000, "applied_seq": 100_000, "resyncs": 0,
            "bytes": 100_000 * 4096, "seconds_requested": 5.0}  # fmt: skip
    sc = ingest_scenarios.SCENARIOS["4k-random"]
    assert ingest_scenarios.judge(sc, "max", {**base, "journaled_writes_per_s": 20_001.0}) == ""
    slow = ingest_scenarios.judge(sc, "max", {**base, "journaled_writes_per_s": 19_000.0})
    assert "19,000.0 writes/s < 20,000" in slow
    at_rate = {**base, "writes_per_s": 19_300.0, "rpo_p99_s": 0.2}
    assert ingest_scenarios.judge(sc, "at-target-rate", at_rate) == ""
    assert "RPO p99" in ingest_scenarios.judge(sc, "at-target-rate", {**at_rate, "rpo_p99_s": 0.5})
    short = {**at_rate, "writes": 90_000, "acked_seq": 90_000, "applied_seq": 90_000}
    assert "wrote only" in ingest_scenarios.judge(sc, "at-target-rate", short)
    assert "dirty map" in ingest_scenarios.judge(sc, "at-target-rate", {**at_rate, "resyncs": 1})
    behind = {**base, "journaled_writes_per_s": 3e4, "applied_seq": 1}
    assert "applied" in ingest_scenarios.judge(sc, "max", behind)


def test_journaled_rates_from_status_samples() -> None:
    samples = [monitor.Sample(0.0, 0, 0, 0.0, 0), monitor.Sample(1.0, 100, 0, 0.1, 409_600),
               monitor.Sample(3.0, 300, 0, 0.3, 1_228_800)]  # fmt: skip
    assert monitor.journaled_rates(samples, 300) == (100.0, 0.41, 2.0)
    assert monitor.journaled_rates(samples, 301) == (0.0, 0.0, 0.0)


def test_scenarios_resolve_by_name_and_alias() -> None:
    assert [s.name for s in ingest_scenarios.resolve(["4k", "1m-sequential"])] == [
        "4k-random",
        "1m-sequential",
    ]
    assert len(ingest_scenarios.resolve(None)) == 3
    assert ingest_scenarios.SCENARIOS["64k-random"].rate_flags("at-target-rate") == [
        "--rate-mb",
        "300",
    ]
    assert ingest_scenarios.SCENARIOS["1m-sequential"].rate_flags("max") == ["--rate-mb", "0"]


def test_the_command_line_runs_a_case_and_returns_its_exit_code(tmp_path: Path) -> None:
    from bench.__main__ import main

    out = tmp_path / "out"
    argv = ["ingest", "--scenario", "4k", "--mode", "at-target-rate", "--seconds", "1",
            "--disk-size", "64MiB", "--source-dir", "case", "--work-dir", str(tmp_path),
            "--out", str(out), "--check"]  # fmt: skip
    code = main(argv)

    doc = json.loads((out / "results.json").read_text())
    (r,) = doc["results"]
    assert "error" not in r, r.get("error")
    assert code == (0 if r["goal_met"] else 1)
    assert (out / "table.md").read_text().count("4k-random") >= 1
