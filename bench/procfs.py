"""Readings of /proc: a process's CPU (whole and per thread) and I/O, the machine's CPU.

Owns the parsing of /proc/<pid>/stat, /proc/<pid>/task/*/stat, /proc/<pid>/io and
/proc/stat for the benchmarks; Linux only. It reads, never starts or signals a process.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import Any

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(path: str) -> tuple[str, list[str]]:
    """(command name, the fields after it) of a /proc stat file; OSError when it is gone.

    The name is between the first "(" and the last ")", and may hold spaces and ")".
    """
    with open(path) as f:
        head, _, rest = f.read().rpartition(")")
    return head.partition("(")[2], rest.split()


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    fields = _stat(f"/proc/{pid}/stat")[1]
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


def proc_cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = _stat(f"/proc/{pid}/stat")[1]
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


@dataclass
class MachineReading:
    """CPU use of the whole machine at one instant (seconds since boot)."""

    busy_s: float
    """user + nice + system + irq + softirq + steal of /proc/stat."""
    iowait_s: float
    kernel_threads_s: float
    """Children of kthreadd (pid 2), e.g. the page cache writeback workers."""
    processes: dict[int, tuple[str, float]]
    """Every user process: pid -> (name, CPU seconds)."""


def machine_cpu() -> MachineReading:
    """Read /proc/stat and every /proc/<pid>/stat."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + (cpu[7] if len(cpu) > 7 else 0)
    kernel = 0
    procs: dict[int, tuple[str, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            comm, fields = _stat(f"/proc/{name}/stat")
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])
        if fields[1] == "2" or name == "2":
            kernel += ticks
        else:
            procs[int(name)] = (comm, ticks / _CLK_TCK)
    return MachineReading(busy / _CLK_TCK, cpu[4] / _CLK_TCK, kernel / _CLK_TCK, procs)


def other_processes(
    before: MachineReading, after: MachineReading, skip: set[int], top: int = 5
) -> list[list[Any]]:
    """The busiest other processes alive at both readings: [[pid, name, CPU seconds]].

    Processes that start and end inside the window (a test run's subprocesses) are not
    listed; their CPU is in ``other_cpu_s``.
    """
    rows = []
    for pid, (name, cpu) in after.processes.items():
        if pid in skip or pid not in before.processes:
            continue
        used = cpu - before.processes[pid][1]
        if used >= 0.05:
            rows.append([pid, name, round(used, 2)])
    return sorted(rows, key=lambda r: -r[2])[:top]


def self_cpu_s() -> float:
    """User + system CPU seconds of this process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


ThreadCpu = dict[int, tuple[str, float, float]]
"""tid -> (name, user CPU seconds, system CPU seconds)."""


def proc_threads_cpu_s(pid: int) -> ThreadCpu:
    """User and system CPU seconds of each thread of a process."""
    out: ThreadCpu = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            comm, fields = _stat(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue
        out[int(tid)] = (comm, int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK)
    return out


def thread_cpu_delta(before: ThreadCpu, after: ThreadCpu, pid: int) -> list[list[Any]]:
    """[[tid, name, CPU s, user s, system s]] of the threads that used CPU between two
    readings, busiest first; the thread whose tid is ``pid`` is named "main"."""
    rows = []
    for tid, (comm, user, system) in after.items():
        _, user0, system0 = before.get(tid, (comm, 0.0, 0.0))
        u, s = user - user0, system - system0
        if u + s > 0:
            name = "main" if tid == pid else comm
            rows.append([tid, name, round(u + s, 2), round(u, 2), round(s, 2)])
    return sorted(rows, key=lambda r: -r[2])


def proc_io(pid: int) -> dict[str, int]:
    """/proc/<pid>/io as a dict ({} if the process is gone or the file is unreadable)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            pairs = (line.partition(": ") for line in f)
            return {k: int(v) for k, _, v in pairs if v.strip()}
    except (OSError, ValueError):
        return {}
