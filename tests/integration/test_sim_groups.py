"""``cdp sim run --groups N``: one simulated host running N consistency groups side by side
(how the benchmark suite puts 16 VMs on one target), against a real ``cdp target serve``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import TargetProcess, file_digest, free_port

GROUPS = 3


def cdp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdp", *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, Any]]]:
    root = str(tmp_path_factory.mktemp("groups"))
    target = TargetProcess(os.path.join(root, "target"), free_port(), "--history-window", "1h")
    target.start()
    try:
        proc = cdp(
            "sim", "run", "--target", target.address, "--insecure", "--json",
            "--groups", str(GROUPS), "--group", "mg", "--vm", "v", "--disks", "1",
            "--disk-size", "8MiB", "--rate-mb", "3", "--seconds", "1",
            "--dir", os.path.join(root, "source"), "--rpo-log", os.path.join(root, "rpo.jsonl"),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        yield root, target.address, json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        assert target.stop() == 0


def test_each_group_is_its_own_group_and_the_totals_add_up(
    run: tuple[str, str, dict[str, Any]],
) -> None:
    _, _, r = run
    groups = r["groups"]
    assert [g["group"] for g in groups] == [f"mg-{i}" for i in range(GROUPS)]
    assert [[d["vm"] for d in g["disks"]] for g in groups] == [[f"v-{i}"] for i in range(GROUPS)]
    assert r["bytes"] == sum(g["bytes"] for g in groups) > 0
    assert r["writes"] == sum(g["writes"] for g in groups)
    assert r["rpo_p99_s"] == max(g["rpo_p99_s"] for g in groups)
    assert r["source_cpu_s"] > 0 and "source_cpu_s" not in groups[0]
    for g in groups:
        assert g["acked_seq"] == g["writes"] > 0, "every write of every group was acked"


def test_the_target_holds_every_group_durable(run: tuple[str, str, dict[str, Any]]) -> None:
    _, address, r = run
    proc = cdp("status", "--target", address, "--insecure", "--json")
    assert proc.returncode == 0, proc.stderr
    durable = {g["group_id"]: g["durable_seq"] for g in json.loads(proc.stdout)["groups"]}
    assert durable == {g["group"]: g["acked_seq"] for g in r["groups"]}


def test_each_group_logs_its_own_rpo(run: tuple[str, str, dict[str, Any]]) -> None:
    root, _, r = run
    for i, g in enumerate(r["groups"]):
        with open(os.path.join(root, f"rpo.jsonl.{i}")) as f:
            rows = [json.loads(line) for line in f]
        assert len(rows) >= 5 and all(row[1] >= 0 for row in rows)
        assert rows[-1][2] == g["bytes"], "the closing sample counts every byte of the group"


def test_groups_write_their_own_seeded_data_and_export_it(
    run: tuple[str, str, dict[str, Any]], tmp_path: str
) -> None:
    root, address, r = run
    sources = [g["disks"][0]["vmdk"].replace(".vmdk", "-flat.vmdk") for g in r["groups"]]
    assert len({file_digest(p) for p in sources}) == GROUPS, "seed + i: the groups differ"
    out = os.path.join(tmp_path, "v-1.vmdk")
    proc = cdp(
        "image", "export", "--target", address, "--insecure", "--group", "mg-1", "--vm", "v-1",
        "--disk", "0", "--at", "latest", "--out", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert file_digest(out.replace(".vmdk", "-flat.vmdk")) == file_digest(sources[1])
