"""Issue 13 ("Failover you can trust at 3 a.m."): each defect reproduced through public
surfaces, asserting the CORRECT behaviour, so every test here fails until it is fixed.

Driven as an on-call engineer would: ``cdp failover ...`` as a real subprocess against a
real vcsim and a real target fed by the simulator (``site`` from conftest.py), the
inventory read independently with pyVmomi (``drsite.inventory``), the recovered disks
read as files.

fails on ece6b4a:
  test_run_again_after_commit_does_not_overwrite_recovered_disks          defect 1
  test_rollback_keeps_data_written_since_failover_without_a_flag           defect 1
  test_default_rollback_at_deadline_keeps_data_written_since_failover      defect 1
  test_unplanned_run_refuses_while_the_source_replicates                  defect 3
  test_old_source_is_fenced_after_commit                                   defect 3
  test_run_at_another_point_on_an_active_failover_exits_1                 defect 5
  test_failed_planned_failover_restores_or_reports_production             defect 4
  test_failback_over_mtls_with_certs_init_certificates                    defect 2
  test_closed_stdout_does_not_kill_a_run                                  defect 10
  test_ctrl_c_in_the_commit_wait_says_state_and_how_to_resume             defect 10
  test_failback_dry_run_text_lists_disks_seeds_and_bytes                  defect 13
  test_bytes_to_prepare_follows_the_disks_data_not_the_journal            defect 9
  test_status_shows_the_restore_point_in_text                             defect 8
  test_status_after_kill_9_does_not_say_running                           defect 8
  test_status_after_commit_says_next_failback                             defect 8
  test_verify_during_an_active_failover_records_skipped                   defect 13
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import TargetProcess, free_port
from pyVmomi import vim

from cdp.errors import CdpError
from cdp.failover.faults import server_thumbprint
from cdp.rpc.client import ReplicationClient
from cdp.source.shipper import Shipper, ShipperConfig

from .drsite import (
    DISK_BYTES,
    GROUP,
    VMS,
    DrSite,
    failback_pki,
    failback_tls_dir,
    find_one,
    inventory,
    mount,
    register_protected_vms,
    wait,
)
from .harness import Inventory, Vcsim, start_vcsim

REPO = Path(__file__).resolve().parents[2]
MARK = b"written-by-the-recovered-guest-after-failover".ljust(4096, b"!")
"""What a recovered guest writes into its disk after the failover (data only it holds)."""
MARK_OFFSET = 64 * 1024 + 512


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


async def cdp(*args: str, timeout: float = 90.0) -> tuple[int, str, str]:
    """Run ``cdp ARGS`` as a subprocess (the test's event loop keeps serving the target)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, cwd=str(REPO), env=_env(),
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def failover(*args: str, timeout: float = 90.0) -> tuple[int, str, str]:
    """``cdp failover ARGS``."""
    return await cdp("failover", *args, timeout=timeout)


def dr_disk(site: DrSite, vm: str) -> Path:
    """The recovered VM's writable disk (the flat file a live failover exports)."""
    return site.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk"


def guest_writes(site: DrSite) -> None:
    """The recovered guests write data that exists nowhere else (not in the journal)."""
    for vm in VMS:
        with open(dr_disk(site, vm), "r+b") as f:
            f.seek(MARK_OFFSET)
            f.write(MARK)


def holds_guest_writes(site: DrSite, vm: str) -> bool:
    """Whether ``vm``'s recovered disk still holds what its guest wrote after the failover."""
    path = dr_disk(site, vm)
    if not path.exists():
        return False
    with open(path, "rb") as f:
        f.seek(MARK_OFFSET)
        return f.read(len(MARK)) == MARK


def power(si: Any) -> dict[str, str]:
    """Registered VMs by name -> power state, read from vCenter with pyVmomi."""
    return {name: state for name, _, state in inventory(si)}


def unregister_all(si: Any) -> None:
    """Power off and unregister every VM (what `check`'s hint "or unregister it" leads to)."""
    for vm in [find_one(si, vim.VirtualMachine, name) for name, _, _ in inventory(si)]:
        if vm.runtime.powerState == "poweredOn":
            wait(vm.PowerOffVM_Task())
        vm.UnregisterVM()


async def live_failover(site: DrSite, plan: str) -> None:
    """`run --no-wait` from the CLI, after the source host is lost (unplanned failover)."""
    assert site.source is not None
    await site.source.stop()  # the protected site is gone: the case `run` is made for
    site.source = None
    code, out, err = await failover("run", "--plan", plan, "--no-wait")
    assert code == 0, out + err
    assert power(site.si) == {"db01": "poweredOn", "app01": "poweredOn"}


# ---------------------------------------------------------------- defect 1: data guards


async def test_run_again_after_commit_does_not_overwrite_recovered_disks(site: DrSite) -> None:
    """After run → commit the recovered disks are production. Unregistering the VMs (as
    `check`'s hint suggests) and running `run` again must not re-export over them: it
    refuses (exit 1) naming the `-dr` folder that holds production data, and the disks
    keep what the guests wrote."""
    plan = str(site.write_plan())
    await live_failover(site, plan)
    code, out, err = await failover("commit", "--plan", plan)
    assert code == 0, out + err
    guest_writes(site)
    unregister_all(site.si)

    code, out, err = await failover("run", "--plan", plan, "--no-wait")

    assert all(holds_guest_writes(site, vm) for vm in VMS), "production disks re-exported over"
    assert code == 1, out + err
    assert "-dr" in err


async def test_rollback_keeps_data_written_since_failover_without_a_flag(site: DrSite) -> None:
    """Rollback of a failover whose recovered VMs have run (and written) must not delete
    their `-dr` folders unless a flag names the loss: without it, it refuses (exit 1)
    and says what would be lost; the data stays."""
    plan = str(site.write_plan())
    await live_failover(site, plan)
    guest_writes(site)

    code, out, err = await failover("rollback", "--plan", plan)

    assert all(holds_guest_writes(site, vm) for vm in VMS), "rollback deleted the DR data"
    assert code == 1, out + err
    assert "-dr" in err


async def test_default_rollback_at_deadline_keeps_data_written_since_failover(
    site: DrSite,
) -> None:
    """`commit.default_action: rollback` applied at the deadline (here by re-running `run`,
    as documented) must never destroy data written after the failover without saying so:
    the recovered disks keep the guests' writes."""
    plan = str(
        site.write_plan(site.plan_dict(commit={"timeout_s": 1, "default_action": "rollback"}))
    )
    await live_failover(site, plan)
    guest_writes(site)
    await asyncio.sleep(1.5)  # the deadline passes with nobody watching

    code, out, err = await failover("run", "--plan", plan)

    assert all(holds_guest_writes(site, vm) for vm in VMS), (
        f"the deadline's default rollback deleted the DR data (exit {code}): {out}{err}"
    )


# ---------------------------------------------------------------- defect 3: split brain


async def test_unplanned_run_refuses_while_the_source_replicates(site: DrSite) -> None:
    """An unplanned `run` while the group's source is connected and replicating must be
    refused (exit 1, saying the source is connected) unless an override is given: nothing
    is registered at the recovery site."""
    plan = str(site.write_plan())
    assert site.source is not None
    await site.source.write(5)  # the source is alive and replicating

    code, out, err = await failover("run", "--plan", plan, "--no-wait")

    assert code == 1, out + err
    assert "connected" in err
    assert inventory(site.si) == []


async def test_old_source_is_fenced_after_commit(site: DrSite) -> None:
    """The link to the source drops, the plan fails over and commits; then the old source
    comes back. It must never write into the failed-over group again: its writes do not
    become durable, and a new session of it is refused with FAILED_PRECONDITION naming
    the failover."""
    plan = str(site.write_plan())
    source = site.source
    assert source is not None and source.task is not None
    source.task.cancel()  # the link drops; the host and its buffer live on
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await source.task
    code, out, err = await failover("run", "--plan", plan, "--no-wait")
    assert code == 0, out + err
    code, out, err = await failover("commit", "--plan", plan)
    assert code == 0, out + err
    durable = (await site.target.client.status(GROUP)).groups[0].durable_seq
    spec = source.host.group_spec(GROUP)
    await source.client.close()
    source.client = ReplicationClient(site.target.address)  # the old source reconnects
    source.shipper = Shipper(spec, source.buffer, source.client, ShipperConfig("src-host"))
    await source.start()

    with contextlib.suppress(TimeoutError):  # its drain never finishes once it is fenced
        await asyncio.wait_for(source.write(10), 5)
    after = (await site.target.client.status(GROUP)).groups[0].durable_seq

    assert after == durable, f"the old source wrote {after - durable} records after commit"
    try:
        await source.client.open_session("src-host", spec, 0, after + 1)
    except CdpError as exc:
        assert "FAILED_PRECONDITION" in str(exc) and "failover" in str(exc), exc
    else:
        pytest.fail("a new session of the old source was accepted after the failover")


# ---------------------------------------------------------------- defect 5: re-target


async def test_run_at_another_point_on_an_active_failover_exits_1(site: DrSite) -> None:
    """`run --at <other point>` while a failover is active must refuse (exit 1) and say
    to roll back first, not warn, keep the old point and exit 0."""
    plan = str(site.write_plan())
    await live_failover(site, plan)

    code, out, err = await failover("run", "--plan", plan, "--at", "100", "--no-wait")

    assert code == 1, out + err
    assert "roll back" in err or "rollback" in err


# ---------------------------------------------------------------- defect 8: status


async def test_status_shows_the_restore_point_in_text(site: DrSite) -> None:
    """`failover status` (text) names the restore point: its seq and time."""
    plan = str(site.write_plan())
    await live_failover(site, plan)
    code, out, err = await failover("status", "--plan", plan, "--json")
    assert code == 0, err
    point = json.loads(out)["points"][GROUP]

    code, out, err = await failover("status", "--plan", plan)

    assert code == 0, err
    assert f"seq {point['seq']}" in out, out


async def test_status_after_kill_9_does_not_say_running(site: DrSite) -> None:
    """A `run` killed with SIGKILL mid-operation: `status` must not claim "running";
    it says the holder is gone and how to resume."""
    plan_data = site.plan_dict()
    plan_data["boot_order"][1]["delay_s"] = 30  # a long wait between boot groups
    plan = str(site.write_plan(plan_data))
    assert site.source is not None
    await site.source.stop()
    site.source = None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", "failover", "run", "--plan", plan,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL, cwd=str(REPO), env=_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while b"power on db01" not in await proc.stdout.readline():
            assert proc.returncode is None
    await asyncio.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()

    code, out, err = await failover("status", "--plan", plan)

    assert code == 0, err
    first = out.splitlines()[0]
    assert ", running," not in first, out
    assert f"cdp failover run --plan {plan}" in out, out


async def test_status_after_commit_says_next_failback(site: DrSite) -> None:
    """After a commit, `status` says the plan is failed over and committed, and that the
    next step is failback; `check` does not say NOT READY with a hint to unregister."""
    plan = str(site.write_plan())
    await live_failover(site, plan)
    code, out, err = await failover("commit", "--plan", plan)
    assert code == 0, out + err

    code, out, err = await failover("status", "--plan", plan)

    assert code == 0, err
    assert "committed" in out.splitlines()[0] and "failback" in out, out
    code, out, err = await failover("check", "--plan", plan)
    assert "unregister" not in out + err, out + err


# ---------------------------------------------------------------- defect 13: verify


async def test_verify_during_an_active_failover_records_skipped(site: DrSite) -> None:
    """`verify` (a cron job) during an active live failover is not a failed verification:
    it records and prints "skipped: failover active" instead of FAILED."""
    plan = str(site.write_plan())
    await live_failover(site, plan)

    code, out, err = await failover("verify", "--plan", plan, "--json")

    assert "skipped: failover active" in out + err, out + err
    records = list((site.state_dir / "dr-test" / "verifications").glob("*.json"))
    results = [json.loads(r.read_text())["result"] for r in records]
    assert "failed" not in results, results


# ---------------------------------------------------------------- defect 4: planned failure


@pytest.fixture
def protected(vcsim_binary: Path, tmp_path: Path) -> Iterator[Vcsim]:
    """The protected site's vCenter (no DR port groups)."""
    sim = start_vcsim(vcsim_binary, Inventory(portgroups=()), tmp_path / "prod-vcsim.log")
    try:
        yield sim
    finally:
        sim.close()


def planned_plan(
    site: DrSite, prod: Vcsim, failback: dict[str, Any] | None = None, **protected_over: Any
) -> str:
    """A plan with ``protected_site`` = ``prod`` (power off, short drain), written to disk."""
    protected_site = {
        "vcenter": {
            "url": f"https://{prod.host}:{prod.port}/sdk",
            "credentials": {"file": str(site.root / "vcenter.cred")},
            "tls": {"thumbprint": server_thumbprint(prod.host, prod.port, 5)},
        },
        "datacenter": "DC0",
        "shutdown": "power_off",
        "drain_quiet_s": 0.5,
        "drain_timeout_s": 20,
        **protected_over,
    }
    extra = {"failback": failback} if failback else {}
    return str(site.write_plan(site.plan_dict(protected_site=protected_site, **extra)))


async def test_failed_planned_failover_restores_or_reports_production(
    site: DrSite, protected: Vcsim
) -> None:
    """A planned failover that fails after the protected VMs were stopped: production is
    powered back on automatically or, failing that, the first line of `status` says
    production is stopped (and gives the command that restarts it).

    The source answers the seal but keeps taking guest writes (a faulty source): the
    bookmark after the power-off is past the sealed seq, so the failover stops there."""
    prod_si = protected.connect()
    register_protected_vms(prod_si, site.root / "source")
    plan = planned_plan(site, protected, drain_timeout_s=1.5)
    assert site.source is not None
    site.source.shipper.hold_writes = lambda: None  # seals, yet writes on
    busy = asyncio.ensure_future(site.source.write(100_000, pause_s=0.01))
    try:
        code, out, err = await failover("run", "--plan", plan, "--planned", "--no-wait")
    finally:
        busy.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await busy
    assert code == 1, out + err
    assert inventory(site.si) == []  # nothing came up at the recovery site

    code, out, _ = await failover("status", "--plan", plan)

    first = out.splitlines()[0]
    production_on = power(prod_si) == {"db01": "poweredOn", "app01": "poweredOn"}
    assert production_on or ("production" in first and "stopped" in first), (power(prod_si), out)


# ---------------------------------------------------------------- defect 2: failback, mTLS


@pytest.fixture
def home_mtls(site: DrSite) -> Iterator[tuple[TargetProcess, Path]]:
    """The original-site target as `cdp target serve --tls-dir` (a subprocess) with the
    folders of `cdp certs init`: a source `dr-reverse` for the reverse groups, an operator."""
    pki = failback_pki(site.root)
    data = site.root / "home-target"
    home = TargetProcess(str(data), free_port(), "--tls-dir", str(pki / "target"))
    home.start()
    try:
        yield home, pki
    finally:
        home.stop_or_kill()


async def test_failback_over_mtls_with_certs_init_certificates(
    site: DrSite, protected: Vcsim, home_mtls: tuple[TargetProcess, Path]
) -> None:
    """Failback to an original-site target that serves mutual TLS, with the certificate
    folders `cdp certs init` writes and the documented plan key
    (`failback.target.tls_dir` = a source's folder): the failback completes (exit 0) and
    the VMs run at the original site; no PERMISSION_DENIED at the seed step."""
    home, pki = home_mtls
    prod_si = protected.connect()
    register_protected_vms(prod_si, site.root / "source")
    replicas = Path(home.data_dir) / "replicas"
    replicas.mkdir(parents=True, exist_ok=True)
    mount(prod_si, replicas, "fb-ds")
    failback = {
        "target": {"address": home.address, "tls_dir": str(failback_tls_dir(pki))},
        "seed_path": str(site.root / "source"),
        "site": {
            "datacenter": "DC0",
            "cluster": "DC0_C0",
            "datastore": {"name": "fb-ds", "path": str(replicas)},
            "power_on_timeout_s": 10,
        },
    }
    plan = planned_plan(site, protected, drain_quiet_s=0.3, failback=failback)
    code, out, err = await failover("run", "--plan", plan, "--planned", "--no-wait")
    assert code == 0, out + err
    code, out, err = await failover("commit", "--plan", plan)
    assert code == 0, out + err
    assert site.source is not None
    await site.source.stop()  # the original host is down: no forward replication
    site.source = None
    guest_writes(site)

    code, out, err = await failover("failback", "--plan", plan, timeout=180)

    assert code == 0, out + err
    assert "PERMISSION_DENIED" not in err
    assert power(prod_si) == {"db01": "poweredOn", "app01": "poweredOn"}


# ---------------------------------------------------------------- defect 10: the terminal


async def test_closed_stdout_does_not_kill_a_run(site: DrSite) -> None:
    """`cdp failover run ... | head -1`: the reader goes away after the first line (as a
    dropped SSH session does). The run must still finish: both VMs end up powered on and
    the operation awaits its decision, not half-done."""
    plan = str(site.write_plan())
    assert site.source is not None
    await site.source.stop()
    site.source = None
    proc = await asyncio.create_subprocess_shell(
        f"{sys.executable} -m cdp failover run --plan {plan} --no-wait | head -1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, cwd=str(REPO), env=_env(),
    )  # fmt: skip
    await asyncio.wait_for(proc.communicate(), 90)
    try:
        async with asyncio.timeout(30):  # give a detached run time to finish
            while power(site.si) != {"db01": "poweredOn", "app01": "poweredOn"}:
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"the run died when its stdout closed; the VMs: {power(site.si)}")

    code, out, err = await failover("status", "--plan", plan, "--json")

    assert code == 0, err
    status = json.loads(out)
    assert status["status"] == "awaiting-commit", status


async def test_ctrl_c_in_the_commit_wait_says_state_and_how_to_resume(site: DrSite) -> None:
    """SIGINT while `run` waits for commit/rollback: it says the state it leaves (the VMs
    are up, awaiting commit) and the command that resumes the wait, not a silent 130."""
    plan = str(site.write_plan())
    assert site.source is not None
    await site.source.stop()
    site.source = None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", "failover", "run", "--plan", plan,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, cwd=str(REPO), env=_env(),
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    seen = b""
    async with asyncio.timeout(60):
        while b"waiting up to 60 s for `cdp failover commit`" not in seen:
            line = await proc.stdout.readline()
            assert line, "run ended before waiting for its decision"
            seen += line
    proc.send_signal(signal.SIGINT)
    rest, err = await asyncio.wait_for(proc.communicate(), 30)
    said = (rest + err).decode()

    assert proc.returncode == 130, said
    assert "awaiting-commit" in said or "awaiting commit" in said, said
    assert f"cdp failover run --plan {plan}" in said, said


# ---------------------------------------------------------------- defect 13: output


async def test_failback_dry_run_text_lists_disks_seeds_and_bytes(
    site: DrSite, protected: Vcsim
) -> None:
    """`failback --dry-run` in text (as documented) prints the disks with their seed
    files and the bytes to compare, as `--json` does."""
    prod_si = protected.connect()
    register_protected_vms(prod_si, site.root / "source")
    home = TargetProcess(str(site.root / "home-target"), free_port())
    home.start()
    try:
        replicas = Path(home.data_dir) / "replicas"
        replicas.mkdir(parents=True, exist_ok=True)
        mount(prod_si, replicas, "fb-ds")
        failback = {
            "target": {"address": home.address, "insecure": True},
            "seed_path": str(site.root / "source"),
            "site": {
                "datacenter": "DC0",
                "cluster": "DC0_C0",
                "datastore": {"name": "fb-ds", "path": str(replicas)},
            },
        }
        plan = planned_plan(site, protected, drain_quiet_s=0.3, failback=failback)
        code, out, err = await failover("run", "--plan", plan, "--planned", "--no-wait")
        assert code == 0, out + err
        code, out, err = await failover("failback", "--plan", plan, "--dry-run", "--json")
        assert code == 0, out + err
        disks = json.loads(out)["disks"]

        code, out, err = await failover("failback", "--plan", plan, "--dry-run")
    finally:
        home.stop_or_kill()

    assert code == 0, out + err
    for disk in disks:
        seed = next(v for k, v in disk.items() if "seed" in k and isinstance(v, str))
        assert seed in out, (disk, out)
    assert "bytes" in out or "MB" in out or "MiB" in out, out


# ---------------------------------------------------------------- defect 9: estimates


async def test_bytes_to_prepare_follows_the_disks_data_not_the_journal(site: DrSite) -> None:
    """Many overwrites of the same blocks: the images to export hold at most the disks'
    capacity, so `bytes_to_prepare` (what the datastore room check asks for) must not
    exceed it, however much journal history there is."""
    assert site.source is not None
    await site.source.write(3000)  # 12 MB of 4 KiB writes onto 2 x 4 MiB disks
    plan = str(site.write_plan())
    capacity = 2 * DISK_BYTES

    code, out, err = await failover("run", "--plan", plan, "--dry-run", "--json")

    assert code == 0, out + err
    prepare = json.loads(out)["operation"]["bytes_to_prepare"]
    assert prepare <= capacity, f"bytes_to_prepare {prepare:,} > the disks' {capacity:,} bytes"
