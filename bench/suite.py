"""The RPO benchmark suite: named, seeded scenarios, link models, trace replay, plots.

Every run starts its own ``cdp target serve`` (history window 1 h: journal-only ingest,
so the journal's size and the compression ratio can be read from the target) and one
``cdp sim run`` process per simulated host, each running one or more VMs as their own
consistency groups (``--groups``), optionally through :class:`bench.linkproxy.LinkProxy`
(bandwidth cap, latency, outage). Each group logs its 100 ms RPO samples (``--rpo-log``);
the suite pools them, and writes per run ``<name>.json`` and ``<name>.png`` and, for the
suite, ``report.md`` and ``results.json``. Plain text on loopback (``--insecure``), as
in DESIGN.md's speed facts.

This module owns running and measuring: one scenario's processes and figures, the suite,
the sweep, the RTO runs and the command line. The scenarios are in bench/suite_scenarios.py,
the Markdown report in bench/suite_report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import capacity, plot, rto, trace
from bench.linkproxy import LinkProxy
from bench.processes import REPO, CaseError, env, start_target, stop_process, tail
from bench.procfs import proc_cpu_s, proc_io
from bench.suite_report import render
from bench.suite_scenarios import (
    HISTORY_WINDOW,
    LOOPBACK,
    SWEEP_P99_S,
    Scenario,
    hosts,
    scenarios,
    sweep_scenarios,
)
from cdp.source.rpo import percentile
from cdp.source.shipper import DEFAULT_BATCH_BYTES
from sim.runner import group_rpo_log

QUICK_SECONDS = 4.0
FULL_SECONDS = 20.0
SIM_TIMEOUT_S = 240.0
APPLY_WAIT_S = 120.0
RATE_TOLERANCE = 0.97
"""A run "held" its rate when the guest wrote this share of rate x seconds."""

FIELDS = (
    "scenario", "what", "link", "rtt_ms", "bandwidth_mbit_s", "vms", "hosts", "history_window",
    "seconds_requested", "seed", "writes", "bytes", "seconds", "mb_per_s", "writes_per_s",
    "rpo_p50_s", "rpo_p95_s", "rpo_p99_s", "rpo_max_s", "rpo_above_sla_s", "rpo_worst_vm_p99_s",
    "rpo_samples", "drain_s", "batches", "source_cpu_s", "source_cpu_s_per_gb", "target_cpu_s",
    "target_cpu_s_per_gb", "target_write_bytes_per_guest_byte", "target_received_bytes",
    "journal_bytes", "compression_ratio", "resyncs", "resync_bytes_sent", "resync_last_s",
    "outage_s", "wire_mb_s_up", "rpo_group_p99_s", "goal", "goal_met", "goal_miss",
    "predicted", "case_wall_s", "samples",
)  # fmt: skip
"""Every field of a run's JSON (``samples``: pooled [t_s, rpo_s, bytes] every 100 ms)."""


@dataclass
class Settings:
    """How the suite runs."""

    seconds: float = FULL_SECONDS
    quick: bool = False
    seed: int = 1
    out: str = ""
    python: str = sys.executable
    work_dir: str | None = None
    source_dir: str | None = None
    only: list[str] = field(default_factory=list)
    plots: bool = True
    rto_vms: tuple[int, ...] = ()
    """VM counts for the failover RTO runs (empty: 1 and 10 quick, 1, 10 and 50 full)."""


# -- one run ---------------------------------------------------------------------------


@dataclass
class Source:
    """One finished ``cdp sim run`` process."""

    result: dict[str, Any]
    samples: list[list[float]]


async def run_scenario(sc: Scenario, settings: Settings) -> dict[str, Any]:
    """Run one scenario with a fresh target; return its figures (see :data:`FIELDS`)."""
    t_case = time.monotonic()
    root = tempfile.mkdtemp(prefix=f"cdp-suite-{sc.name}-", dir=settings.work_dir)
    src_root = tempfile.mkdtemp(prefix="cdp-suite-src-", dir=settings.source_dir)
    target: subprocess.Popen[bytes] | None = None
    proxy: LinkProxy | None = None
    try:
        target, address, pid = await start_target(settings.python, root, sc.history_window)
        if sc.link != LOOPBACK or sc.outage:
            proxy = await LinkProxy(address, sc.link).start()
        out = await _measure(sc, settings, root, src_root, address, pid, proxy)
    finally:
        if proxy is not None:
            await proxy.close()
        if target is not None:
            stop_process(target)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(src_root, ignore_errors=True)
    out["case_wall_s"] = round(time.monotonic() - t_case, 2)
    return out


def _seconds(sc: Scenario, settings: Settings) -> float:
    return sc.seconds if sc.seconds is not None else settings.seconds


def _trace_flags(sc: Scenario, root: str, seconds: float) -> tuple[list[str], trace.Trace | None]:
    if not sc.trace:
        return [], None
    if sc.trace == "bursts":
        tr = trace.bursts(2000, 10, max(1.0, seconds / 3))
    else:
        tr = trace.load(sc.trace)
    path = os.path.join(root, "trace.txt")
    trace.write_normalised(tr, path)
    flags = ["--trace", path, "--speedup", f"{sc.speedup:g}", "--disks", str(len(tr.disks)),
             "--disk-size", str(tr.disk_bytes)]  # fmt: skip
    return flags, tr


def rpo_logs(root: str, host: int, vms: int) -> list[str]:
    """The RPO logs of one host's groups (``--rpo-log PATH``; ``PATH.i`` with ``--groups``)."""
    path = os.path.join(root, f"rpo-{host}.jsonl")
    return [group_rpo_log(path, i, vms) for i in range(vms)]


def sim_commands(
    sc: Scenario, settings: Settings, address: str, root: str, src_root: str
) -> tuple[list[list[str]], trace.Trace | None]:
    """One ``cdp sim run`` command line per simulated host, and the trace it replays."""
    seconds = _seconds(sc, settings)
    extra, tr = _trace_flags(sc, root, seconds)
    if tr is not None:
        seconds = tr.duration_s / sc.speedup + 0.5
    disks = [] if tr else ["--disks", str(sc.disks), "--disk-size", sc.disk_size]
    cmds, first = [], 0
    for h, vms in enumerate(hosts(sc)):
        cmds.append([
            settings.python, "-m", "cdp", "sim", "run", "--target", address, "--insecure",
            "--json", "--group", f"suite-h{h}", "--vm", f"vm{h}", "--groups", str(vms),
            *disks, *sc.flags, *extra, "--seconds", f"{seconds:g}",
            "--seed", str(settings.seed + first), "--dir", os.path.join(src_root, f"host{h}"),
            "--rpo-log", os.path.join(root, f"rpo-{h}.jsonl"),
        ])  # fmt: skip
        first += vms
    return cmds, tr


async def _run_sim(cmd: list[str], root: str, i: int) -> dict[str, Any]:
    out_path, err_path = os.path.join(root, f"sim-{i}.out"), os.path.join(root, f"sim-{i}.log")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=REPO, env=env(), stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    try:
        code = await asyncio.wait_for(proc.wait(), SIM_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CaseError(f"source {i} ran longer than {SIM_TIMEOUT_S:.0f} s") from None
    lines = Path(out_path).read_text().split("\n")
    lines = [x for x in lines if x.strip()]
    if code != 0 or not lines:
        raise CaseError(f"source {i} exited with {code}: {tail(root, f'sim-{i}.log')}")
    return dict(json.loads(lines[-1]))


def read_samples(path: str) -> list[list[float]]:
    """The [t_s, rpo_s, bytes] lines a source logged with ``--rpo-log``."""
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


async def _outage(sc: Scenario, proxy: LinkProxy | None, root: str) -> float:
    """Take the link down as the scenario says; return the seconds it was down."""
    if sc.outage is None or proxy is None:
        return 0.0
    first = rpo_logs(root, 0, hosts(sc)[0])[0]
    while not os.path.exists(first):
        await asyncio.sleep(0.05)
    await asyncio.sleep(sc.outage[0])
    proxy.outage()
    t0 = time.monotonic()
    await asyncio.sleep(sc.outage[1])
    proxy.restore()
    return time.monotonic() - t0


async def _measure(
    sc: Scenario, settings: Settings, root: str, src_root: str, address: str, pid: int,
    proxy: LinkProxy | None,
) -> dict[str, Any]:  # fmt: skip
    cmds, tr = sim_commands(sc, settings, proxy.address if proxy else address, root, src_root)
    cpu0, io0 = proc_cpu_s(pid), proc_io(pid)
    outage = asyncio.ensure_future(_outage(sc, proxy, root))
    try:
        results = await asyncio.gather(*(_run_sim(c, root, i) for i, c in enumerate(cmds)))
    finally:
        outage.cancel()
    outage_s = outage.result() if outage.done() and not outage.cancelled() else 0.0
    status = await _target_status(address, applied=sc.history_window == "0")
    cpu_s = proc_cpu_s(pid) - cpu0
    wrote = proc_io(pid).get("write_bytes", 0) - io0.get("write_bytes", 0)
    sources = []
    for h, r in enumerate(results):
        groups = r.get("groups", [r])
        logs = rpo_logs(root, h, len(groups))
        sources += [Source(g, read_samples(log)) for g, log in zip(groups, logs, strict=True)]
    src_cpu = sum(float(r["source_cpu_s"]) for r in results)
    out = figures(sc, settings, sources, status, (src_cpu, cpu_s), wrote)
    out["outage_s"] = round(outage_s, 2)
    out["wire_mb_s_up"] = round(proxy.wire_rate_up() / 1e6, 3) if proxy else None
    out["rpo_group_p99_s"] = [float(s.result["rpo_p99_s"]) for s in sources]
    out["predicted"] = predict(sc, out, tr)
    judge(sc, out)
    return out


async def _target_status(address: str, applied: bool = False) -> dict[str, int]:
    """Journal and received bytes over every group, once the sources are done.

    With ``applied``, first wait (up to :data:`APPLY_WAIT_S`) until every group has
    applied all it holds, so that the target's writes include the replica's.
    """
    from cdp.rpc.client import ReplicationClient

    client = ReplicationClient(address, None)
    deadline = time.monotonic() + APPLY_WAIT_S
    try:
        groups = (await client.status("")).groups
        while applied and any(g.applied_seq < g.durable_seq for g in groups):
            if time.monotonic() > deadline:
                raise CaseError(f"the target did not apply within {APPLY_WAIT_S:.0f} s")
            await asyncio.sleep(0.1)
            groups = (await client.status("")).groups
    finally:
        await client.close()
    return {
        "journal_bytes": sum(g.journal_bytes for g in groups),
        "received_bytes": sum(g.received_bytes for g in groups),
    }


def pool(sources: list[Source]) -> list[list[float]]:
    """One series for the run: worst RPO and summed bytes per sample index."""
    n = max((len(s.samples) for s in sources), default=0)
    out = []
    for k in range(n):
        rows = [s.samples[min(k, len(s.samples) - 1)] for s in sources if s.samples]
        out.append([rows[0][0], max(r[1] for r in rows), sum(r[2] for r in rows)])
    return out


def figures(
    sc: Scenario, settings: Settings, sources: list[Source], status: dict[str, int],
    cpu: tuple[float, float], wrote: int,
) -> dict[str, Any]:  # fmt: skip
    """The run's figures from the groups' JSON, their RPO logs and the target.

    ``cpu`` is (source processes, target) CPU seconds.
    """
    src_cpu, cpu_s = cpu
    rs = [s.result for s in sources]
    total = sum(int(r["bytes"]) for r in rs)
    writes = sum(int(r["writes"]) for r in rs)
    secs = max(float(r["seconds"]) for r in rs)
    values = sorted(x[1] for s in sources for x in s.samples)
    received = status["received_bytes"]
    return {
        "scenario": sc.name, "what": sc.what, "link": sc.link.name,
        "rtt_ms": round(sc.link.rtt_s * 1000, 1),
        "bandwidth_mbit_s": round(sc.link.rate_bytes_s * 8 / 1e6, 1),
        "vms": sc.vms, "hosts": len(hosts(sc)), "history_window": sc.history_window,
        "seconds_requested": _seconds(sc, settings),
        "seed": settings.seed,
        "writes": writes, "bytes": total, "seconds": secs,
        "mb_per_s": round(total / secs / 1e6, 2), "writes_per_s": round(writes / secs, 1),
        "rpo_p50_s": percentile(values, 50), "rpo_p95_s": percentile(values, 95),
        "rpo_p99_s": percentile(values, 99), "rpo_max_s": values[-1] if values else 0.0,
        "rpo_above_sla_s": round(max(float(r["rpo_above_sla_s"]) for r in rs), 2),
        "rpo_worst_vm_p99_s": max(float(r["rpo_p99_s"]) for r in rs),
        "rpo_samples": len(values),
        "drain_s": max(float(r["drain_s"]) for r in rs),
        "batches": sum(int(r["batches"]) for r in rs),
        "source_cpu_s": round(src_cpu, 3),
        "source_cpu_s_per_gb": round(src_cpu / max(total, 1) * 1e9, 3),
        "target_cpu_s": round(cpu_s, 3),
        "target_cpu_s_per_gb": round(cpu_s / max(received, 1) * 1e9, 3),
        "target_write_bytes_per_guest_byte": round(wrote / max(received, 1), 3),
        "target_received_bytes": received,
        "journal_bytes": status["journal_bytes"],
        # An applying target (window 0) has trimmed its journal: no ratio to read there.
        "compression_ratio": None if sc.history_window == "0" else
        round(status["journal_bytes"] / max(received, 1), 3),
        "resyncs": sum(int(r.get("resyncs", 0)) for r in rs),
        "resync_bytes_sent": sum(int(r.get("resync_bytes_sent", 0)) for r in rs),
        "resync_last_s": max(float(r.get("resync_last_s", 0.0)) for r in rs),
        "samples": pool(sources),
    }  # fmt: skip


def predict(sc: Scenario, r: dict[str, Any], tr: trace.Trace | None) -> dict[str, Any]:
    """The sizing model's prediction for this run (see bench/capacity.py), or {}."""
    ratio = r["compression_ratio"] or capacity.compression_ratio(0.5)
    out: dict[str, Any] = {}
    if sc.link.rate_bytes_s and r["batches"]:
        batch = r["bytes"] / r["batches"] * ratio
        out["mean_batch_serialization_s"] = round(batch / sc.link.rate_bytes_s, 4)
        full = DEFAULT_BATCH_BYTES * ratio  # one full batch (1 MiB raw), lz4-compressed
        out["batch_serialization_s"] = round(full / sc.link.rate_bytes_s, 4)
        wire = r["mb_per_s"] * 1e6 * ratio
        out["wire_mb_s"] = round(wire / 1e6, 2)
        over = max(0.0, 1 - sc.link.rate_bytes_s / wire) if wire else 0.0
        # A constant rate above the link: RPO grows as t x (1 - link / rate) while writing,
        # and keeps growing at that pace while the backlog drains; the last write is acked
        # after seconds x (rate / link - 1), which is also the peak RPO.
        out["rpo_at_end_of_writes_s"] = round(r["seconds"] * over, 3)
        out["drain_s"] = round(r["seconds"] * max(0.0, wire / sc.link.rate_bytes_s - 1), 3)
        if tr is None:
            summary = capacity.rpo_summary(_predicted_series(sc, r))
            out.update({k: round(summary[k], 3) for k in ("rpo_p99_s", "rpo_max_s")})
    if tr is not None:
        writes = capacity.scale(tr.writes, sc.speedup)
        journal, _ = capacity.journal_bytes(writes, writes[-1].t_s + 1, ratio)
        out["journal_bytes"] = round(journal)
        out["bandwidth_for_rpo_1s_mbit_s"] = round(
            capacity.bandwidth_for_rpo(writes, 1.0, ratio) * 8 / 1e6, 1
        )
        link = sc.link.rate_bytes_s or 1e12
        series = capacity.rpo_series(writes, link, ratio, capacity.DEFAULT_LATENCY_S)
        out.update({f"{k}": round(v, 3) for k, v in capacity.rpo_summary(series).items()})
    return out


def judge(sc: Scenario, r: dict[str, Any]) -> None:
    """Set goal, goal_met and goal_miss."""
    goals, why = [], []
    if sc.goal_p99_s != float("inf"):
        goals.append(f"RPO p99 < {sc.goal_p99_s:g} s")
        if r["rpo_p99_s"] >= sc.goal_p99_s:
            why.append(f"RPO p99 {r['rpo_p99_s']:.3f} s")
    if sc.min_mb_s:
        goals.append(f">= {sc.min_mb_s:g} MB/s")
        # Judged on the volume: the source's own seconds include ~0.2 s of set-up.
        if r["bytes"] < sc.min_mb_s * 1e6 * r["seconds_requested"] * RATE_TOLERANCE:
            why.append(f"wrote {r['bytes'] / 1e6 / r['seconds_requested']:.1f} MB/s")
    if sc.link.name == "100 Mbit/s" and sc.goal_p99_s != float("inf"):
        limit = 2 * r["predicted"].get("batch_serialization_s", 0.0)
        goals.append("p99 <= 2 x 1 MiB-batch serialization")
        if r["rpo_p99_s"] > limit:
            why.append(f"p99 {r['rpo_p99_s']:.3f} s > {limit:.3f} s")
    if sc.cap_bytes_s:
        cap_mb = sc.cap_bytes_s / 1e6
        goals.append(f"wire within 5 % of the {cap_mb:.2f} MB/s cap")
        if abs((r["wire_mb_s_up"] or 0.0) - cap_mb) > 0.05 * cap_mb:
            why.append(f"wire {r['wire_mb_s_up']} MB/s")
    if r["target_received_bytes"] < r["bytes"] and not r["resyncs"]:
        why.append("the target received fewer bytes than the guest wrote")
    r["goal"] = ", ".join(goals) or "(report only)"
    r["goal_miss"] = "; ".join(why)
    r["goal_met"] = not why


# -- the suite -------------------------------------------------------------------------


async def run_suite(settings: Settings) -> dict[str, Any]:
    """Run every scenario, then the rate sweep; write the files; return the results."""
    os.makedirs(settings.out, exist_ok=True)
    todo = scenarios(settings.seconds, settings.quick)
    if settings.only:
        todo = [s for s in todo if s.name in settings.only]
    runs = []
    for sc in todo:
        runs.append(await _run_and_save(sc, settings))
    sweep = await run_sweep(settings) if not settings.only or "sweep" in settings.only else None
    rto_doc = await run_rto(settings) if not settings.only or "rto" in settings.only else None
    results = {"env": environment(settings), "runs": runs, "sweep": sweep, "rto": rto_doc}
    with open(os.path.join(settings.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(settings.out, "report.md"), "w") as f:
        f.write(render(results))
    return results


async def _run_and_save(sc: Scenario, settings: Settings) -> dict[str, Any]:
    print(f"bench suite: {sc.name} ...", file=sys.stderr, flush=True)
    try:
        r = await run_scenario(sc, settings)
    except (CaseError, OSError, TimeoutError) as exc:
        print(f"bench suite: {sc.name} failed: {exc}", file=sys.stderr)
        return {"scenario": sc.name, "what": sc.what, "error": str(exc)}
    base = os.path.join(settings.out, sc.name)
    with open(base + ".json", "w") as f:
        json.dump(r, f, indent=1)
    if settings.plots:
        predicted = _predicted_series(sc, r)
        title = f"{sc.name}: {sc.what} [{sc.link.name}]"
        plot.rpo_plot(r["samples"], base + ".png", title, sc.goal_p99_s if sc.goal_p99_s !=
                      float("inf") else 1.0, predicted)  # fmt: skip
    print(f"bench suite: {sc.name}: {r['mb_per_s']} MB/s, RPO p99 {r['rpo_p99_s']} s, "
          f"{'met' if r['goal_met'] else 'MISSED ' + r['goal_miss']}", file=sys.stderr)  # fmt: skip
    return r


def _predicted_series(sc: Scenario, r: dict[str, Any]) -> list[tuple[float, float]]:
    """The capacity model's RPO over time for a rate-capped link (constant-rate writes)."""
    if not sc.link.rate_bytes_s or not r["writes"]:
        return []
    size = r["bytes"] / r["writes"]
    n = min(r["writes"], 200_000)
    step = r["seconds"] / n
    t0 = r["samples"][0][0] if r["samples"] else 0.0
    writes = [trace.TraceWrite(t0 + i * step, 0, 0, int(size)) for i in range(n)]
    ratio = r["compression_ratio"] or 0.5
    return capacity.rpo_series(writes, sc.link.rate_bytes_s, ratio, capacity.DEFAULT_LATENCY_S)


async def run_sweep(settings: Settings) -> dict[str, Any]:
    """4 KiB random at rising rates until RPO p99 reaches 1 s or the rate is not held."""
    steps = []
    for sc in sweep_scenarios(settings.quick):
        r = await _run_and_save(sc, settings)
        steps.append(r)
        if "error" in r or not r["goal_met"]:
            break
    return sweep_result(steps)


def sweep_result(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest rate that met the goal, and why the sweep stopped."""
    met = [r for r in steps if "error" not in r and r["goal_met"]]
    best = int(met[-1]["writes_per_s"]) if met else 0
    last = steps[-1] if steps else {}
    if "error" in last or not last.get("goal_met", True):
        stopped = f"stopped at `{last['scenario']}`: {last.get('error') or last['goal_miss']}"
    else:
        stopped = "every step held its rate: the ceiling is above the last step"
    return {"p99_goal_s": SWEEP_P99_S, "highest_writes_per_s": best, "stopped": stopped,
            "steps": steps}  # fmt: skip


RTO_QUICK = (1, 10)
RTO_FULL = (1, 10, 50)


async def run_rto(settings: Settings) -> dict[str, Any]:
    """Failover RTO against vcsim (``python -m bench rto``), or {"error": why} without it."""
    counts = list(settings.rto_vms or (RTO_QUICK if settings.quick else RTO_FULL))
    print(f"bench suite: rto {counts} VMs ...", file=sys.stderr, flush=True)
    try:
        doc = await rto.run(counts, settings.seed, settings.work_dir)
    except (subprocess.CalledProcessError, OSError, TimeoutError) as exc:
        why = getattr(exc, "stderr", "") or str(exc)
        print(f"bench suite: rto failed: {why}", file=sys.stderr)
        return {"error": f"failover RTO not measured: {why.strip()[-300:]}"}
    with open(os.path.join(settings.out, "rto.json"), "w") as f:
        json.dump(doc, f, indent=1)
    return doc


def environment(settings: Settings) -> dict[str, Any]:
    """Where and how the suite ran."""
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO,
                            capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(), "python": sys.version.split()[0], "commit": commit,
        "quick": settings.quick, "seconds": settings.seconds, "seed": settings.seed,
        "history_window": HISTORY_WINDOW, "tls": False,
    }  # fmt: skip


# -- command line ----------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    """Register ``suite``."""
    p = sub.add_parser("suite", help="RPO scenarios, link models, traces, plots and a report")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s per run")
    p.add_argument("--seconds", type=float, help=f"seconds per run (default {FULL_SECONDS:g})")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only these scenarios (repeat; 'sweep' for the rate sweep, "
                   "'rto' for failover RTO against vcsim)")  # fmt: skip
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="output folder (default bench/results/suite-<UTC time>/)")
    p.add_argument("--work-dir", help="where targets keep their data (default: $TMPDIR)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run the suite; exit 0 when it ran (goals are reported, not enforced)."""
    seconds = args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    if args.list:
        for sc in scenarios(seconds, args.quick) + sweep_scenarios(args.quick):
            print(f"{sc.name:24} {sc.what}")
        counts = RTO_QUICK if args.quick else RTO_FULL
        print(f"{'rto':24} failover RTO against vcsim, {', '.join(map(str, counts))} VMs")
        return 0
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    settings = Settings(
        seconds=seconds, quick=args.quick, seed=args.seed,
        out=args.out or str(REPO / "bench" / "results" / f"suite-{stamp}"),
        work_dir=args.work_dir, source_dir="/dev/shm" if os.path.isdir("/dev/shm") else None,
        only=args.only or [],
    )  # fmt: skip
    results = asyncio.run(run_suite(settings))
    print(render(results))
    print(f"bench suite: wrote {settings.out}", file=sys.stderr)
    return 0
