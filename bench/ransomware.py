"""Ransomware detection benchmark: the target's detector on seeded scenarios, sped up.

The detector (``cdp.target.detect``) is pure and takes its time from the records, so
each scenario of ``sim/ransomware.py`` is fed straight into it with simulated trusted
time: an hour of benign traffic takes a minute. For every attack (and rate) it reports

- the detection latency: from the attack's first write to the alert (goal <= 10 s at
  >= 5 MB/s of encryption);
- the onset lead: seconds from the last clean point offered (the point just before the
  suspicion's start) to the attack's first write (goal: >= 0, the point is before the
  onset, and <= 2 s);

for every benign scenario the false alerts over ``--benign-hours`` of traffic (goal 0
over at least an hour), the highest CUSUM reached against the threshold (the margin);
and the detector's CPU per record, fed in batches as the target does, as a share of the
target's CPU at the ingest benchmark's rates (the README's ingest table, constants
below). Everything runs in this process: no target, no gRPC (the end-to-end path is
proven by tests/integration/test_ransomware_detection.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Iterator
from typing import Any

from cdp import codec
from cdp.record import Record
from cdp.target.detect import Detector, DetectorConfig, Raised, Watching
from cdp.target.detect.stats import CUSUM_H
from sim.ransomware import START_NS, ScenarioSpec, SimRecord, records

ATTACKS = (
    ("ransom-fast", 50.0), ("ransom-fast", 5.0), ("ransom-intermittent", 5.0),
    ("ransom-intermittent", 1.0), ("ransom-slow", 0.5), ("ransom-slow", 0.1), ("flip", 5.0),
)  # fmt: skip
"""(scenario, encrypted MB/s) of each attack case."""
BENIGN = ("office", "media-copy", "encrypted-db")
TRAINING_S = 600.0
"""The product's default training (cdp.target.detect.detector.DEFAULT_TRAINING_S)."""
ATTACK_AT_S = 700.0
MAX_WAIT_S = 300.0
"""An attack not caught this long after its first write counts as missed."""
DISK_MIB = 512
"""Each of the 2 disks; the files area (half) is what the attack encrypts."""
INGEST_RATES = (
    ("4 KiB random", 4096, 19_959, 10.70, 81.8),
    ("64 KiB random", 65536, 4_578, 2.28, 299.9),
    ("1 MiB sequential", 2**20, 250, 2.40, 262.0),
)  # fmt: skip
"""(scenario, write bytes, writes/s, target CPU s per GB, MB/s) of the README's ingest
table (at-target-rate rows): the rates the detector's cost is judged at."""


def run_attack(
    name: str, rate_mb_s: float, seed: int, training_s: float = TRAINING_S,
    attack_at_s: float = 0.0, disk_mib: int = DISK_MIB,
) -> dict[str, Any]:  # fmt: skip
    """Feed one attack scenario until the alert (or MAX_WAIT_S); its figures.

    ``attack_at_s`` 0: ATTACK_AT_S plus a seeded fraction of a second, so that the attack
    does not always begin on a window's edge.
    """
    attack_at_s = attack_at_s or ATTACK_AT_S + random.Random(seed).random()
    spec = ScenarioSpec(name, seconds=attack_at_s + MAX_WAIT_S, attack_at_s=attack_at_s,
                        attack_mb_s=rate_mb_s, disk_bytes=disk_mib * 2**20, seed=seed)  # fmt: skip
    det = Detector([spec.disk_bytes] * spec.disks, DetectorConfig(training_s=training_s))
    first: SimRecord | None = None
    ns_of: dict[int, int] = {}
    for r in records(spec):
        ns_of[r.seq] = r.ns
        first = first or (r if r.attack else None)
        for e in det.observe_write(r.seq, r.disk, r.offset, r.length, r.frame_len, r.ns):
            if isinstance(e, Raised):
                return _attack_row(name, rate_mb_s, seed, e, first, ns_of)
    return {"scenario": name, "attack_mb_s": rate_mb_s, "seed": seed, "caught": False}


def _attack_row(
    name: str, rate: float, seed: int, e: Raised, first: SimRecord | None, ns_of: dict[int, int]
) -> dict[str, Any]:
    """The figures of one caught (or falsely raised) attack run."""
    if first is None:
        return {"scenario": name, "attack_mb_s": rate, "seed": seed, "caught": False,
                "false_alert_before_attack_s": (e.at_ns - START_NS) / 1e9}  # fmt: skip
    clean_ns = ns_of.get(e.start_seq - 1, START_NS)
    lead = (first.ns - clean_ns) / 1e9
    return {
        "scenario": name, "attack_mb_s": rate, "seed": seed, "caught": True,
        "latency_s": round((e.at_ns - first.ns) / 1e9, 2),
        "onset_lead_s": round(lead, 2),
        "clean_before_onset": e.start_seq <= first.seq,
        "within_2s": e.start_seq <= first.seq and lead <= 2.0,
    }  # fmt: skip


def run_benign(
    name: str, hours: float, seed: int, training_s: float = TRAINING_S
) -> dict[str, Any]:
    """Feed ``hours`` of a benign scenario; the alerts and the highest CUSUM."""
    spec = ScenarioSpec(name, seconds=hours * 3600, seed=seed)
    det = Detector([spec.disk_bytes] * spec.disks, DetectorConfig(training_s=training_s))
    alerts, top, second, watched_s = 0, 0.0, 0, 0.0
    for r in records(spec):
        for e in det.observe_write(r.seq, r.disk, r.offset, r.length, r.frame_len, r.ns):
            alerts += isinstance(e, Raised)
            watched_s = (r.ns - START_NS) / 1e9 if isinstance(e, Watching) else watched_s
        if r.ns // 10**9 != second:
            second = r.ns // 10**9
            top = max(top, det.cusum())
    return {"scenario": name, "hours": hours, "seed": seed, "judged_s": round(
        hours * 3600 - watched_s), "false_alerts": alerts, "max_cusum": round(top, 1)}  # fmt: skip


def _batches(block: int, n: int, seed: int) -> Iterator[list[Record]]:
    """The ingest benchmark's stream: random ``block`` writes over 2 x 2 GiB, ratio ~0.5."""
    rng = random.Random(seed)
    noise = rng.randbytes(2**20)
    half = b"".join(noise[i : i + 2048] + bytes(2048) for i in range(0, 2**20, 4096))
    frame = codec.compress(half[:block] if block <= 2**20 else half)
    per_batch = max(1, 2**20 // block)
    for first in range(1, n + 1, per_batch):
        yield [Record(s, rng.randrange(2), rng.randrange(0, 2**31 - block, 4096), block, 0, 0,
                      frame) for s in range(first, min(n + 1, first + per_batch))]  # fmt: skip


def cpu_cost(label: str, block: int, writes_s: int, cpu_s_gb: float, mb_s: float) -> dict[str, Any]:
    """The detector's CPU per record on an ingest-like stream, and its share of the target's."""
    det = Detector([2 * 2**30] * 2, DetectorConfig(training_s=60.0))
    n = min(400_000, writes_s * 20)
    batches = list(_batches(block, n, 1))
    per_s = len(batches) / 20  # batches per simulated second
    cpu = 0.0
    for i, batch in enumerate(batches):
        t = time.process_time()
        det.observe(batch, START_NS + int(i / per_s * 1e9))
        cpu += time.process_time() - t
    us = cpu / n * 1e6
    target_core_s = cpu_s_gb * mb_s / 1e3  # target CPU seconds per second at that rate
    return {"ingest": label, "writes_per_s": writes_s, "us_per_record": round(us, 2),
            "detector_core_share": round(us * writes_s / 1e6, 4),
            "share_of_target_cpu": round(us * writes_s / 1e6 / target_core_s, 4)}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run every case; print the Markdown tables; write the JSON if asked."""
    out: dict[str, Any] = {"attacks": [], "benign": [], "cpu": []}
    for name, rate in ATTACKS:
        for seed in range(1, args.seeds + 1):
            out["attacks"].append(run_attack(name, rate, seed))
            print(json.dumps(out["attacks"][-1]), flush=True)
    for name in BENIGN:
        out["benign"].append(run_benign(name, args.benign_hours, args.seed))
        print(json.dumps(out["benign"][-1]), flush=True)
    out["cpu"] = [cpu_cost(*row) for row in INGEST_RATES]
    print(render(out))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


def render(out: dict[str, Any]) -> str:
    """The three Markdown tables of a run."""
    lines = [
        "| attack | encrypted MB/s | seeds caught | latency s (max) | onset lead s (min / max) "
        "| clean point before onset | within 2 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rate in ATTACKS:
        rows = [r for r in out["attacks"] if r["scenario"] == name and r["attack_mb_s"] == rate]
        hit = [r for r in rows if r["caught"]]
        lat = max((r["latency_s"] for r in hit), default=float("nan"))
        leads = [r["onset_lead_s"] for r in hit] or [float("nan")]
        before = sum(r["clean_before_onset"] for r in hit)
        within = sum(r["within_2s"] for r in hit)
        lead = f"{min(leads):.2f} / {max(leads):.2f}"
        lines.append(f"| {name} | {rate:g} | {len(hit)}/{len(rows)} | {lat:.1f} | {lead} | "
                     f"{before}/{len(rows)} | {within}/{len(rows)} |")  # fmt: skip
    lines += ["", "| benign | hours | judged s | false alerts | max CUSUM / threshold |",
              "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['scenario']} | {r['hours']:g} | {r['judged_s']} | {r['false_alerts']} | "
              f"{r['max_cusum']} / {CUSUM_H:g} |" for r in out["benign"]]  # fmt: skip
    lines += ["", "| ingest rate | writes/s | detector us/record | detector cores | share of "
              "target CPU |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['ingest']} | {r['writes_per_s']:,} | {r['us_per_record']} | "
              f"{r['detector_core_share']:.3f} | {r['share_of_target_cpu']:.1%} |"
              for r in out["cpu"]]  # fmt: skip
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    """Register ``ransomware``."""
    p = sub.add_parser(
        "ransomware", help="encryption detection: latency, onset, false alerts, CPU",
        description="Feed seeded ransomware and benign scenarios (sim/ransomware.py) to the "
        "target's detector in simulated time; print latency, onset lead, false alerts and "
        "the detector's CPU share at the ingest rates.",
    )  # fmt: skip
    p.add_argument("--seeds", type=int, default=5, help="seeds per attack case (default 5)")
    p.add_argument("--benign-hours", type=float, default=1.0, help="hours per benign scenario")
    p.add_argument("--seed", type=int, default=1, help="seed of the benign scenarios")
    p.add_argument("--out", default="", help="write the results as JSON here")
    p.set_defaults(handler=run)
