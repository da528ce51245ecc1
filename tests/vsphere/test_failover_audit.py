"""Failover operations leave an audit trail: at the target (``cdp audit``) and in the
plan's state folder beside the step log, with identity and outcome; an unreachable target
never fails the operation's record, the local entry says it was not recorded there."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from helpers import free_port

from cdp.audit import AuditEntry
from cdp.verified import latest

from .drsite import DrSite
from .test_failover_cli import REPO, cdp


async def cdp_top(*args: str) -> tuple[int, str, str]:
    """Run ``cdp ARGS`` (not under ``failover``)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def local_entries(site: DrSite) -> list[dict[str, Any]]:
    path = site.state_dir / "dr-test" / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_test_and_stop_test_are_audited_at_the_target_and_locally(site: DrSite) -> None:
    plan = str(site.write_plan())
    assert (await cdp("test", "--plan", plan, "--dry-run"))[0] == 0  # changes nothing: no entry
    code, _, err = await cdp("test", "--plan", plan)
    assert code == 0, err
    code, _, err = await cdp("stop-test", "--plan", plan)
    assert code == 0, err
    code, _, err = await cdp("stop-test", "--plan", plan)  # nothing to stop: an error
    assert code != 0

    code, out, err = await cdp_top("audit", "--target", site.target.address, "--insecure",
                                   "--json")  # fmt: skip
    assert code == 0, err
    remote = [e for e in json.loads(out)["entries"] if e["action"].startswith("failover.")]
    assert [(e["action"], e["identity"]) for e in remote] == [
        ("failover.test", "insecure"), ("failover.stop-test", "insecure"),
        ("failover.stop-test", "insecure"),
    ]  # fmt: skip
    assert [e["outcome"] for e in remote[:2]] == ["ok", "ok"]
    assert remote[2]["outcome"].startswith("error: ")
    assert "plan dr-test" in remote[0]["object"] and "at default point" in remote[0]["object"]

    local = local_entries(site)
    assert [(e["action"], e["outcome"][:5]) for e in local] == [
        ("failover.test", "ok"), ("failover.stop-test", "ok"), ("failover.stop-test", "error"),
    ]  # fmt: skip
    assert all(e["identity"] == "insecure" for e in local)
    assert all("not recorded at the target" not in e["object"] for e in local)


async def test_an_unreachable_target_is_said_in_the_local_record(site: DrSite) -> None:
    data = site.plan_dict(target={"address": f"127.0.0.1:{free_port()}", "insecure": True})
    plan = str(site.write_plan(data))
    code, _, _ = await cdp("test", "--plan", plan)
    assert code != 0  # the readiness check fails: the target is down
    (entry,) = local_entries(site)
    assert entry["action"] == "failover.test" and entry["outcome"].startswith("error: ")
    assert "not recorded at the target" in entry["object"]


async def test_verify_tells_the_target_each_groups_verified_point(site: DrSite) -> None:
    plan = str(site.write_plan())
    code, out, err = await cdp("verify", "--plan", plan, "--json", "--every", "3600")
    rec = json.loads(out)
    assert code == (0 if rec["result"] == "passed" else 1), err
    code, out, err = await cdp_top("audit", "--target", site.target.address, "--insecure",
                                   "--json")  # fmt: skip
    assert code == 0, err
    entries = [AuditEntry(e["time_unix_ns"], e["identity"], e["action"], e["object"],
                          e["outcome"]) for e in json.loads(out)["entries"]]  # fmt: skip
    assert [e.action for e in entries] == ["verify.point", "failover.verify"]
    ((group, facts),) = latest(entries).items()
    point = rec["points"][group]
    assert facts.last_run.result == rec["result"] and facts.every_s == 3600.0
    assert (facts.last_run.seq, facts.last_run.point_unix_ns) == (point["seq"], point["time_ns"])
    assert (facts.last_passed is not None) == (rec["result"] == "passed")
    code, out, err = await cdp_top("status", "--target", site.target.address, "--insecure")
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.strip().startswith(f"verified {group}"))
    if rec["result"] == "passed":
        assert f"point seq {point['seq']} (" in line and "newest run" not in line
    else:
        assert f"newest run {rec['result'].upper()}" in line
    code, out, err = await cdp_top("status", "--target", site.target.address, "--insecure",
                                   "--json")  # fmt: skip
    (g,) = [g for g in json.loads(out)["groups"] if g["group_id"] == group]
    assert g["last_verified"]["last_verify_result"] == rec["result"]
