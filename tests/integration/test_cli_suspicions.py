"""``cdp points``, ``timeline``, ``status``, ``suspicions`` and ``image export --at last-clean``
as a user meets them: real ``python -m cdp`` subprocesses against a real target (gRPC on
port 0, RocksDB, files). The target runs in this process so the test can play the
detector's part (``Verdicts.start_watching``); the CLI runs as asyncio subprocesses so the
event loop keeps serving while it waits.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Running, start_target, stop_target
from test_verdict_surfaces import GROUP, VM, watch_from, write


async def cdp(*args: str) -> tuple[int, str, str]:
    """Run ``python -m cdp ARGS``; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ok(*args: str) -> str:
    code, out, err = await cdp(*args)
    assert code == 0, f"exit {code}\n{out}\n{err}"
    return out


def last_json(out: str) -> dict[str, Any]:
    data = json.loads(out.strip().splitlines()[-1])
    assert isinstance(data, dict)
    return data


@pytest.mark.slow  # ~17 CLI subprocesses: the only proof of the CLI surfaces end to end
async def test_on_call_flow_from_alert_to_dismissal(tmp_path: Path) -> None:
    r: Running = await start_target(str(tmp_path / "t"), history_window_s=3600.0)
    try:
        await write(r, 10)  # points at seqs 4, 8, ..., 40
        watch_from(r, 1)
        g = ["--target", r.address, "--insecure", "--group", GROUP]
        assert "ALERT" not in await ok("status", "--target", r.address, "--insecure")
        code, _, err = await cdp("suspicions", "mark", *g, "--from-seq", "0", "--reason", "x")
        assert code == 2 and "--from-seq" in err
        out = await ok("suspicions", "mark", *g, "--from-seq", "22", "--reason", "EDR alert 7")
        assert "marked s-1" in out and "seq 22" in out
        status = await ok("status", "--target", r.address, "--insecure")
        alert = next(line for line in status.splitlines() if line.startswith("ALERT"))
        assert f"ALERT {GROUP}: 1 standing suspicion" in alert
        assert "last clean point seq 20" in alert and "since 20" in alert  # the onset's year
        points = await ok("points", "list", *g, "--all")
        assert "VERDICT" in points.splitlines()[0]
        rows = {int(line.split()[0]): line for line in points.splitlines()[1:]}
        assert "clean" in rows[20] and "SUSPECT" in rows[24] and "SUSPECT" in rows[40]
        verdicts = {p["seq"]: p["verdict"] for p in last_json(
            await ok("points", "list", *g, "--all", "--json"))["points"]}  # fmt: skip
        assert (verdicts[20], verdicts[24]) == ("clean", "suspect")
        timeline = await ok("timeline", *g)
        assert "SUSPECT (s-1: marked compromised)" in timeline and "22-40" in timeline
        listed = last_json(await ok("suspicions", "list", *g, "--json"))["suspicions"]
        assert [(s["id"], s["start_seq"], s["raised_by"], s["reason"]) for s in listed] == [
            ("s-1", 22, "insecure", "EDR alert 7")
        ]
        table = await ok("suspicions", "list", *g)
        assert "STANDING (open)" in table and "EDR alert 7" in table
        out_vmdk = str(tmp_path / "clean.vmdk")
        exported = last_json(await ok(
            "image", "export", *g, "--vm", VM, "--at", "last-clean", "--out", out_vmdk, "--json"
        ))  # fmt: skip
        assert exported["point"]["seq"] == 20  # before the onset (seq 22)
        code, _, err = await cdp("suspicions", "dismiss", *g, "s-9", "--reason", "nope")
        assert code == 3 and "NOT_FOUND" in err and "s-9" in err
        out = await ok("suspicions", "dismiss", *g, "s-1", "--reason", "benign: media copy")
        assert "dismissed s-1 (by insecure" in out
        await ok("suspicions", "dismiss", *g, "s-1", "--reason", "again")  # idempotent
        assert "ALERT" not in await ok("status", "--target", r.address, "--insecure")
        assert "SUSPECT" not in await ok("timeline", *g)
        audit = await ok("audit", "--target", r.address, "--insecure")
        assert "suspicion.mark" in audit and "suspicion.dismiss" in audit
    finally:
        await stop_target(r)
