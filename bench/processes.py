"""The benchmarks' child processes: start ``cdp target serve``, stop a process, read logs.

Owns how a benchmark runs cdp as a separate process (the repository on PYTHONPATH, the
ready file, SIGTERM then SIGKILL) and :class:`CaseError`, the error of a case that could
not be run to the end. Measuring is not its business (bench/procfs.py, bench/monitor.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
"""How long ``cdp target serve`` may take to write its ready file."""


class CaseError(Exception):
    """A case could not be run to the end."""


def env() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH (so children import it)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


async def start_target(
    python: str, root: str, history_window: str = "0", tls: bool = False
) -> tuple[subprocess.Popen[bytes], str, int]:
    """Start ``cdp target serve`` on a free loopback port; return it, its address and pid."""
    ready = os.path.join(root, "target.ready")
    cmd = [python, "-m", "cdp", "target", "serve", "--data-dir", os.path.join(root, "target"),
           "--listen", "127.0.0.1:0", "--ready-file", ready,
           "--history-window", history_window,
           *tls_flags(root, "target" if tls else "")]  # fmt: skip
    with open(os.path.join(root, "target.log"), "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log_tail = tail(root, "target.log")
            raise CaseError(f"the target exited with {proc.returncode}: {log_tail}")
        if os.path.exists(ready):
            with open(ready) as f:
                info = json.load(f)
            return proc, str(info["address"]), int(info["pid"])
        await asyncio.sleep(0.05)
    stop_process(proc)
    raise CaseError(f"the target did not start within {READY_TIMEOUT_S:.0f} s")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout_s``; return the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def tls_flags(root: str, party: str) -> list[str]:
    """``--tls-dir <root>/certs/<party>``, or ``--insecure`` when ``party`` is empty."""
    return ["--tls-dir", os.path.join(root, "certs", party)] if party else ["--insecure"]


def tail(root: str, name: str, lines: int = 15) -> str:
    """The last ``lines`` lines of the log ``<root>/<name>``, for an error message."""
    try:
        with open(os.path.join(root, name), errors="replace") as f:
            return "\n".join(f.read().splitlines()[-lines:])
    except OSError:
        return "(no log)"
