"""Ingest benchmark: a target and a simulated source in separate processes on loopback.

For every scenario (4 KiB random, 64 KiB random, 1 MiB sequential) and mode ("max":
unlimited rate, the throughput ceiling; "at-target-rate": the rate of the goal, to read
RPO there) one case:

1. starts ``cdp target serve`` on 127.0.0.1:0 with a fresh data dir and waits for its
   ready file ({address, pid});
2. runs ``cdp sim run --json`` against it as another process and parses the last line
   of its stdout (writes, bytes, RPO percentiles, drain time, source CPU, ...);
3. meanwhile polls the target's status (durable and applied seq) over gRPC, the target's
   CPU time and I/O counters from /proc/<pid>/stat and /proc/<pid>/io, and the source's
   I/O counters; the source's whole-process CPU comes from wait4();
4. waits until the target applied every acked write (apply lag), then stops it with
   SIGTERM and removes the data.

Acks are fsync'd: the target acks a seq only after group commit made it durable.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.ingest_scenarios import (
    ALIASES,
    MODES,
    RATE_TOLERANCE,
    RPO_P99_GOAL_S,
    SCENARIOS,
    Scenario,
    judge,
    num,
    resolve,
)
from bench.monitor import Monitor, journaled_rates
from bench.processes import REPO, CaseError, env, start_target, stop_process, tail, tls_flags
from bench.procfs import (
    machine_cpu,
    other_processes,
    proc_cpu_split_s,
    proc_io,
    proc_threads_cpu_s,
    self_cpu_s,
    thread_cpu_delta,
)

RESULTS_DIR = REPO / "bench" / "results"
GROUP = "bench-group"
SOURCE_ID = "sim-host-1"
"""The simulated host's name (``cdp sim run``'s source id)."""
DEFAULT_SECONDS = 20.0
QUICK_SECONDS = 5.0
DISK_SIZE = "2GiB"
COMPRESSIBILITY = 0.5
POLL_S = 0.05
"""How often the target's status and /proc counters are read during a case."""
APPLY_TIMEOUT_S = 300.0
SIM_GRACE_S = 300.0
"""Time a source may take beyond its writing seconds (start-up, drain, closing its disks)."""
SHM = "/dev/shm"

SIM_FIELDS = (
    "writes", "bytes", "acked_seq", "seconds", "writes_per_s", "mb_per_s", "rpo_p50_s",
    "rpo_p95_s", "rpo_p99_s", "rpo_max_s", "rpo_above_sla_s", "rpo_samples", "drain_s",
    "sessions", "batches", "source_cpu_s", "source_cpu_s_per_gb",
)  # fmt: skip
"""Figures copied from the source's JSON line."""
FIELDS = (
    "scenario", "mode", "pattern", "block_size", "sim_rate_flags", "seconds_requested",
    *SIM_FIELDS,
    "writes_per_batch", "source_process_cpu_s", "source_process_wall_s",
    "source_disk_write_bytes", "target_cpu_s", "target_cpu_s_per_gb", "target_cpu_window_s",
    "target_write_bytes", "target_write_bytes_per_guest_byte", "target_read_bytes",
    "target_received_bytes",
    "target_history_window", "tls", "target_applies", "durable_seq", "applied_seq", "apply_lag_s",
    "apply_backlog_max", "journaled_writes_per_s", "journaled_mb_per_s", "journaled_interval_s",
    "resyncs", "resync_bytes_sent", "goal", "goal_met", "goal_miss", "case_wall_s", "series",
    "target_threads_cpu_s", "source_threads_cpu_s", "target_cpu_user_s", "target_cpu_sys_s",
    "source_process_cpu_user_s", "source_process_cpu_sys_s", "machine_busy_cpu_s",
    "machine_cpu_capacity_s", "kernel_threads_cpu_s", "bench_cpu_s", "other_cpu_s",
    "other_busiest_processes", "machine_iowait_s",
    "loadavg_1m_at_start",
)  # fmt: skip
"""Every field of a successful case's result."""


@dataclass(frozen=True)
class Settings:
    """How every case of a run is made."""

    seconds: float = DEFAULT_SECONDS
    disk_size: str = DISK_SIZE
    disks: int = 2
    compressibility: float = COMPRESSIBILITY
    seed: int = 1
    work_dir: str | None = None
    """Parent of the per-case temporary folders (default: the system's temp dir)."""
    keep: bool = False
    python: str = sys.executable
    poll_s: float = POLL_S
    profile: bool = False
    """Record py-spy profiles of both processes (written to ``profile_dir``)."""
    profile_dir: str | None = None
    sync_first: bool = True
    """Flush the page cache's dirty data (os.sync) before each case, for a quiet start."""
    source_dir: str | None = None
    """Parent of each case's source disks (default: inside the case's data dir)."""
    tls: bool = False
    """Mutual TLS between source and target (``cdp certs init`` per case); plain text
    (``--insecure``) otherwise."""
    history_window: str = "0"
    """The target's ``--history-window``: 0 applies every write to the replica at once, so
    the target's CPU figure includes applying and the apply lag is measured."""

    @property
    def applies(self) -> bool:
        """Whether the target applies writes during the case (history window 0)."""
        return re.fullmatch(r"0+(\.0*)?[a-z]*", self.history_window.strip().lower()) is not None


REPEAT_FIELDS = (
    "writes_per_s", "mb_per_s", "rpo_p50_s", "rpo_p99_s", "rpo_max_s", "source_cpu_s_per_gb",
    "target_cpu_s_per_gb", "apply_lag_s", "other_cpu_s", "goal_met",
)  # fmt: skip
"""What is kept of every run of a repeated case."""


# -- processes --------------------------------------------------------------------------


def sim_command(
    scenario: Scenario, mode: str, settings: Settings, address: str, root: str
) -> list[str]:
    """The ``cdp sim run`` command line of a case."""
    return [
        settings.python, "-m", "cdp", "sim", "run", "--target", address, "--json",
        "--group", GROUP, "--pattern", scenario.pattern, "--block-size", scenario.block_size,
        *scenario.rate_flags(mode), "--seconds", num(settings.seconds),
        "--disk-size", settings.disk_size, "--disks", str(settings.disks),
        "--compressibility", num(settings.compressibility), "--seed", str(settings.seed),
        "--dir", source_folder(settings, root),
        *tls_flags(root, f"sources/{SOURCE_ID}" if settings.tls else ""),
    ]  # fmt: skip


def make_certs(python: str, root: str) -> None:
    """``cdp certs init <root>/certs`` with a certificate for the source."""
    cmd = [python, "-m", "cdp", "certs", "init", os.path.join(root, "certs"),
           "--source", f"{SOURCE_ID}={GROUP}", "--json"]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise CaseError(f"cdp certs init failed: {r.stderr.strip()[-500:]}")


def default_source_dir(disk_size: str, disks: int) -> str | None:
    """/dev/shm when it can hold every source disk, else None (the case's own dir).

    In production the protected VM's disks are on the source host's datastore, not on the
    disk that holds the target's journal; a RAM-backed source keeps the simulated guest's
    own disk writes from competing with the target for this machine's one disk.
    """
    from cdp.cli.common import parse_size

    need = parse_size("--disk-size", disk_size) * disks * 1.1
    try:
        st = os.statvfs(SHM)
    except OSError:
        return None
    return SHM if st.f_bavail * st.f_frsize >= need else None


def source_folder(settings: Settings, root: str) -> str:
    """Where a case's source disks go."""
    if settings.source_dir is None:
        return os.path.join(root, "source")
    return os.path.join(settings.source_dir, os.path.basename(root) + "-source")


@dataclass
class SimRun:
    """A finished source process."""

    result: dict[str, Any]
    cpu_s: float
    wall_s: float
    pid: int
    user_s: float = 0.0
    sys_s: float = 0.0


async def run_source(cmd: list[str], root: str, monitor: Monitor, timeout_s: float) -> SimRun:
    """Run the source process to its end; its CPU comes from wait4's rusage."""
    out_path, err_path = os.path.join(root, "sim.out"), os.path.join(root, "sim.log")
    t0 = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env(), stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    monitor.source_pid = proc.pid

    def reap() -> tuple[int, float, float]:
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, ru.ru_utime, ru.ru_stime

    waiter = asyncio.ensure_future(asyncio.to_thread(reap))
    try:
        code, user_s, sys_s = await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
    except TimeoutError:
        proc.kill()
        await waiter
        raise CaseError(f"the source ran longer than {timeout_s:.0f} s and was killed") from None
    finally:
        monitor.source_pid = 0
    wall_s = time.monotonic() - t0
    with open(out_path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    if code != 0 or not lines:
        raise CaseError(f"the source exited with {code}: {tail(root, 'sim.log')}")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise CaseError(f"the source's last line is not JSON: {lines[-1][:200]!r}") from exc
    return SimRun(result, user_s + sys_s, wall_s, proc.pid, user_s, sys_s)


# -- one case ---------------------------------------------------------------------------


async def run_case(scenario: Scenario, mode: str, settings: Settings) -> dict[str, Any]:
    """Run one scenario in one mode; return every figure (see :data:`FIELDS`)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    root = tempfile.mkdtemp(prefix=f"cdp-bench-{scenario.name}-{mode}-", dir=settings.work_dir)
    t_case = time.monotonic()
    target: subprocess.Popen[bytes] | None = None
    try:
        if settings.sync_first:
            await asyncio.to_thread(os.sync)
        if settings.tls:
            make_certs(settings.python, root)
        target, address, pid = await start_target(
            settings.python, root, settings.history_window, settings.tls
        )
        out = await _measure(scenario, mode, settings, root, address, pid)
    finally:
        if target is not None:
            code = stop_process(target)
            if code != 0:
                print(f"bench: target exited with {code}: {tail(root, 'target.log')}",
                      file=sys.stderr)  # fmt: skip
        if settings.keep:
            print(f"bench: kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
            if settings.source_dir is not None:
                shutil.rmtree(source_folder(settings, root), ignore_errors=True)
    out["case_wall_s"] = round(time.monotonic() - t_case, 2)
    return out


async def _measure(
    scenario: Scenario, mode: str, settings: Settings, root: str, address: str, pid: int
) -> dict[str, Any]:
    operator = os.path.join(root, "certs", "operators", "admin") if settings.tls else ""
    monitor = Monitor(address, pid, settings.poll_s, operator, group=GROUP)
    cpu0, io0, threads0 = proc_cpu_split_s(pid), proc_io(pid), proc_threads_cpu_s(pid)
    machine0, self0, load0 = machine_cpu(), self_cpu_s(), os.getloadavg()[0]
    t_cpu0 = time.monotonic()
    monitor.start()
    profilers: list[Any] = []
    try:
        cmd = sim_command(scenario, mode, settings, address, root)
        source = asyncio.ensure_future(
            run_source(cmd, root, monitor, settings.seconds + SIM_GRACE_S)
        )
        if settings.profile:
            profilers = await _start_profilers(scenario, mode, settings, monitor, pid, source)
        sim = await source
        final = int(sim.result["acked_seq"])
        if not await monitor.wait_for("durable_seq", final, 10.0):
            raise CaseError(f"the target's status never showed durable seq {final}")
        if settings.applies and not await monitor.wait_for("applied_seq", final, APPLY_TIMEOUT_S):
            raise CaseError(f"the target did not apply seq {final} within {APPLY_TIMEOUT_S} s")
    finally:
        await monitor.stop()
    cpu1, io1 = proc_cpu_split_s(pid), proc_io(pid)
    machine1, self1 = machine_cpu(), self_cpu_s()
    window_s = time.monotonic() - t_cpu0
    cpu_s = sum(cpu1) - sum(cpu0)
    threads = thread_cpu_delta(threads0, proc_threads_cpu_s(pid), pid)
    busy = machine1.busy_s - machine0.busy_s
    kernel = machine1.kernel_threads_s - machine0.kernel_threads_s
    bench = self1 - self0
    for prof in profilers:
        await asyncio.to_thread(prof.finish)
    out = _figures(scenario, mode, settings, sim, monitor, cpu_s, window_s, io0, io1, profilers)
    out["target_threads_cpu_s"] = threads
    out["source_threads_cpu_s"] = thread_cpu_delta({}, monitor.source_threads, sim.pid)
    out.update(
        target_cpu_user_s=round(cpu1[0] - cpu0[0], 2),
        target_cpu_sys_s=round(cpu1[1] - cpu0[1], 2),
        source_process_cpu_user_s=round(sim.user_s, 2),
        source_process_cpu_sys_s=round(sim.sys_s, 2),
        machine_busy_cpu_s=round(busy, 2),  # in the window, every CPU together
        machine_cpu_capacity_s=round(window_s * len(os.sched_getaffinity(0)), 2),
        kernel_threads_cpu_s=round(kernel, 2),
        bench_cpu_s=round(bench, 2),
        other_cpu_s=round(busy - cpu_s - sim.cpu_s - kernel - bench, 2),
        other_busiest_processes=other_processes(machine0, machine1, {os.getpid(), pid}),
        machine_iowait_s=round(machine1.iowait_s - machine0.iowait_s, 2),
        loadavg_1m_at_start=round(load0, 2),
    )
    return out


def _figures(
    scenario: Scenario, mode: str, settings: Settings, sim: SimRun, monitor: Monitor,
    cpu_s: float, window_s: float, io0: dict[str, int], io1: dict[str, int], profilers: list[Any],
) -> dict[str, Any]:  # fmt: skip
    r = sim.result
    missing = [k for k in SIM_FIELDS if k not in r]
    if missing:
        raise CaseError(f"the source's JSON lacks {missing}")
    last = monitor.latest
    # Bytes the target took in: the guest's writes, or fewer plus resync data when the
    # source fell back to its dirty map. The target's costs are per byte it took in.
    taken = max(last.received_bytes if last else 0, 1)
    final = int(r["acked_seq"])
    lag = monitor.apply_lag_s(final)
    journaled = journaled_rates(monitor.samples, final)
    wrote = io1.get("write_bytes", 0) - io0.get("write_bytes", 0)
    out: dict[str, Any] = {
        "scenario": scenario.name, "mode": mode, "pattern": scenario.pattern,
        "block_size": scenario.block_size,
        "sim_rate_flags": " ".join(scenario.rate_flags(mode)),
        "seconds_requested": settings.seconds,
        **{k: r[k] for k in SIM_FIELDS},
        "writes_per_batch": round(r["writes"] / max(r["batches"], 1), 1),
        "source_process_cpu_s": round(sim.cpu_s, 3),
        "source_process_wall_s": round(sim.wall_s, 3),
        "source_disk_write_bytes": monitor.source_io.get("write_bytes", 0),
        "target_cpu_s": round(cpu_s, 3),
        "target_received_bytes": taken,
        "target_cpu_s_per_gb": round(cpu_s / taken * 1e9, 3),
        "target_cpu_window_s": round(window_s, 3),
        "target_write_bytes": wrote,
        "target_write_bytes_per_guest_byte": round(wrote / taken, 3),
        "target_read_bytes": io1.get("read_bytes", 0) - io0.get("read_bytes", 0),
        "target_history_window": settings.history_window,
        "tls": settings.tls,
        "target_applies": settings.applies,
        "durable_seq": last.durable_seq if last else 0,
        "applied_seq": last.applied_seq if last else 0,
        "apply_lag_s": None if lag is None else round(lag, 3),
        "apply_backlog_max": monitor.apply_backlog_max(),
        "journaled_writes_per_s": journaled[0],
        "journaled_mb_per_s": journaled[1],
        "journaled_interval_s": journaled[2],
        "resyncs": int(r.get("resyncs", 0)),
        "resync_bytes_sent": int(r.get("resync_bytes_sent", 0)),
        "goal": scenario.goal.text(mode),
        "series": [
            [s.t_s, s.durable_seq, s.applied_seq, s.target_cpu_s, s.received_bytes]
            for s in monitor.samples
        ],
    }  # fmt: skip
    out["goal_miss"] = judge(scenario, mode, out)
    out["goal_met"] = not out["goal_miss"]
    if profilers:
        out["profiles"] = {p.role: p.summary for p in profilers}
    return out


async def _start_profilers(
    scenario: Scenario, mode: str, settings: Settings, monitor: Monitor, target_pid: int,
    source: asyncio.Future[SimRun],
) -> list[Any]:  # fmt: skip
    """Once writes flow, py-spy both processes for most of the remaining write time."""
    from bench import profile

    await monitor.wait_for("durable_seq", 1, 60.0)  # the first ack: the source is writing
    if source.done() or not monitor.source_pid:
        return []
    duration = max(1, int(settings.seconds - 1.5))
    folder = settings.profile_dir or tempfile.gettempdir()
    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, f"{scenario.name}-{mode}")
    return [
        profile.PySpy.start("target", target_pid, duration, f"{stem}-target"),
        profile.PySpy.start("target-gil", target_pid, duration, f"{stem}-target-gil", gil=True),
        profile.PySpy.start("source", monitor.source_pid, duration, f"{stem}-source"),
        profile.PySpy.start(
            "source-gil", monitor.source_pid, duration, f"{stem}-source-gil", gil=True
        ),
    ]


# -- a whole run ------------------------------------------------------------------------


async def run_all(
    cases: list[tuple[Scenario, str]], settings: Settings, repeat: int = 1
) -> list[dict[str, Any]]:
    """Run the cases one after another, each ``repeat`` times, and keep the median run of
    each (by the goal's metric); a failed case is recorded and the run goes on."""
    results = []
    for i, (scenario, mode) in enumerate(cases, 1):
        runs: list[dict[str, Any]] = []
        error = ""
        for k in range(repeat):
            again = f", run {k + 1}/{repeat}" if repeat > 1 else ""
            print(f"bench: [{i}/{len(cases)}] {scenario.name} {mode} ({settings.seconds:g} s"
                  f"{again}) ...", file=sys.stderr, flush=True)  # fmt: skip
            try:
                r = await run_case(scenario, mode, settings)
            except CaseError as exc:
                error = str(exc)
                print(f"bench:   FAILED: {exc}", file=sys.stderr, flush=True)
                continue
            print(f"bench:   {report.one_line(r)}", file=sys.stderr, flush=True)
            runs.append(r)
        if not runs:
            results.append({"scenario": scenario.name, "mode": mode, "error": error,
                            "goal": scenario.goal.text(mode), "goal_met": False})  # fmt: skip
            continue
        ranked = sorted(runs, key=lambda r: float(r[scenario.goal.metric]))
        chosen = ranked[(len(ranked) - 1) // 2]
        if repeat > 1:
            chosen["repeats"] = [{k: r[k] for k in REPEAT_FIELDS} for r in runs]
            chosen["failed_repeats"] = repeat - len(runs)
        results.append(chosen)
    return results


def add_parser(sub: Any) -> None:
    """Register ``ingest``."""
    p = sub.add_parser(
        "ingest", help="ingest throughput, RPO and CPU per GB, source and target on loopback",
        description="Run 4 KiB random, 64 KiB random and 1 MiB sequential writes through a "
        "real target and a simulated source (separate processes, loopback), each at maximum "
        "rate and at the goal rate; print a table and write results.json.",
    )  # fmt: skip
    quick = f"{QUICK_SECONDS:g} s per case instead of {DEFAULT_SECONDS:g} s"
    p.add_argument("--quick", action="store_true", help=quick)
    names = f"run only these ({', '.join(SCENARIOS)}; short: {', '.join(ALIASES)})"
    p.add_argument("--scenario", action="extend", nargs="+", metavar="NAME", help=names)
    modes = "run only these modes (default: both)"
    p.add_argument("--mode", action="extend", nargs="+", choices=MODES, help=modes)
    p.add_argument("--seconds", type=float, help="writing seconds per case (overrides --quick)")
    repeat = "run each case N times and report the median run (by the goal's metric)"
    p.add_argument("--repeat", type=int, default=1, help=repeat)
    p.add_argument("--out", help="results folder (default bench/results/<UTC timestamp>/)")
    p.add_argument("--seed", type=int, default=1, help="workload seed")
    p.add_argument("--disk-size", default=DISK_SIZE, help="size of each source disk (2 disks)")
    p.add_argument("--work-dir", help="where each case's data dir goes (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep each case's data dir and logs")
    where = (
        "folder for the simulated source's disks (default: /dev/shm when it has room, else the "
        "case's data dir; 'case' forces the case's data dir, on the target's disk)"
    )
    p.add_argument("--source-dir", help=where)
    window = (
        "the target's --history-window (default 0: apply every write at once, so target CPU "
        "includes applying and the apply lag is measured; e.g. 1h for journal-only ingest)"
    )
    p.add_argument("--history-window", default="0", help=window)
    p.add_argument("--tls", action="store_true",
                   help="mutual TLS between source and target (default: plain text)")  # fmt: skip
    profile = "record py-spy profiles of source and target into <out>/profiles/"
    p.add_argument("--profile", action="store_true", help=profile)
    p.add_argument("--check", action="store_true", help="exit 1 unless every goal is met")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write the results."""
    seconds = args.seconds or (QUICK_SECONDS if args.quick else DEFAULT_SECONDS)
    if seconds <= 0:
        raise SystemExit("bench: --seconds must be positive")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.out) if args.out else RESULTS_DIR / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.source_dir == "case":
        source_dir = None
    else:
        source_dir = args.source_dir or default_source_dir(args.disk_size, 2)
    settings = Settings(
        seconds=seconds, disk_size=args.disk_size, seed=args.seed, work_dir=args.work_dir,
        keep=args.keep, profile=args.profile, profile_dir=str(out_dir / "profiles"),
        history_window=args.history_window, source_dir=source_dir, tls=args.tls,
    )  # fmt: skip
    cases = [(s, m) for s in resolve(args.scenario) for m in (args.mode or MODES)]
    started = time.time()
    if args.repeat < 1:
        raise SystemExit("bench: --repeat must be at least 1")
    results = asyncio.run(run_all(cases, settings, args.repeat))
    doc = {
        "benchmark": "ingest",
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "started_unix": round(started, 3),
        "duration_s": round(time.time() - started, 1),
        "environment": report.environment(REPO, args.work_dir),
        "settings": {
            **asdict(settings),
            "group": GROUP,
            "modes": list(args.mode or MODES),
            "rate_tolerance": RATE_TOLERANCE,
            "rpo_p99_goal_s": RPO_P99_GOAL_S,
            "repeat": args.repeat,
        },
        "results": results,
    }
    table = report.render(doc)
    report.write(out_dir, doc, table)
    print(table)
    print(f"\nbench: results in {out_dir}/results.json and table.md", file=sys.stderr)
    if any("error" in r for r in results):
        return 2
    return 1 if args.check and not all(r["goal_met"] for r in results) else 0
