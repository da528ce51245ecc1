"""The ``cdp`` command line as a user meets it: real subprocesses against a real
``cdp target serve`` process, with data written by ``cdp sim run``.

One target serves the whole module (history window 1 h, so every write stays in the
journal and images go through the point-in-time path); ``cdp demo`` runs on its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import TargetProcess, free_port

GROUP = "cli-group"
VM = "cli-vm"
BOOKMARK = "after-sim"
QEMU_IMG = shutil.which("qemu-img")


def cdp(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cdp ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "cdp", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def last_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object on the last line of stdout (the --json contract)."""
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no stdout; stderr:\n{proc.stderr}"
    data = json.loads(lines[-1])
    assert isinstance(data, dict)
    return data


def usage_error(proc: subprocess.CompletedProcess[str], flag: str) -> None:
    """Exit code 2 and a message on stderr naming ``flag``; no traceback."""
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert flag in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


@dataclass
class Served:
    """The module's target, and what ``cdp sim run`` wrote to it."""

    target: TargetProcess
    address: str
    root: str
    source_dir: str
    sim: dict[str, Any]
    sim_started: float

    def g(self, *args: str) -> list[str]:
        """``--target ADDR --insecure --group G`` followed by ``args``."""
        return ["--target", self.address, "--insecure", "--group", GROUP, *args]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = str(tmp_path_factory.mktemp("cli"))
    target = TargetProcess(os.path.join(root, "target"), free_port(), "--history-window", "1h")
    target.start()
    try:
        source_dir = os.path.join(root, "source")
        started = time.monotonic()
        proc = ok(
            cdp(
                "sim",
                "run",
                "--target",
                target.address,
                "--insecure",
                "--json",
                "--seconds",
                "1",
                "--rate-mb",
                "5",
                "--group",
                GROUP,
                "--vm",
                VM,
                "--disk-size",
                "8MiB",
                "--dir",
                source_dir,
            )  # fmt: skip
        )
        yield Served(target, target.address, root, source_dir, last_json(proc), started)
    finally:
        assert target.stop() == 0


# -- help ----------------------------------------------------------------------------------

SUBCOMMANDS = ["demo", "target", "sim", "status", "points", "timeline", "image"]
HELP = {
    "cdp": ([], SUBCOMMANDS),
    "demo": (["demo"], ["--seconds", "--rate-mb", "--json"]),
    "target serve": (["target", "serve"], ["--data-dir", "--listen", "--history-window", "--http"]),
    "sim run": (["sim", "run"], ["--target", "--seconds", "--block-size", "--json"]),
    "status": (["status"], ["--target", "--group", "--json"]),
    "points list": (["points", "list"], ["--target", "--group", "--all", "--json"]),
    "points bookmark": (["points", "bookmark"], ["name", "--target", "--group", "--json"]),
    "timeline": (["timeline"], ["--target", "--group", "--json"]),
    "image export": (["image", "export"], ["--at", "--out", "--force", "--dry-run"]),
}


@pytest.mark.parametrize("command", list(HELP))
def test_help(command: str) -> None:
    argv, words = HELP[command]
    proc = ok(cdp(*argv, "--help"))
    assert proc.stdout.startswith("usage: cdp"), proc.stdout
    for w in words:
        assert w in proc.stdout, (w, proc.stdout)


@pytest.mark.parametrize("group", ["target", "sim", "points", "image"])
def test_group_command_lists_its_subcommands(group: str) -> None:
    proc = ok(cdp(group, "--help"))
    sub = {"target": "serve", "sim": "run", "points": "bookmark", "image": "export"}[group]
    assert sub in proc.stdout


def test_no_command_is_a_usage_error() -> None:
    proc = cdp()
    assert proc.returncode == 2 and "usage: cdp" in proc.stderr


# -- sim run, status -----------------------------------------------------------------------


def test_sim_run_json(served: Served) -> None:
    r = served.sim
    for key in ("writes", "bytes", "acked_seq", "rpo_p50_s", "rpo_p99_s", "rpo_max_s", "mb_per_s"):
        assert key in r, key
    assert r["writes"] > 0 and r["bytes"] >= r["writes"] * 512
    assert r["acked_seq"] == r["writes"]
    assert 0 <= r["rpo_p50_s"] <= r["rpo_p99_s"] <= r["rpo_max_s"]
    assert r["mb_per_s"] > 0
    assert r["group"] == GROUP
    assert [(d["vm"], d["disk"]) for d in r["disks"]] == [(VM, 0), (VM, 1)]
    assert r["disks"][0]["vmdk"] == os.path.join(served.source_dir, VM, f"{VM}_0.vmdk")


def test_status_json(served: Served) -> None:
    data = last_json(ok(cdp("status", "--target", served.address, "--insecure", "--json")))
    assert data["target"] == served.address
    (g,) = [g for g in data["groups"] if g["group_id"] == GROUP]
    assert g["durable_seq"] == served.sim["acked_seq"]
    assert g["state"] == "disconnected"  # the sim has finished and closed its session
    assert g["applied_seq"] == 0  # a one-hour history: nothing has left the journal
    assert g["journal_bytes"] > 0
    assert [vm["vm_id"] for vm in g["vms"]] == [VM]


def test_status_of_one_group_json(served: Served) -> None:
    data = last_json(
        ok(cdp("status", "--target", served.address, "--insecure", "--group", GROUP, "--json"))
    )
    assert [g["group_id"] for g in data["groups"]] == [GROUP]


def test_status_text_is_a_table(served: Served) -> None:
    proc = ok(cdp("status", "--target", served.address, "--insecure"))
    header, *rows = proc.stdout.strip().splitlines()
    assert header.split()[:3] == ["GROUP", "STATE", "DURABLE"]
    assert "APPLIED SEQ" in header and "LAG" in header
    (row,) = [r for r in rows if r.startswith(GROUP)]
    assert "disconnected" in row and f"{served.sim['acked_seq']:,}" in row
    assert header.split()[-1] == "LIFECYCLE" and row.split()[-1] == "protecting"


def test_status_of_unknown_group_exits_3(served: Served) -> None:
    proc = cdp("status", "--target", served.address, "--insecure", "--group", "nope")
    assert proc.returncode == 3, proc.stderr
    assert "NOT_FOUND" in proc.stderr and "nope" in proc.stderr


# -- points, bookmark, timeline ----------------------------------------------------------


def test_points_list_has_checkpoints_after_a_second(served: Served) -> None:
    """Runs before the module's bookmark is made (a bookmark retags its point)."""
    deadline = time.monotonic() + 5
    while True:  # the target tags the newest durable point as a checkpoint every second
        data = last_json(ok(cdp("points", "list", *served.g("--json"))))
        kinds = [p["kind"] for p in data["points"]]
        if "checkpoint" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "checkpoint" in kinds, kinds


@pytest.fixture(scope="module")
def bookmarked(served: Served) -> dict[str, Any]:
    """The bookmark at the drained state of the sim (created once per module)."""
    proc = ok(cdp("points", "bookmark", BOOKMARK, *served.g("--json")))
    return last_json(proc)


def test_points_bookmark_json(served: Served, bookmarked: dict[str, Any]) -> None:
    assert bookmarked["group"] == GROUP
    b = bookmarked["bookmark"]
    assert b["seq"] == served.sim["acked_seq"]
    assert b["kind"] == "bookmark" and b["label"] == BOOKMARK
    assert b["time"].endswith("+00:00")


def test_points_bookmark_twice_exits_3_already_exists(
    served: Served, bookmarked: dict[str, Any]
) -> None:
    proc = cdp("points", "bookmark", BOOKMARK, *served.g())
    assert proc.returncode == 3, proc.stderr
    assert "ALREADY_EXISTS" in proc.stderr and BOOKMARK in proc.stderr


@pytest.mark.parametrize("name", ["latest", "42", "2026-05-01"])
def test_points_bookmark_reserved_name_exits_3_invalid(served: Served, name: str) -> None:
    proc = cdp("points", "bookmark", name, *served.g())
    assert proc.returncode == 3, proc.stderr
    assert "INVALID_ARGUMENT" in proc.stderr and "name" in proc.stderr


def test_points_list_json(served: Served, bookmarked: dict[str, Any]) -> None:
    data = last_json(ok(cdp("points", "list", *served.g("--json"))))
    assert data["group"] == GROUP
    points = data["points"]
    assert {"seq", "time", "source_time_unix_ns", "kind", "label"} <= set(points[0])
    assert {p.pop("verdict") for p in points} <= {"clean", "suspect", "unknown"}
    marks = [p for p in points if p["kind"] == "bookmark"]
    assert marks == [bookmarked["bookmark"]]
    assert all(p["kind"] != "crash-consistent" for p in points)  # labelled only by default
    seqs = [p["seq"] for p in points]
    assert seqs == sorted(seqs)  # a bookmark is listed as its own entry at its point's seq
    assert len({(p["seq"], p["kind"], p["label"]) for p in points}) == len(points)


def test_points_list_all_lists_more(served: Served, bookmarked: dict[str, Any]) -> None:
    labelled = last_json(ok(cdp("points", "list", *served.g("--json"))))["points"]
    everything = last_json(ok(cdp("points", "list", *served.g("--all", "--json"))))["points"]
    assert len(everything) > len(labelled)
    assert {p["seq"] for p in labelled} <= {p["seq"] for p in everything}
    assert "crash-consistent" in {p["kind"] for p in everything}
    assert everything[-1]["seq"] == served.sim["acked_seq"]
    limited = last_json(ok(cdp("points", "list", *served.g("--all", "--limit", "3", "--json"))))
    assert limited["points"] == everything[:3]


def test_points_list_text_is_a_table(served: Served, bookmarked: dict[str, Any]) -> None:
    proc = ok(cdp("points", "list", *served.g()))
    header, *rows = proc.stdout.strip().splitlines()
    assert header.split() == ["SEQ", "TIME", "(UTC)", "KIND", "VERDICT", "LABEL"]
    assert any(BOOKMARK in r and "bookmark" in r for r in rows)


def test_points_list_empty_range(served: Served) -> None:
    proc = ok(cdp("points", "list", *served.g("--until", "2001-01-01T00:00:00")))
    assert "no restorable points" in proc.stdout
    data = last_json(ok(cdp("points", "list", *served.g("--until", "2001-01-01", "--json"))))
    assert data["points"] == []


@pytest.mark.parametrize(
    ("flag", "value"), [("--since", "yesterday"), ("--until", "2026-13-45"), ("--limit", "-1")]
)
def test_points_list_bad_flag_exits_2(served: Served, flag: str, value: str) -> None:
    usage_error(cdp("points", "list", *served.g(flag, value)), flag)


@pytest.mark.parametrize(("flag", "value"), [("--since", "2999-01-01"), ("--until", "1000-01-01")])
def test_points_list_time_out_of_range_exits_2(served: Served, flag: str, value: str) -> None:
    usage_error(cdp("points", "list", *served.g(flag, value)), flag)


def test_timeline_json(served: Served, bookmarked: dict[str, Any]) -> None:
    data = last_json(ok(cdp("timeline", *served.g("--json"))))
    assert data["group"] == GROUP
    (span,) = data["spans"]
    assert span["restorable"] and span["cause"] == ""
    assert span["end_seq"] == served.sim["acked_seq"]
    assert span["points"] >= 2 and span["start"] and span["end"]
    assert data["history_window_s"] == 3600
    assert data["journal_bytes"] > 0 and data["journal_limit_bytes"] > data["journal_bytes"]


def test_timeline_health_ok_after_the_source_went_idle(served: Served) -> None:
    # the sim wrote for 1 s; wait until the group has been idle for longer than that
    time.sleep(max(0.0, served.sim_started + served.sim["seconds"] * 3 + 1 - time.monotonic()))
    proc = cdp("timeline", *served.g("--json"))
    data = last_json(proc)
    assert data["history_health"] == "ok", data["history_message"]
    assert not data["history_message"] and proc.returncode == 0


def test_timeline_text(served: Served) -> None:
    proc = cdp("timeline", *served.g())
    assert proc.returncode in (0, 1), proc.stderr  # 1 only when the health is "error"
    header, span, *_ = proc.stdout.strip().splitlines()
    assert header.split()[:2] == ["FROM", "(UTC)"]
    assert "restore points" in span
    assert "history:" in proc.stdout and "window" in proc.stdout


def test_timeline_of_unknown_group_exits_3(served: Served) -> None:
    proc = cdp("timeline", "--target", served.address, "--insecure", "--group", "nope")
    assert proc.returncode == 3 and "NOT_FOUND" in proc.stderr


# -- image export ------------------------------------------------------------------------


def export(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    return cdp("image", "export", *served.g("--vm", VM, *args))


def test_image_export_dry_run_writes_nothing(served: Served, bookmarked: dict[str, Any]) -> None:
    out = os.path.join(served.root, "dry.vmdk")
    proc = ok(export(served, "--at", BOOKMARK, "--out", out, "--dry-run"))
    assert not os.path.exists(out) and not os.path.exists(out.replace(".vmdk", "-flat.vmdk"))
    assert proc.stdout.startswith("plan:"), proc.stdout
    assert f"restore point {bookmarked['bookmark']['seq']}" in proc.stdout
    assert BOOKMARK in proc.stdout
    plan = last_json(ok(export(served, "--at", BOOKMARK, "--out", out, "--dry-run", "--json")))
    assert plan["point"] == bookmarked["bookmark"]
    assert plan["capacity_bytes"] == 8 * 2**20 and plan["base_seq"] == 0
    assert plan["records"] > 0 and "out" not in plan
    assert not os.path.exists(out)


def test_image_export_equals_the_source(served: Served, bookmarked: dict[str, Any]) -> None:
    out_dir = os.path.join(served.root, "export")
    os.makedirs(out_dir, exist_ok=True)
    for disk in (0, 1):
        out = os.path.join(out_dir, f"X{disk}.vmdk")
        result = last_json(
            ok(export(served, "--disk", str(disk), "--at", BOOKMARK, "--out", out, "--json"))
        )
        assert result["out"] == out and result["bytes_written"] > 0
        flat = os.path.join(out_dir, f"X{disk}-flat.vmdk")
        assert sorted(f for f in os.listdir(out_dir) if f.startswith(f"X{disk}")) == [
            f"X{disk}-flat.vmdk",
            f"X{disk}.vmdk",
        ]
        assert os.path.getsize(flat) == 8 * 2**20
        source = os.path.join(served.source_dir, VM, f"{VM}_{disk}.vmdk")
        with open(source.replace(".vmdk", "-flat.vmdk"), "rb") as a, open(flat, "rb") as b:
            assert a.read() == b.read(), f"disk {disk}: exported extent differs from source"
        if QEMU_IMG:
            same = subprocess.run([QEMU_IMG, "compare", source, out], capture_output=True)
            assert same.returncode == 0, same.stdout + same.stderr


@pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img not installed")
def test_image_export_is_a_vmdk_qemu_img_reads(served: Served, bookmarked: dict[str, Any]) -> None:
    out = os.path.join(served.root, "info.vmdk")
    ok(export(served, "--at", BOOKMARK, "--out", out))
    info = subprocess.run(
        [str(QEMU_IMG), "info", "--output=json", out], capture_output=True, text=True
    )
    assert info.returncode == 0, info.stderr
    meta = json.loads(info.stdout)
    assert meta["format"] == "vmdk" and meta["virtual-size"] == 8 * 2**20


def test_image_export_again_needs_force(served: Served, bookmarked: dict[str, Any]) -> None:
    out = os.path.join(served.root, "again.vmdk")
    ok(export(served, "--at", BOOKMARK, "--out", out))
    with open(out.replace(".vmdk", "-flat.vmdk"), "rb") as f:
        before = f.read()
    usage_error(export(served, "--at", BOOKMARK, "--out", out), "--out")
    assert "--force" in export(served, "--at", BOOKMARK, "--out", out).stderr
    ok(export(served, "--at", "latest", "--out", out, "--force"))
    with open(out.replace(".vmdk", "-flat.vmdk"), "rb") as f:
        assert f.read() == before  # latest is the bookmarked, drained state


@pytest.mark.parametrize(
    ("out", "args", "flag"),
    [
        ("foo.img", [], "--out"),
        ("no-such-folder/x.vmdk", [], "--out"),
        ("x.vmdk", ["--disk", "-1"], "--disk"),
    ],
)
def test_image_export_bad_flags_exit_2(
    served: Served, out: str, args: list[str], flag: str
) -> None:
    path = os.path.join(served.root, out)
    usage_error(export(served, "--out", path, *args), flag)
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    ("at", "code"),
    [
        ("no-such-bookmark", "NOT_FOUND"),
        ("999999999", "NOT_FOUND"),
        ("2001-01-01T00:00:00", "OUT_OF_RANGE"),
        ("2026-13-45T99:00", "INVALID_ARGUMENT"),
    ],
)
def test_image_export_bad_point_exits_3_and_writes_nothing(
    served: Served, at: str, code: str
) -> None:
    out = os.path.join(served.root, f"bad-{code}.vmdk")
    proc = export(served, "--at", at, "--out", out)
    assert proc.returncode == 3, proc.stderr
    assert code in proc.stderr and "at:" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(out) and not os.path.exists(out.replace(".vmdk", "-flat.vmdk"))


def test_image_export_unknown_vm_exits_3(served: Served) -> None:
    out = os.path.join(served.root, "novm.vmdk")
    proc = cdp("image", "export", *served.g("--vm", "nope", "--out", out))
    assert proc.returncode == 3 and "NOT_FOUND" in proc.stderr and "nope" in proc.stderr


# -- bad flags and an unreachable target -------------------------------------------------


@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1", "127.0.0.1:0", "host:99999", ":80"])
def test_status_bad_target_exits_2(address: str) -> None:
    usage_error(cdp("status", "--target", address), "--target")


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--history-window", "31d"),
        ("--history-window", "forever"),
        ("--journal-limit", "lots"),
        ("--checkpoint-interval", "0"),
    ],
)
def test_target_serve_bad_flag_exits_2(tmp_path: str, flag: str, value: str) -> None:
    data = os.path.join(str(tmp_path), "d")
    proc = cdp("target", "serve", "--data-dir", data, "--listen", "127.0.0.1:0", flag, value)
    usage_error(proc, flag)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--block-size", "1000"),
        ("--block-size", "2MiB"),
        ("--disk-size", "1000"),
        ("--pattern", "zigzag"),
        ("--seconds", "0"),
        ("--compressibility", "2"),
        ("--groups", "0"),
        ("--groups", "65"),
    ],
)
def test_sim_run_bad_flag_exits_2(served: Served, flag: str, value: str) -> None:
    proc = cdp("sim", "run", "--target", served.address, "--group", "never-made", flag, value)
    usage_error(proc, flag)


def test_bad_flags_left_no_trace_at_the_target(served: Served) -> None:
    data = last_json(ok(cdp("status", "--target", served.address, "--insecure", "--json")))
    assert [g["group_id"] for g in data["groups"]] == [GROUP]


def test_status_of_a_target_that_is_not_running_exits_3(tmp_path: str) -> None:
    ok(cdp("certs", "init", str(tmp_path)))  # over mTLS: no --insecure warning on stderr
    tls_dir = os.path.join(str(tmp_path), "operators", "admin")
    t0 = time.monotonic()
    proc = cdp("status", "--target", f"127.0.0.1:{free_port()}", "--tls-dir", tls_dir, timeout=30)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 3, proc.stderr
    assert elapsed < 15, elapsed
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("cdp: error:")


# -- demo --------------------------------------------------------------------------------


def test_demo_json() -> None:
    proc = ok(cdp("demo", "--seconds", "2", "--json", timeout=120))
    r = last_json(proc)
    assert r["verified"] is True
    assert r["rpo_p99_s"] >= 0 and r["restore_points"] > 0
    assert r["acked_seq"] == r["writes"] > 0
    assert r["checks"] and all(c["equal"] for c in r["checks"])
    assert r["kept_in"] is None
    assert r["transport"] == "mtls"  # zero configuration still runs over mutual TLS
