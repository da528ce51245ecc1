"""Issue 11 defect 1 as a user meets it, with real processes: kill -9 a `cdp sim run`
source, restart it on the same --dir (a full resync starts), SIGTERM it while the target
says resyncing, restart it. The span of the interrupted resync never becomes restorable:
`cdp timeline` keeps it a resync gap, and an `at` time inside it never resolves to a seq
inside it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from helpers import TargetProcess, free_port

GROUP = "ri"


def _sim(address: str, folder: str, seconds: float, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cdp", "sim", "run", "--target", address, "--insecure",
         "--dir", folder, "--group", GROUP, "--disks", "2", "--disk-size", "64MiB",
         "--region-size", "64KiB", "--seconds", str(seconds), "--seed", str(seed),
         "--rate-mb", "20"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _cli(*args: str, missing_ok: bool = False) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "cdp", *args, "--insecure", "--json"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if missing_ok and "NOT_FOUND" in proc.stderr:
        return {"groups": []}
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _status(address: str) -> dict[str, Any]:
    groups = _cli("status", "--target", address, "--group", GROUP, missing_ok=True)["groups"]
    return dict(groups[0]) if groups else {}


def _resync_gap(address: str) -> dict[str, Any] | None:
    spans = _cli("timeline", "--target", address, "--group", GROUP)["spans"]
    gaps = [s for s in spans if not s["restorable"] and s["cause"].startswith("resync")]
    return dict(gaps[-1]) if gaps else None


def test_interrupted_resync_stays_a_gap_after_the_source_restarts(tmp_path: str) -> None:
    target = TargetProcess(os.path.join(tmp_path, "t"), free_port(), "--history-window", "1h")
    target.start()
    folder = os.path.join(tmp_path, "src")
    try:
        first = _sim(target.address, folder, 60, 1)
        deadline = time.monotonic() + 20
        while _status(target.address).get("durable_seq", 0) < 200:
            assert time.monotonic() < deadline, "the first source never replicated"
        first.send_signal(signal.SIGKILL)
        first.wait()

        second = _sim(target.address, folder, 60, 2)  # same disks: a full resync starts
        deadline = time.monotonic() + 20
        while _status(target.address).get("state") != "resyncing":
            assert second.poll() is None and time.monotonic() < deadline, "no resync seen"
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
        gap = _resync_gap(target.address)
        assert gap is not None and "in progress" in gap["cause"], gap
        inside_end = _status(target.address)["durable_seq"]

        third = _sim(target.address, folder, 3, 3)
        assert third.wait(timeout=60) == 0
        spans = _cli("timeline", "--target", target.address, "--group", GROUP)["spans"]
        for s in spans:
            if s["restorable"]:
                assert s["end_seq"] < gap["start_seq"] or s["start_seq"] > inside_end, (
                    f"restorable span {s['start_seq']}..{s['end_seq']} inside the interrupted "
                    f"resync {gap['start_seq']}..{inside_end}"
                )
        plan = _cli("image", "export", "--target", target.address, "--group", GROUP,
                    "--vm", "sim-vm", "--disk", "0", "--at", gap["end"], "--dry-run",
                    "--out", os.path.join(tmp_path, "x.vmdk"))  # fmt: skip
        assert int(plan["point"]["seq"]) < gap["start_seq"], plan
    finally:
        target.stop_or_kill()
