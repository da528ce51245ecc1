"""``cdp failover`` as an operator runs it: a real subprocess against vcsim and the target."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from helpers import free_port

from .drsite import DrSite, inventory

REPO = Path(__file__).resolve().parents[2]


async def cdp(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``cdp failover ARGS`` (the test's event loop keeps serving the target)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cdp",
        "failover",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_prints_the_readiness_table(site: DrSite) -> None:
    plan = str(site.write_plan())
    code, out, err = await cdp("check", "--plan", plan)
    assert code == 0, err
    assert "vCenter reachable" in out and "PASS" in out
    assert "port groups (test)" in out and "DR-Test-Isolated" in out
    assert out.rstrip().endswith("plan 'dr-test': ready")

    code, out, _ = await cdp("check", "--plan", plan, "--json")
    report = json.loads(out)
    assert code == 0 and report["ready"] is True
    assert {c["status"] for c in report["checks"]} == {"pass"}


async def test_dry_run_then_test_then_status_then_stop_test(site: DrSite) -> None:
    plan = str(site.write_plan())
    before = inventory(site.si)

    code, out, err = await cdp("test", "--plan", plan, "--dry-run")
    assert code == 0, err
    assert "restore point seq 200" in out and "register db01-test on DC0_C0_H" in out
    assert "RTO estimate" in out and "dry run: nothing was changed" in out
    assert inventory(site.si) == before and not site.state_dir.exists()

    code, out, err = await cdp("test", "--plan", plan)
    assert code == 0, err
    assert "power on app01-test (boot group 'app')" in out
    assert "RTO " in out and "time by step: checks" in out

    code, out, err = await cdp("status", "--plan", plan, "--json")
    status = json.loads(out)
    assert status["active"] and status["status"] == "testing"
    assert status["steps_done"] == status["steps"]

    code, out, err = await cdp("stop-test", "--plan", plan)
    assert code == 0, err
    assert "stop-test done" in out
    assert inventory(site.si) == before
    code, out, _ = await cdp("status", "--plan", plan)
    assert "no active operation (last finished: " in out


async def test_errors_exit_codes_and_messages(site: DrSite) -> None:
    data = site.plan_dict()
    data["vcenter"]["url"] = f"https://127.0.0.1:{free_port()}/sdk"
    code, _, err = await cdp("test", "--plan", str(site.write_plan(data)))
    assert code == 3  # vCenter unreachable: like an unreachable target
    errors = [line for line in err.splitlines() if line.startswith("cdp: error:")]
    assert errors and errors[0].startswith("cdp: error: UNAVAILABLE: vCenter 127.0.0.1:"), err
    assert "plan target.insecure" in err  # plain text to the target is never silent
    assert "hint: check vcenter.url" in err

    data = site.plan_dict()
    data["groups"][0]["vms"][0]["cpus"] = "two"
    code, _, err = await cdp("run", "--plan", str(site.write_plan(data, "bad.yaml")))
    assert code == 2
    assert "cdp: error: groups[0].vms[0].cpus: must be an integer, not a string" in err

    data = site.plan_dict()
    data["vcenter"]["credentials"] = {}  # env variables, which are not set
    code, _, err = await cdp(
        "test",
        "--plan",
        str(site.write_plan(data, "env.yaml")),
        env={"CDP_VCENTER_USER": "", "CDP_VCENTER_PASSWORD": ""},
    )
    assert code == 2
    assert "vcenter.credentials: environment variable CDP_VCENTER_USER and " in err

    code, _, err = await cdp("commit", "--plan", str(site.write_plan()))
    assert code == 1
    assert "no live failover of plan 'dr-test' is active, nothing to commit" in err


async def test_run_waits_for_commit_from_another_terminal(site: DrSite) -> None:
    plan = str(site.write_plan())
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cdp",
        "failover",
        "run",
        "--plan",
        plan,
        "--force-split-brain",  # the simulated source still replicates
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    while b"waiting up to 60 s for `cdp failover commit`" not in await proc.stdout.readline():
        assert proc.returncode is None

    code, out, err = await cdp("commit", "--plan", plan)

    assert code == 0, err
    assert "committed: the recovered VMs of plan 'dr-test' are production" in out
    rest, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert b"decision: committed by another command" in rest
    assert {v[0]: v[2] for v in inventory(site.si)} == {"db01": "poweredOn", "app01": "poweredOn"}


async def test_run_detach_applies_the_commit_deadline_with_nobody_watching(site: DrSite) -> None:
    """Issue 13 #10: `run --detach` returns at once; a background process owns the
    operation and its commit deadline, and applies `default_action` on time although no
    terminal stays open (the test only polls `status`, which changes nothing)."""
    data = site.plan_dict()
    data["commit"] = {"timeout_s": 3, "default_action": "commit"}
    plan = str(site.write_plan(data))

    # the simulated source still replicates: the detached owner gets the override too
    code, out, err = await cdp("run", "--plan", plan, "--detach", "--force-split-brain")

    assert code == 0, out + err
    assert f"cdp failover status --plan {plan}" in out, out
    assert "detached.log" in out, out
    folder = site.state_dir / "dr-test"
    owner = int((folder / "owner").read_text())
    give_up = time.monotonic() + 90
    while True:
        code, out, err = await cdp("status", "--plan", plan, "--json")
        assert code == 0, err
        status = json.loads(out)
        if status.get("state") == "failed over, committed":
            break
        assert time.monotonic() < give_up, (status, (folder / "detached.log").read_text())
        await asyncio.sleep(0.5)
    (record,) = (folder / "history").glob("*-live-committed.json")
    done = json.loads(record.read_text())
    late = done["committed_unix"] - done["commit_deadline_unix"]
    assert 0 <= late < 2.5, late  # applied on time by the detached owner
    log = (folder / "detached.log").read_text()
    assert "commit timeout reached: applying the plan's default_action: commit" in log, log
    while _alive(owner):  # the owner exits once the decision is made
        assert time.monotonic() < give_up
        await asyncio.sleep(0.1)
    assert {v[0]: v[2] for v in inventory(site.si)} == {"db01": "poweredOn", "app01": "poweredOn"}


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
