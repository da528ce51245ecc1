"""py-spy profiles of the benchmark's processes, and a summary of where CPU goes.

``py-spy record --format raw --threads --nonblocking`` writes collapsed stacks
("frame;frame;... count") of the threads that were running Python code; :func:`summarize`
turns them into the share of samples per thread, per function on top of the stack (self
time) and per function anywhere in the stack (inclusive). Non-blocking sampling does not
stop the process, so it barely slows it; native frames (``--native``) are off because they
count threads waiting for the GIL as busy. Exact CPU per thread comes from /proc (see
``target_threads_cpu_s`` in the results), not from here.
py-spy is optional: ``pip install py-spy`` into the venv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

RATE_HZ = 100
TOP = 25
_ADDR = re.compile(r" \(0x[0-9a-f]+\)")
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str:
    """Path of the py-spy binary (next to the venv's python, else on PATH)."""
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    found = here if os.path.exists(here) else shutil.which("py-spy")
    if not found:
        raise SystemExit("bench: --profile needs py-spy: .venv/bin/pip install py-spy")
    return found


@dataclass
class PySpy:
    """One py-spy recording of one process."""

    role: str
    pid: int
    raw_path: str
    proc: subprocess.Popen[bytes]
    duration_s: int
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(
        cls, role: str, pid: int, duration_s: int, stem: str, native: bool = False,
        gil: bool = False,
    ) -> PySpy:  # fmt: skip
        """Start recording; ``gil`` samples only the thread holding the GIL."""
        cmd = [py_spy(), "record", "--pid", str(pid), "--duration", str(duration_s),
               "--rate", str(RATE_HZ), "--format", "raw", "--threads",
               "--nonblocking", "--output", f"{stem}.txt"]  # fmt: skip
        if native:
            cmd.append("--native")
        if gil:
            cmd.append("--gil")
        with open(f"{stem}.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        return cls(role, pid, f"{stem}.txt", proc, duration_s)

    def finish(self, timeout_s: float = 120.0) -> None:
        """Wait for the recording to end, then summarize it."""
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait()
        if os.path.exists(self.raw_path):
            self.summary = summarize(self.raw_path, self.duration_s)
            with open(self.raw_path.removesuffix(".txt") + ".summary.txt", "w") as f:
                f.write(render(self.role, self.summary))
        else:
            self.summary = {"error": f"py-spy wrote nothing (exit {self.proc.returncode})"}


def _short(frame: str) -> str:
    """'func (file.py:12)' -> 'func (file.py)', without thread addresses."""
    frame = _ADDR.sub("", frame)
    frame = _LINE.sub(")", frame)
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            frame = head + "(" + tail.rpartition(marker)[2]
    return frame


def summarize(raw_path: str, duration_s: float) -> dict[str, Any]:
    """Shares of samples by thread, by self function and by inclusive function.

    ``busy_pct`` is samples per sampling tick: the average number of threads running Python
    code x 100 (with ``--gil``: the share of time the GIL was held).
    """
    threads: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    total = 0
    with open(raw_path, errors="replace") as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack or not n.isdigit():
                continue
            count = int(n)
            frames = stack.split(";")
            thread, frames = _short(frames[0]), [_short(x) for x in frames[1:]]
            total += count
            threads[thread] += count
            if frames:
                self_fn[frames[-1]] += count
            for fn in set(frames):
                incl_fn[fn] += count

    def shares(c: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / max(total, 1), 1)) for k, v in c.most_common(TOP)]

    return {
        "samples": total,
        "rate_hz": RATE_HZ,
        "duration_s": duration_s,
        "busy_pct": round(100 * total / max(RATE_HZ * duration_s, 1), 1),
        "threads_pct": shares(threads),
        "self_pct": shares(self_fn),
        "inclusive_pct": shares(incl_fn),
    }


def render(role: str, s: dict[str, Any]) -> str:
    """The summary as text."""
    lines = [
        f"{role}: {s['samples']} samples at {s['rate_hz']} Hz over {s['duration_s']} s "
        f"(busy {s['busy_pct']}% of ticks; shares below are of the samples)"
    ]
    for title, key in (("by thread", "threads_pct"), ("self (top of stack)", "self_pct"),
                       ("inclusive", "inclusive_pct")):  # fmt: skip
        lines.append(f"  {title}:")
        lines.extend(f"    {pct:5.1f}%  {name}" for name, pct in s[key])
    return "\n".join(lines) + "\n"
