"""``cdp failover verify`` against vcsim and a real target: a test failover at a restore
point, checks on every recovered VM (power, disk images, the plan's hook), cleanup that
always runs (after a failed check, a timeout, an interrupt, or on the next run after a
kill -9), one JSON record per run, ``--history``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from cdp.errors import ConfigError
from cdp.failover.export import export_image
from cdp.failover.plan import parse_plan
from cdp.failover.probes import check_disk
from cdp.failover.verify import Verifier

from .drsite import GROUP, VMS, DrSite, inventory, tree
from .test_failover_cli import cdp

REPO = Path(__file__).resolve().parents[2]
QEMU_IMG = shutil.which("qemu-img")


def verifications(site: DrSite) -> list[Path]:
    folder = site.state_dir / "dr-test" / "verifications"
    return sorted(folder.iterdir()) if folder.exists() else []


def assert_clean(site: DrSite, before: list[tuple[str, str, str]]) -> None:
    """The test failover is gone: inventory as before, no scratch folder, no active log."""
    assert inventory(site.si) == before
    assert not [p.name for p in site.replicas.iterdir() if p.name.endswith("-test")]
    assert not (site.state_dir / "dr-test" / "operation.json").exists()


def env_hook(site: DrSite) -> dict[str, Any]:
    """A hook that passes and leaves the environment it saw in <root>/<vm>.env."""
    script = f'env | grep ^CDP_VERIFY_ > "{site.root}/$CDP_VERIFY_VM.env"; echo ok $CDP_VERIFY_NAME'
    return {"command": ["sh", "-c", script], "timeout_s": 20}


def with_vm_hook(data: dict[str, Any], vm: int, hook: dict[str, Any]) -> dict[str, Any]:
    data["groups"][0]["vms"][vm]["verify"] = hook
    return data


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", "failover", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


async def wait_for_file(path: Path, proc: asyncio.subprocess.Process) -> None:
    for _ in range(600):
        if path.exists():
            return
        assert proc.returncode is None, "cdp ended before the hook started"
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def test_verify_passes_records_and_cleans_up(site: DrSite) -> None:
    before = inventory(site.si)
    base_before = {vm: tree(site.replicas / vm) for vm in VMS}
    orch = site.orchestrator(site.plan(site.plan_dict(verify=env_hook(site))))

    outcome = await Verifier(orch, QEMU_IMG, {"PATH": os.environ["PATH"]}).run()

    rec = outcome.record
    assert outcome.error is None and rec["result"] == "passed", rec
    assert rec["points"][GROUP]["seq"] == 200 and rec["points"][GROUP]["time"].endswith("Z")
    assert {v["vm"] for v in rec["vms"]} == set(VMS)
    for v in rec["vms"]:
        assert v["passed"] and v["power"]["state"] == "poweredOn"
        assert 0 <= v["power"]["seconds"] <= 10  # the plan's power_on_timeout_s
        (disk,) = v["disks"]
        assert disk["passed"] and disk["size_bytes"] == disk["expected_bytes"] == 4 * 2**20
        assert disk["qemu_img"] == ("ok" if QEMU_IMG else "not installed")
        assert v["hook"]["exit_code"] == 0 and f"ok {v['vm']}-test" in v["hook"]["stdout_tail"]
        env = dict(
            line.split("=", 1) for line in (site.root / f"{v['vm']}.env").read_text().splitlines()
        )
        assert env["CDP_VERIFY_VMX"] == f"[cdp-replica] {v['vm']}-test/{v['vm']}-test.vmx"
        assert (
            env["CDP_VERIFY_SEQ"] == "200"
            and env["CDP_VERIFY_TIME"] == rec["points"][GROUP]["time"]
        )
        assert env["CDP_VERIFY_NAME"] == f"{v['vm']}-test" and env["CDP_VERIFY_REF"].startswith(
            "vm-"
        )
        assert env["CDP_VERIFY_NETWORKS"] == "DR-Test-Isolated"
    assert rec["cleanup"]["status"] == "done"
    (path,) = verifications(site)
    assert outcome.path == str(path) and json.loads(path.read_text()) == rec
    assert_clean(site, before)
    assert {vm: tree(site.replicas / vm) for vm in VMS} == base_before
    (archived,) = (site.state_dir / "dr-test" / "history").iterdir()
    assert json.loads(archived.read_text())["origin"] == "verify"
    orch.close()


async def test_failing_hook_exits_1_records_the_vm_and_cleans_up(site: DrSite) -> None:
    before = inventory(site.si)
    data = site.plan_dict(verify=env_hook(site))
    with_vm_hook(data, 1, {"command": ["sh", "-c", "echo boom >&2; exit 3"]})  # app01
    plan = str(site.write_plan(data))

    code, out, err = await cdp("verify", "--plan", plan, "--json")

    assert code == 1, err
    rec = json.loads(out)
    assert rec["result"] == "failed" and "error" not in rec
    vms = {v["vm"]: v for v in rec["vms"]}
    assert vms["db01"]["passed"] and not vms["app01"]["passed"]
    hook = vms["app01"]["hook"]
    assert hook["exit_code"] == 3 and hook["stderr_tail"] == "boom\n" and not hook["timed_out"]
    assert vms["app01"]["power"]["passed"] and vms["app01"]["disks"][0]["passed"]
    assert rec["cleanup"]["status"] == "done"
    assert [str(p) for p in verifications(site)] == [rec["record_path"]]
    assert_clean(site, before)

    code, out, err = await cdp("verify", "--plan", plan)  # the table an operator reads
    assert code == 1, err
    assert "app01: hook failed (exit 3): boom" in out and "result: FAILED" in out
    assert "cleanup (stop-test): done" in out
    assert_clean(site, before)


async def test_hook_that_times_out_is_killed_and_fails_the_vm(site: DrSite) -> None:
    before = inventory(site.si)
    pidfile = site.root / "hook.pid"
    hook = {"command": ["sh", "-c", f"echo $$ > {pidfile}; echo started; exec sleep 30"]}
    data = with_vm_hook(site.plan_dict(), 0, {**hook, "timeout_s": 0.5})  # db01 only
    orch = site.orchestrator(site.plan(data))

    outcome = await Verifier(orch, QEMU_IMG, {"PATH": os.environ["PATH"]}).run()

    assert outcome.result == "failed" and outcome.error is None
    vms = {v["vm"]: v for v in outcome.record["vms"]}
    ran = vms["db01"]["hook"]
    assert ran["timed_out"] and ran["exit_code"] is None and not vms["db01"]["passed"]
    assert 0.5 <= ran["seconds"] < 5 and ran["stdout_tail"] == "started\n"
    assert vms["app01"]["passed"] and vms["app01"]["hook"] is None  # no plan-wide hook
    with pytest.raises(ProcessLookupError):  # the hook's process group was killed
        os.kill(int(pidfile.read_text()), 0)
    assert_clean(site, before)
    orch.close()


async def test_bad_verify_keys_exit_2_naming_the_key(site: DrSite) -> None:
    vm_key = "groups[0].vms[1].verify.timeout: unknown key"
    bad: list[tuple[dict[str, Any], str]] = [
        (site.plan_dict(verify={"command": "vm-check"}), "verify.command: must be a list, not"),
        (site.plan_dict(verify={"timeout_s": 5}), "verify.command: required"),
        (site.plan_dict(verify={"command": ["x"], "timeout_s": 0}), "verify.timeout_s: 0 is out"),
        (site.plan_dict(verify={"command": [""]}), "verify.command[0]: must be a string"),
        (with_vm_hook(site.plan_dict(), 1, {"command": ["x"], "timeout": 5}), vm_key),
        (with_vm_hook(site.plan_dict(), 0, ["x"]), "groups[0].vms[0].verify: must be a mapping"),
    ]
    for data, message in bad:
        with pytest.raises(ConfigError) as caught:
            parse_plan(data, str(site.root / "plan.yaml"))
        assert str(caught.value).startswith(message), caught.value
    code, _, err = await cdp("verify", "--plan", str(site.write_plan(bad[0][0])))
    assert code == 2
    assert "cdp: error: verify.command: must be a list, not a string" in err
    assert not site.state_dir.exists()
    # A relative program path is relative to the plan's folder, like every plan path.
    plan = parse_plan(site.plan_dict(verify={"command": ["./check.sh", "-v"]}), "/etc/cdp/p.yaml")
    assert plan.verify is not None and plan.verify.command == ("/etc/cdp/check.sh", "-v")
    assert plan.verify.timeout_s == 300


async def test_history_lists_runs(site: DrSite) -> None:
    plan = str(site.write_plan(site.plan_dict(verify=env_hook(site))))
    code, out, _ = await cdp("verify", "--plan", plan, "--history")
    assert code == 0 and "no verification recorded yet" in out
    assert (await cdp("verify", "--plan", plan))[0] == 0
    failing = site.plan_dict(verify={"command": ["false"]})
    assert (await cdp("verify", "--plan", str(site.write_plan(failing, "f.yaml"))))[0] == 1

    code, out, err = await cdp("verify", "--plan", plan, "--history", "--json")

    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert [r["result"] for r in runs] == ["passed", "failed"]
    assert [(r["vms_passed"], r["vms"]) for r in runs] == [(2, 2), (0, 2)]
    assert all(r["points"] == {GROUP: 200} for r in runs)
    assert [r["file"] for r in runs] == [str(p) for p in verifications(site)]
    code, out, _ = await cdp("verify", "--plan", plan, "--history")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["STARTED", "(UTC)", "RESULT", "POINT"]
    assert "PASSED" in lines[1] and "g1@200" in lines[1] and "FAILED" in lines[2]


async def test_dry_run_changes_nothing(site: DrSite) -> None:
    before = inventory(site.si)
    files_before = tree(site.replicas)
    plan = str(site.write_plan(site.plan_dict(verify={"command": ["/bin/true", "--quick"]})))

    code, out, err = await cdp("verify", "--plan", plan, "--dry-run")

    assert code == 0, err
    assert "restore point seq 200" in out and "register db01-test on DC0_C0_H" in out
    assert "app01-test: 1 disk(s)" in out and "/bin/true --quick" in out
    assert "dry run: nothing was changed" in out
    code, out, _ = await cdp("verify", "--plan", plan, "--dry-run", "--json")
    report = json.loads(out)
    assert code == 0 and report["dry_run"] and report["verify"][0]["hook"]["timeout_s"] == 300
    assert inventory(site.si) == before
    assert tree(site.replicas) == files_before
    assert not site.state_dir.exists()  # no record, no log, no lock


async def test_verify_killed_mid_check_is_cleaned_up_by_the_next_verify(site: DrSite) -> None:
    before = inventory(site.si)
    started = site.root / "hook.started"
    slow = {"command": ["sh", "-c", f"touch {started}; exec sleep 60"]}
    proc = await spawn("verify", "--plan", str(site.write_plan(site.plan_dict(verify=slow))))
    await wait_for_file(started, proc)
    proc.kill()
    await proc.communicate()
    assert {v[0] for v in inventory(site.si)} >= {"db01-test", "app01-test"}
    log = json.loads((site.state_dir / "dr-test" / "operation.json").read_text())
    assert log["origin"] == "verify" and log["status"] == "testing"

    plan = str(site.write_plan(site.plan_dict(verify=env_hook(site)), "again.yaml"))
    code, out, err = await cdp("verify", "--plan", plan, "--json")

    assert code == 0, err
    rec = json.loads(out)
    assert rec["result"] == "passed" and rec["leftover"]["status"] == "testing"
    assert "cleaning up the test failover of an interrupted verify" in err
    assert_clean(site, before)


async def test_sigterm_stops_the_checks_and_still_cleans_up(site: DrSite) -> None:
    before = inventory(site.si)
    started = site.root / "hook.started"
    slow = {"command": ["sh", "-c", f"touch {started}; exec sleep 60"]}
    proc = await spawn(
        "verify", "--plan", str(site.write_plan(site.plan_dict(verify=slow))), "--json"
    )
    await wait_for_file(started, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 30)

    assert proc.returncode == 130, err.decode()
    rec = json.loads(out)
    assert rec["result"] == "interrupted" and rec["cleanup"]["status"] == "done"
    assert all(not v["passed"] for v in rec["vms"])
    assert any(v["hook"] and v["hook"]["interrupted"] for v in rec["vms"])
    assert_clean(site, before)


async def test_an_operators_test_failover_is_not_touched(site: DrSite) -> None:
    plan = str(site.write_plan())
    assert (await cdp("test", "--plan", plan))[0] == 0
    during = inventory(site.si)

    code, out, err = await cdp("verify", "--plan", plan, "--json")

    assert code == 1
    assert "test failover of plan 'dr-test' is active" in err
    rec = json.loads(out)
    assert rec["result"] == "failed" and rec["cleanup"]["status"] == "nothing to clean up"
    assert inventory(site.si) == during  # the operator's test VMs still run
    assert json.loads((site.state_dir / "dr-test" / "operation.json").read_text())["origin"] == ""
    assert (await cdp("stop-test", "--plan", plan))[0] == 0


async def test_disk_check_on_real_images(site: DrSite, tmp_path: Path) -> None:
    descriptor = tmp_path / "img_0.vmdk"
    await export_image(site.target.client, GROUP, "db01", 0, "latest", str(descriptor))
    flat = tmp_path / "img_0-flat.vmdk"
    size = 4 * 2**20

    assert check_disk(str(descriptor), 0, size, QEMU_IMG).passed
    assert check_disk(str(descriptor), 0, size, None).qemu_img == "not installed"
    wrong = check_disk(str(descriptor), 0, 2 * size, QEMU_IMG)
    assert not wrong.passed and f"the protected disk has {2 * size}" in wrong.detail
    if QEMU_IMG:  # a descriptor qemu-img (and ESXi) would not open
        text = descriptor.read_text()
        descriptor.write_text(text.replace('createType="vmfs"', 'createType="bogus"'))
        bogus = check_disk(str(descriptor), 0, size, QEMU_IMG)
        assert not bogus.passed and "bogus" in bogus.qemu_img
        descriptor.write_text(text)
    os.truncate(flat, size // 2)
    short = check_disk(str(descriptor), 0, size, QEMU_IMG)
    assert not short.passed and short.size_bytes == size // 2 and "expected" in short.detail
    flat.unlink()
    assert "No such file" in check_disk(str(descriptor), 0, size, QEMU_IMG).detail
    descriptor.write_text("garbage")
    assert "not a flat VMDK descriptor" in check_disk(str(descriptor), 0, size, QEMU_IMG).detail
