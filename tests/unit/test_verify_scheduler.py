"""Scheduled verification: the ``verify:`` list of the target's config (every bad value
named by its key path) and the scheduler's step, with real plan files and real
verification records in the plans' state folders."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdp.cli.target_config import VerifySchedule, parse_config
from cdp.cli.verify_scheduler import Scheduler
from cdp.errors import ConfigError
from cdp.failover.verify import history, record_name, records_dir

BASE: dict[str, Any] = {"data_dir": "/var/lib/cdp"}


def test_verify_entries_parse_with_defaults() -> None:
    entries = [
        {"plan": "/etc/cdp/plans/dr.yaml", "every": "24h"},
        {"plan": "/p/b.yaml", "every": 3600, "keep": 5},
    ]
    assert parse_config({**BASE, "verify": entries}).verify == (
        VerifySchedule("/etc/cdp/plans/dr.yaml", 86400.0, 30),
        VerifySchedule("/p/b.yaml", 3600.0, 5),
    )
    assert parse_config(BASE).verify == ()


@pytest.mark.parametrize(
    ("verify", "key"),
    [
        ("dr.yaml", "verify"),
        ([{"every": "1h"}], "verify[0].plan"),
        ([{"plan": "/a.yaml"}], "verify[0].every"),
        ([{"plan": "/a.yaml", "every": "1m"}], "verify[0].every"),
        ([{"plan": "/a.yaml", "every": "soon"}], "verify[0].every"),
        ([{"plan": "/a.yaml", "every": "1h", "keep": 0}], "verify[0].keep"),
        ([{"plan": "/a.yaml", "every": "1h", "when": "x"}], "verify[0].when"),
        (
            [{"plan": "/a.yaml", "every": "1h"}, {"plan": "/a.yaml", "every": "2h"}],
            "verify[1].plan",
        ),
    ],
)
def test_a_bad_verify_entry_is_named(verify: object, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, "verify": verify})
    assert info.value.field == key


def write_plan(root: Path, name: str) -> str:
    """A plan file that loads (the scheduler reads only its name and state folder)."""
    plan = {
        "version": 1, "name": name, "target": {"address": "127.0.0.1:1", "insecure": True},
        "state_dir": str(root / "state"),
        "vcenter": {"url": "https://127.0.0.1:1/sdk", "credentials": {"file": str(root / "c")},
                    "tls": {"verify": False}},
        "recovery": {"datacenter": "DC0", "cluster": "C0",
                     "datastore": {"name": "ds", "path": str(root / "ds")}},
        "network_mappings": [{"source": "VM Network", "live": "L", "test": "T"}],
        "groups": [{"name": "g1", "vms": [{"name": "vm1", "nics": [{"network": "VM Network"}]}]}],
    }  # fmt: skip
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return str(path)


def record(root: Path, plan: str, started: float) -> None:
    folder = Path(records_dir(str(root / "state" / plan)))
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"started_unix": started, "result": "passed", "points": {}, "vms": [], "seconds": 1.0}
    (folder / record_name(started)).write_text(json.dumps(rec))


async def test_due_plans_run_in_turn_and_records_are_pruned(tmp_path: Path) -> None:
    now = time.time()
    a, b = write_plan(tmp_path, "a"), write_plan(tmp_path, "b")
    for i in range(4):
        record(tmp_path, "a", now - 7200 - i * 3600)  # newest 2 h ago: due (every 1 h)
    record(tmp_path, "b", now - 600)  # 10 min ago: not due (every 1 h)
    ran: list[str] = []

    async def runner(s: VerifySchedule) -> int:
        ran.append(s.plan)
        record(tmp_path, Path(s.plan).stem, time.time())  # what `cdp failover verify` does
        return 0

    sched = Scheduler((VerifySchedule(a, 3600.0, 3), VerifySchedule(b, 3600.0, 3)), runner)
    assert [(s.plan, code) for s, code in await sched.run_due(now)] == [(a, 0)]
    assert ran == [a]
    assert len(history(str(tmp_path / "state" / "a"))) == 3  # 5 records, the newest 3 kept
    assert await sched.run_due(time.time()) == []  # a just ran, b not due yet
    assert sched.sleep_s(time.time()) == 60.0  # b is due in 50 min: look again in a minute
    assert sched.sleep_s(now + 3000 - 30) == pytest.approx(30, abs=1)  # b due in 30 s
    assert len(await sched.run_due(now + 3601)) == 2  # an hour on, both are due


async def test_a_plan_never_verified_is_due_and_a_broken_one_skipped(tmp_path: Path) -> None:
    good = write_plan(tmp_path, "fresh")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [")
    ran: list[str] = []

    async def runner(s: VerifySchedule) -> int:
        ran.append(s.plan)
        return 1  # a failed verification is recorded by the child; the scheduler goes on

    sched = Scheduler((VerifySchedule(str(broken), 3600.0), VerifySchedule(good, 3600.0)), runner)
    assert [code for _, code in await sched.run_due(time.time())] == [1]
    assert ran == [good]


def test_the_command_runs_once_and_names_a_bad_config(tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(config: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "target.yaml"
        path.write_text(config)
        return subprocess.run(
            [sys.executable, "-m", "cdp", "failover", "verify-scheduler", "--config", str(path),
             "--once"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    done = run("data_dir: /d\n")
    assert done.returncode == 0 and "no verify: entries" in done.stderr
    bad = run("data_dir: /d\nverify:\n  - plan: /p.yaml\n    every: 10s\n")
    assert bad.returncode == 2 and "verify[0].every" in bad.stderr
    missing = run(f"data_dir: /d\nverify:\n  - plan: {tmp_path}/none.yaml\n    every: 1h\n")
    assert missing.returncode == 0 and "cannot read the plan, skipped" in missing.stderr
