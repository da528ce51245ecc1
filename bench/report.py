"""Benchmark output: the environment, a Markdown table for people, JSON for machines."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("grpcio", "protobuf", "lz4", "xxhash", "rocksdict")


def _git(repo: Path, *args: str) -> str:
    try:
        r = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_total_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _filesystem(path: str) -> str:
    """Type of the filesystem holding ``path`` (longest mount point prefix)."""
    best, kind = "", ""
    path = os.path.realpath(path)
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1]
                inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best):
                    best, kind = mnt, f"{parts[2]} on {parts[0]} at {mnt}"
    except OSError:
        pass
    return kind


def environment(repo: Path, work_dir: str | None = None) -> dict[str, Any]:
    """What the figures depend on: machine, Python, libraries, commit, date."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    tmp = work_dir or os.environ.get("TMPDIR") or "/tmp"
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_bytes": _mem_total_bytes(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "packages": versions,
        "commit": _git(repo, "rev-parse", "HEAD"),
        "worktree_dirty_files": len(_git(repo, "status", "--porcelain").splitlines()),
        "data_filesystem": _filesystem(tmp),
    }


# -- table ------------------------------------------------------------------------------

HEADER = ("scenario", "mode", "writes/s", "MB/s", "guest MB/s", "RPO p50/p99/max s", "drain s",
          "src CPU s/GB", "tgt CPU s/GB", "fallback", "goal", "met?")  # fmt: skip
DETAIL = ("scenario", "mode", "writes/batch", "apply lag s", "apply backlog max",
          "tgt disk B/guest B", "src CPU s run / process (usr+sys)", "tgt CPU s (usr+sys)",
          "kernel thr. CPU s", "other CPU s", "case wall s")  # fmt: skip


def _row(r: dict[str, Any]) -> tuple[str, ...]:
    if "error" in r:
        return (r["scenario"], r["mode"], *["-"] * 8, r["goal"], "ERROR")
    rpo = f"{r['rpo_p50_s']:.3f} / {r['rpo_p99_s']:.3f} / {r['rpo_max_s']:.3f}"
    met = "yes" if r["goal_met"] else f"NO ({r['goal_miss']})"
    fallback = f"{r['resyncs']} resync(s)" if r["resyncs"] else "no"
    return (
        r["scenario"], r["mode"], f"{r['journaled_writes_per_s']:,.0f}",
        f"{r['journaled_mb_per_s']:,.1f}", f"{r['mb_per_s']:,.1f}", rpo, f"{r['drain_s']:.3f}",
        f"{r['source_cpu_s_per_gb']:.2f}", f"{r['target_cpu_s_per_gb']:.2f}", fallback,
        r["goal"], met,
    )  # fmt: skip


def _detail_row(r: dict[str, Any]) -> tuple[str, ...]:
    lag = r["apply_lag_s"]
    return (
        r["scenario"], r["mode"], f"{r['writes_per_batch']:,.0f}",
        "-" if lag is None else f"{lag:.2f}", f"{r['apply_backlog_max']:,}",
        f"{r['target_write_bytes_per_guest_byte']:.2f}",
        f"{r['source_cpu_s']:.2f} / {r['source_process_cpu_s']:.2f} "
        f"({r['source_process_cpu_user_s']:.2f}+{r['source_process_cpu_sys_s']:.2f})",
        f"{r['target_cpu_s']:.2f} ({r['target_cpu_user_s']:.2f}+{r['target_cpu_sys_s']:.2f})",
        f"{r['kernel_threads_cpu_s']:.2f}", f"{r['other_cpu_s']:.2f}", f"{r['case_wall_s']:.1f}",
    )  # fmt: skip


def markdown(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A Markdown table with padded columns."""
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def render(doc: dict[str, Any]) -> str:
    """The run as Markdown: summary table, detail table, environment line."""
    results = doc["results"]
    ok = [r for r in results if "error" not in r]
    env = doc["environment"]
    s = doc["settings"]
    where = s.get("source_dir") or "the target's filesystem"
    parts = [
        f"Ingest benchmark, {s['seconds']:g} s per case, fsync'd acks, source and target in "
        f"separate processes on loopback ({env['nproc']} CPUs, {env['cpu_model']}, "
        f"Python {env['python']}, commit {env['commit'][:12] or '?'}"
        f"{' + local changes' if env['worktree_dirty_files'] else ''}, {env['date_utc']}); "
        f"target --history-window {s.get('history_window', '0')}, "
        f"{'mutual TLS' if s.get('tls') else 'plain text (--insecure)'}, source disks on {where}.",
        "",
        markdown(HEADER, [_row(r) for r in results]),
    ]
    if ok:
        parts += ["", markdown(DETAIL, [_detail_row(r) for r in ok])]
    for r in results:
        if "error" in r:
            parts += ["", f"{r['scenario']} {r['mode']} failed: {r['error']}"]
    return "\n".join(parts)


def one_line(r: dict[str, Any]) -> str:
    """A case's headline figures, for progress output."""
    return (
        f"journaled {r['journaled_writes_per_s']:,.0f} writes/s, "
        f"{r['journaled_mb_per_s']:,.1f} MB/s (guest {r['mb_per_s']:,.1f} MB/s), RPO p99 "
        f"{r['rpo_p99_s']:.3f} s, CPU s/GB src {r['source_cpu_s_per_gb']:.2f} "
        f"tgt {r['target_cpu_s_per_gb']:.2f}, goal {'met' if r['goal_met'] else 'MISSED'}"
    )


def write(out_dir: Path, doc: dict[str, Any], table: str) -> None:
    """results.json (every figure) and table.md (what was printed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    (out_dir / "table.md").write_text(table + "\n")
