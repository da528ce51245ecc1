"""The RPO suite's Markdown report: the runs, published claims, the sizing model, the sweep.

Owns how the suite's results (``results.json``) read as ``report.md``; pure formatting of
figures that bench/suite.py measured.
"""

from __future__ import annotations

from typing import Any

from bench import rto

ANCHORS = (
    ("Zerto (VPG journal)", "checkpoints every ~5 s; RPO 'seconds'",
     "4k-random-20k-iops", "restore point at every batch, checkpoint every 1 s"),
    ("Veeam CDP", "RPO as low as 2 s; 15 s default policy", "vms-16", ""),
    ("vSphere Replication", "RPO 5 min minimum; up to 24 point-in-time instances", "outage", ""),
)  # fmt: skip
"""(product, published claim, our scenario measured beside it, note)."""


def _f(x: Any, nd: int = 3) -> str:
    if x is None or x == "":
        return "-"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _resync(r: dict[str, Any]) -> str:
    if not r["resyncs"]:
        return "-"
    mb = r["resync_bytes_sent"] / 1e6
    return f"{r['resyncs']} / {mb:,.1f} MB / {r['resync_last_s']:.2f} s"


RUN_HEADERS = ("scenario", "link", "VMs / hosts", "MB/s", "writes/s", "RPO p50/p99/max s",
               "drain s", "src CPU s/GB", "tgt CPU s/GB", "stored/guest", "tgt writes/guest",
               "resyncs / bytes / time", "goal", "met?")  # fmt: skip


def runs_table(runs: list[dict[str, Any]]) -> str:
    """One row per run: throughput, RPO, CPU, compression, goal."""
    rows = []
    for r in runs:
        if "error" in r:
            rows.append(
                [r["scenario"], "ERROR: " + r["error"][:80]] + ["-"] * (len(RUN_HEADERS) - 2)
            )
            continue
        rows.append([
            r["scenario"], r["link"], f"{r['vms']} / {r['hosts']}", _f(r["mb_per_s"], 1),
            _f(r["writes_per_s"], 0),
            f"{_f(r['rpo_p50_s'])} / {_f(r['rpo_p99_s'])} / {_f(r['rpo_max_s'])}",
            _f(r["drain_s"]), _f(r["source_cpu_s_per_gb"], 2), _f(r["target_cpu_s_per_gb"], 2),
            _f(r["compression_ratio"], 2), _f(r["target_write_bytes_per_guest_byte"], 2),
            _resync(r),
            r["goal"], "yes" if r["goal_met"] else f"NO ({r['goal_miss']})",
        ])  # fmt: skip
    return table(list(RUN_HEADERS), rows)


def anchors_table(runs: list[dict[str, Any]], rto_doc: dict[str, Any] | None = None) -> str:
    """Published claims of other products beside our measured figures."""
    by = {r["scenario"]: r for r in runs if "error" not in r}
    rows = []
    for product, claim, scenario, note in ANCHORS:
        r = by.get(scenario)
        got = "-" if r is None else (
            f"cdp `{scenario}`: RPO p50 {_f(r['rpo_p50_s'])} s, p99 {_f(r['rpo_p99_s'])} s, "
            f"max {_f(r['rpo_max_s'])} s at {_f(r['mb_per_s'], 1)} MB/s"
        )  # fmt: skip
        rows.append([product, f"published claim: {claim}", f"measured: {got}", note or "-"])
    if rto_doc and "results" in rto_doc:
        got = ", ".join(f"{r['vms']} VMs {r['rto_s']:.2f} s" for r in rto_doc["results"])
        rows.append(["Zerto, Veeam, vSphere Replication", "published claim: no measured RTO",
                     f"measured: cdp `failover run` RTO {got}",
                     "against vcsim: vCenter API time only, no real guest boot"])  # fmt: skip
    return table(["product", "published claim (vendor docs, not measured here)",
                  "measured (cdp, this run, this machine)", "note"], rows)  # fmt: skip


def predictions_table(runs: list[dict[str, Any]]) -> str:
    """The sizing model beside the measured run, where the model applies."""
    rows = []
    for r in runs:
        p = r.get("predicted") or {}
        if not p:
            continue
        rows.append([
            r["scenario"], _f(p.get("wire_mb_s"), 2), _f(p.get("batch_serialization_s"), 4),
            _f(p.get("rpo_at_end_of_writes_s")), _f(p.get("rpo_p99_s")),
            _f(r["rpo_p99_s"]), _f(p.get("rpo_max_s")), _f(r["rpo_max_s"]),
            _f(p.get("drain_s")), _f(r["drain_s"]),
            _f(p.get("journal_bytes")), _f(r["journal_bytes"]),
            _f(p.get("bandwidth_for_rpo_1s_mbit_s"), 1),
        ])  # fmt: skip
    return table(
        [
            "scenario",
            "predicted wire MB/s",
            "predicted 1 MiB-batch serialization s",
            "predicted RPO at end of writes s",
            "predicted RPO p99 s",
            "measured RPO p99 s",
            "predicted RPO max s",
            "measured RPO max s",
            "predicted drain s",
            "measured drain s",
            "predicted journal B",
            "measured journal B",
            "predicted bandwidth for RPO 1 s (Mbit/s)",
        ],
        rows,
    )


def render(results: dict[str, Any]) -> str:
    """The Markdown report."""
    env, runs, sweep = results["env"], results["runs"], results["sweep"]
    rto_doc = results.get("rto")
    parts = [
        "# cdp RPO benchmark suite", "",
        f"{'Quick' if env['quick'] else 'Full'} run, {env['date']}, commit {env['commit']}, "
        f"{env['nproc']} CPUs, Python {env['python']}, seed {env['seed']}. Source(s) and "
        f"target are separate processes on loopback; plain text (`--insecure`); target "
        f"history window {env['history_window']} (journal-only ingest: acks are fsync'd, "
        "apply is deferred), except `apply-*` runs (window 0: the target applies as it "
        "goes); RPO sampled every 100 ms at the source. \"stored/guest\": journal bytes per "
        "guest byte (compression); \"tgt writes/guest\": bytes the target process wrote "
        "(journal, index and, when applying, replicas) per guest byte.", "",
        "## Runs", "", runs_table(runs), "",
        "## Published claims versus measured", "", anchors_table(runs, rto_doc), "",
        "## Sizing model versus measured", "", predictions_table(runs), "",
    ]  # fmt: skip
    if sweep:
        parts += ["## Rate sweep (4 KiB random)", "",
                  f"Highest rate with RPO p99 < {sweep['p99_goal_s']:g} s and the rate held: "
                  f"**{sweep['highest_writes_per_s']:,} writes/s**; {sweep['stopped']} (a rate "
                  "not held means the simulated source, one process, could not write "
                  "faster).", "",
                  runs_table(sweep["steps"]), ""]  # fmt: skip
    if rto_doc:
        parts += ["## Failover RTO (vcsim)", "", rto_section(rto_doc), ""]
    return "\n".join(parts)


def rto_section(doc: dict[str, Any]) -> str:
    """The RTO table from ``bench rto``, or why it was not measured."""
    if "error" in doc:
        return doc["error"]
    return (
        "From `failover run` to the last VM powered on, against the vSphere API simulator "
        "with a real target (see `python -m bench rto` and docs/FAILOVER.md); time spent in "
        "each step kind in seconds.\n\n" + rto.render(doc)
    )
