"""Issue 13: a model-based test of the failover lifecycle against real parts.

A hypothesis ``RuleBasedStateMachine`` drives random sequences of operator actions on a
fresh recovery site per example (``drsite.make_site``: a real vcsim, a real in-process
target with RocksDB and replica files, a ``LiveSource`` shipping the simulator's writes)
and a fresh original site (a second vcsim, the protected site, running the source VMs;
a second real target whose replica folder it mounts as ``fb-ds``, as in
tests/vsphere/test_failback.py): ``cdp failover`` test / stop-test / verify / run
(unplanned; with and without ``--at``, ``--force-split-brain``, ``--overwrite-recovered``)
/ run ``--planned`` / commit / rollback (with ``--discard-recovered-data``,
``--keep-recovered-data`` or neither) / failback (after a commit, or of a failover still
awaiting commit, which it commits first; after an unplanned failover the operator first
powers off the originals, which failback requires; once failed back, a re-run is
refused), each as a real subprocess, any of them kill -9'd at a random instant (failback
also right after a random step of its log) and then run again to resume; the source's
link dropped and restored; the source host kill -9'd (its buffer lost) and restarted on
its disks (it rejoins with a hash-compared resync, or stays fenced); the target
restarted. A small model predicts what each action must do (accept or refuse) and the
state it leaves; after a failback its state is protecting again at the plan level (no
operation active, nothing awaiting a decision, production running at the original site),
while the recovery target keeps the group failed over and committed, fenced. After every
step the invariants are checked against the real parts, read independently of the CLI:

(a) data a recovered guest wrote after a failover (a marker written into each ``-dr``
    disk after every successful ``run``) is still there unless the last destructive
    action named the loss (``--discard-recovered-data``, ``--overwrite-recovered``);
    after a failback it is in the disks production runs from at the original site;
(b) one writer per group: the target's lifecycle and epoch (``GetStatus``, what
    ``cdp status`` prints) are the model's, and while a live failover is active or
    committed (or failed back) a session of the old epoch is refused with
    FAILED_PRECONDITION; after a failback the original-site target's reverse group is
    failed over and committed (epoch 1) and its reverse source is gone;
(c) the vcsim inventory (pyVmomi: registered VMs and their power state) is what
    ``cdp failover status --json`` claims, and no failback is left half done;
(d) production is running or reported stopped: the recovered VMs are on while failed
    over; after a failback the VMs run at the original site from ``[fb-ds] <vm>-dr``;
    otherwise the source's writes become durable, or the target reports it
    disconnected (the model stopped or killed it: the protected site is lost);
(e) the protected site's VMs (pyVmomi on the protected vcsim) are off exactly while a
    planned failover (or one whose originals were powered off) is active or committed,
    and a planned failover's point is the last seq the source took (the seal: zero loss;
    every write it took, while it never restarted).

Why hypothesis runs in a worker thread: the target and the source live on the test's
event loop (the CLI subprocesses talk to that target), and hypothesis' state machines
are synchronous. The machine runs in ``asyncio.to_thread`` and hands coroutines to the
loop with ``run_coroutine_threadsafe``; the CLI and pyVmomi calls block only the thread.
The target restarts too (its server and RocksDB closed and opened again on the same data,
on a new port the plan and the source are pointed at). Not in the model: kill -9 of the
target (it runs in the test's process; tests/integration/test_crash_target.py does that),
link cuts other than dropping the source's stream, failback over mTLS (the failback
tests run insecure; tests/vsphere/test_lifecycle_defects.py has the mTLS one), a test
failover or new failover after a failback (the product does not re-protect toward the
recovery site yet, so run is refused there, and the model stops at failed back).

Fixed walks, because hypothesis may draw none of these in a short run:
``test_planned_walk`` (the planned paths, then a failback after the commit and a
``verify``) and ``test_failback_walk`` (source kill -9 and restart, an unplanned run,
its failback kill -9'd right after power-off-dr and run again, the re-run refused, a new
``run`` refused). The scorecard counts operations, CLI kills, source kills, target
restarts, failbacks and invariants. Found by the model and fixed: after a failback,
``run`` started a second, older copy of production at the recovery site (nothing refused
a committed group: the old source is fenced, so the split-brain guard saw none); a
``verify`` after a commit made failback refuse ("no committed live failover").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import Running, score, start_target, stop_target
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pyVmomi import vim

from cdp.errors import CdpError
from cdp.failover.faults import server_thumbprint
from cdp.rpc.client import ReplicationClient
from cdp.rpc.convert import LIFECYCLE_NAMES
from cdp.source.protection import ProtectionConfig
from cdp.source.shipper import Shipper, ShipperConfig

from .drsite import (
    GROUP,
    VMS,
    DrSite,
    LiveSource,
    find_one,
    inventory,
    make_site,
    mount,
    register_protected_vms,
    wait,
)
from .harness import Inventory, start_vcsim

REPO = Path(__file__).resolve().parents[2]
MARK = b"written-by-the-recovered-guest-after-failover".ljust(4096, b"!")
"""What a recovered guest writes into its disk after the failover (data only it holds)."""
MARK_OFFSET = 64 * 1024 + 512
CLI_TIMEOUT_S = 120.0
T = TypeVar("T")
EXAMPLES_STEPS = tuple(int(x) for x in os.environ.get("CDP_MODEL_SIZE", "3,6").split(","))
"""Examples x steps of the default run (``CDP_MODEL_SIZE=examples,steps`` to explore)."""

LIFECYCLE = {
    "idle": ("protecting", 0),
    "testing": ("test_running", 0),
    "live": ("failed_over_awaiting_commit", 1),
    "committed": ("failed_over_committed", 1),
    "failed_back": ("protecting", 1),  # protecting again, the old epoch still fenced
}
"""The target's lifecycle and epoch the model expects in each of its states."""

FAILBACK_STEPS = ("seed", "pre-sync", "power-off-dr", "final-sync", "bookmark", "retire-original")
"""Failback step kinds the CLI may be kill -9'd right after (cdp/failover/failback.py)."""
KILL = st.one_of(st.none(), st.none(), st.floats(0.3, 3.0))
"""No kill (twice as likely), or kill -9 the CLI after this many seconds."""


@dataclass
class Model:
    """What the operator's actions so far must have left."""

    op: str = "idle"  # idle | testing | live | committed
    source_up: bool = True  # the source host runs (its shipper may still be fenced)
    dr_data: bool = False  # the -dr disks hold the guests' marker, which must survive
    kept: bool = False  # -dr folders left in place by rollback --keep-recovered-data
    point: int | None = None  # the active live failover's seq
    destroyed_by: str = ""  # the last flag that named the loss of recovered data
    planned: bool = False  # the active (or committed) live failover was planned
    originals_off: bool = False  # the operator powered off the originals (to fail back)
    source_dead: bool = False  # the source host process was killed (not restarted yet)
    source_restarted: bool = False  # seqs no longer count writes (a resync took some)

    @property
    def fenced(self) -> bool:
        return self.op in ("live", "committed", "failed_back")


class World:
    """One example's real parts: a fresh vcsim, target, source and plan."""

    def __init__(self, loop: asyncio.AbstractEventLoop, binary: Path, root: Path) -> None:
        self.loop = loop
        self.vcsim = start_vcsim(binary, Inventory(), root / "vcsim.log")
        self.prod = start_vcsim(binary, Inventory(portgroups=()), root / "prod-vcsim.log")
        self.site: DrSite = self.call(make_site(self.vcsim, root, writes=100))
        self.prod_si = self.prod.connect()
        register_protected_vms(self.prod_si, root / "source")
        protected_site = {
            "vcenter": {
                "url": f"https://{self.prod.host}:{self.prod.port}/sdk",
                "credentials": {"file": str(root / "vcenter.cred")},
                "tls": {"thumbprint": server_thumbprint(self.prod.host, self.prod.port, 5)},
            },
            "datacenter": "DC0",
            "shutdown": "power_off",
            "seal_timeout_s": 10,
        }
        self.protected_site = protected_site
        # the original site's target (failback streams home into it), its replica folder
        # mounted at the protected vCenter as fb-ds: as tests/vsphere/test_failback.py
        self.home: Running = self.call(
            start_target(str(root / "home-target"), history_window_s=3600.0)
        )
        self.home_replicas.mkdir(parents=True, exist_ok=True)
        mount(self.prod_si, self.home_replicas, "fb-ds")
        self.failback = {
            "target": {"address": self.home.address, "insecure": True},
            "seed_path": str(root / "source"),
            "site": {
                "datacenter": "DC0",
                "cluster": "DC0_C0",
                "datastore": {"name": "fb-ds", "path": str(self.home_replicas)},
                "power_on_timeout_s": 10,
            },
        }
        self.plan = self.write_plan()
        self.log: list[str] = []
        self.source_dead = False

    def write_plan(self) -> str:
        """The plan (recovery site, protected site, failback) for the current target."""
        data = self.site.plan_dict(protected_site=self.protected_site, failback=self.failback)
        return str(self.site.write_plan(data))

    @property
    def home_replicas(self) -> Path:
        return Path(self.home.data_dir) / "replicas"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the test's event loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.source_dead:  # stopped when it was killed: not again
            self.site.source = None
        try:
            self.call(self.site.close())
        except Exception:  # the target must not outlive the test (grpc warns at its GC)
            with contextlib.suppress(Exception):
                self.call(stop_target(self.site.target))
        with contextlib.suppress(Exception):
            self.call(stop_target(self.home))
        self.vcsim.close()
        self.prod.close()

    @property
    def source(self) -> LiveSource:
        assert self.site.source is not None
        return self.site.source

    # ------------------------------------------------------------ the CLI

    def cli(self, *args: str, kill_after: float | str | None = None) -> tuple[int, str]:
        """``cdp failover ARGS --plan P``; with ``kill_after``, SIGKILL it after that many
        seconds, or once its failback log records a step of that kind done (if still
        running), and run the same command again to resume."""
        argv = [sys.executable, "-m", "cdp", "failover", *args, "--plan", self.plan]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        t0 = time.monotonic()
        if kill_after is not None:
            proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL, cwd=str(REPO), env=env,
            )  # fmt: skip
            if isinstance(kill_after, str):
                self.wait_for_failback_step(proc, kill_after)
            else:
                time.sleep(kill_after)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                score("lifecycle CLI kills (kill -9)")
                when = f"after {kill_after:.2f} s" if isinstance(kill_after, float) else (
                    f"once {kill_after} was done"
                )  # fmt: skip
                self.log.append(f"  kill -9 {when}: {' '.join(args)}")
            proc.wait(30)
        done = subprocess.run(
            argv, capture_output=True, stdin=subprocess.DEVNULL, cwd=str(REPO), env=env,
            timeout=CLI_TIMEOUT_S, text=True,
        )  # fmt: skip
        if args[0] != "status":
            took = time.monotonic() - t0
            self.log.append(
                f"  cdp failover {' '.join(args)} -> exit {done.returncode} ({took:.1f} s)"
            )
        return done.returncode, done.stdout + done.stderr

    def wait_for_failback_step(self, proc: subprocess.Popen[bytes], kind: str) -> None:
        """Until the failback's step log says a step of ``kind`` is done (or it exited)."""
        log = self.site.state_dir / "dr-test" / "failback" / "operation.json"
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                steps = json.loads(log.read_text())["steps"]
                if any(s["kind"] == kind and s["done"] for s in steps):
                    return
            time.sleep(0.01)

    def status(self) -> dict[str, Any]:
        code, out = self.cli("status", "--json")
        assert code == 0, out
        start = out.index("{")
        result: dict[str, Any] = json.loads(out[start : out.rindex("}") + 1])
        return result

    # ------------------------------------------------------------ the target and source

    def group(self) -> Any:
        (g,) = self.call(self.site.target.client.status(GROUP)).groups
        return g

    def points(self) -> list[int]:
        """The group's restore points' seqs, oldest first."""
        listed = self.call(self.site.target.client.list_points(GROUP))
        return sorted({p.seq for p in listed})

    def source_writes(self, count: int, timeout: float) -> bool:
        """Whether ``count`` writes of the source became durable within ``timeout``."""
        try:
            self.call(asyncio.wait_for(self.source.write(count), timeout), timeout + 5)
        except TimeoutError:
            return False
        return True

    def drop_link(self) -> None:
        """The source's stream ends (the host and its buffer live on)."""

        async def drop() -> None:
            task = self.source.task
            assert task is not None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

        self.call(drop())

    def reconnect(self) -> None:
        """The source host comes back: a new shipper on the same buffer (epoch 0)."""

        async def again() -> None:
            src = self.source
            await src.client.close()
            src.client = ReplicationClient(self.site.target.address)
            spec = src.host.group_spec(GROUP)
            old = src.shipper  # the host's seal gates stay as they are: so does its seal
            src.shipper = Shipper(spec, src.buffer, src.client, ShipperConfig("src-host"))
            src.shipper.hold_writes = old.hold_writes
            src.shipper.release_writes = old.release_writes
            src.shipper.seal_asked = old.seal_asked
            src.shipper.on_resync_required = old.on_resync_required
            if src.guard is not None:  # the resync loop watches the new shipper
                src.guard.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await src.guard
                src.guard = None
            await src.start()

        self.call(again())

    def restart_target(self, source_up: bool) -> None:
        """Stop the target and open its data again (a new port: plan and source follow)."""
        if source_up:
            self.drop_link()

        async def restart() -> None:
            old = self.site.target
            await stop_target(old)
            self.site.target = await start_target(old.data_dir, history_window_s=3600.0)

        self.call(restart())
        self.write_plan()
        if source_up:
            self.reconnect()

    def kill_source(self) -> None:
        """The source host process dies (kill -9): its buffer of unacked writes is gone,
        its disks stay."""
        self.call(self.source.stop())
        self.source_dead = True

    def restart_source(self) -> None:
        """The source host starts again on the same disks, with an empty buffer: the
        target cannot continue its journal, so it rejoins with a hash-compared resync
        (as a restarted ``cdp sim run``; tests/integration/test_source_restart.py)."""

        async def start() -> None:
            old = self.source
            new = LiveSource(
                self.site.target.address, self.site.root / "source", seed=len(self.log),
                protection=ProtectionConfig(region_bytes=64 * 1024),
            )  # fmt: skip
            new.writes = old.writes
            await new.start()
            self.site.source = new

        self.call(start())
        self.source_dead = False

    def last_seq(self) -> int:
        """The newest seq the source gave a write (or a resync marker)."""
        return self.source.buffer.next_seq - 1

    def power_off_originals(self) -> None:
        """The operator powers off the original VMs at the protected site (before a
        failback after an unplanned failover: failback refuses two live copies)."""
        for vm in VMS:
            found = find_one(self.prod_si, vim.VirtualMachine, vm)
            if str(found.runtime.powerState) == "poweredOn":
                wait(found.PowerOffVM_Task())

    def home_group(self) -> Any:
        (g,) = self.call(self.home.client.status(GROUP + "-failback")).groups
        return g

    def old_epoch_session_refused(self) -> bool:
        """Whether a session of epoch 0 (the old source) is refused as fenced."""

        async def probe() -> bool:
            client = ReplicationClient(self.site.target.address)
            spec = self.source.host.group_spec(GROUP)
            try:
                await client.open_session("src-host", spec, 0, 1)
            except CdpError as exc:
                return "FAILED_PRECONDITION" in str(exc)
            finally:
                await client.close()
            return False

        return self.call(probe())

    # ------------------------------------------------------------ the recovered disks

    def dr_disk(self, vm: str) -> Path:
        return self.site.replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk"

    def home_disk(self, vm: str) -> Path:
        """The disk production runs from at the original site after a failback."""
        return self.home_replicas / f"{vm}-dr" / f"{vm}_0-flat.vmdk"

    def guest_writes(self) -> None:
        """The recovered guests write data that exists nowhere else."""
        for vm in VMS:
            with open(self.dr_disk(vm), "r+b") as f:
                f.seek(MARK_OFFSET)
                f.write(MARK)

    def holds_guest_writes(self, vm: str, home: bool = False) -> bool:
        path = self.home_disk(vm) if home else self.dr_disk(vm)
        if not path.exists():
            return False
        with open(path, "rb") as f:
            f.seek(MARK_OFFSET)
            return f.read(len(MARK)) == MARK

    def power(self) -> dict[str, str]:
        return {name: state for name, _, state in inventory(self.site.si)}

    def prod_power(self) -> dict[str, str]:
        """The source VMs' power states at the protected site."""
        return {name: state for name, _, state in inventory(self.prod_si)}

    def prod_vms(self) -> dict[str, tuple[str, str]]:
        """The protected site's VMs: name -> (.vmx path, power state)."""
        return {name: (path, state) for name, path, state in inventory(self.prod_si)}


class LifecycleMachine(RuleBasedStateMachine):
    """Random operator actions on one site; the model says what each must do."""

    loop: asyncio.AbstractEventLoop
    binary: Path
    root: Path
    examples = 0

    def __init__(self) -> None:
        super().__init__()
        cls = type(self)
        cls.examples += 1
        root = Path(tempfile.mkdtemp(prefix=f"ex{cls.examples}-", dir=cls.root))
        self.world = World(cls.loop, cls.binary, root)
        self.model = Model()
        self.last_out = ""

    def teardown(self) -> None:
        print("\n".join(self.world.log))  # the sequence, shown when an example fails
        self.world.close()

    def act(self, args: tuple[str, ...], kill: float | str | None, expect: int) -> bool:
        """Run one action; True when it was accepted (exit 0, or done by a killed run)."""
        score("lifecycle operations tried")
        code, out = self.world.cli(*args, kill_after=kill)
        self.last_out = out
        if kill is not None and expect == 0 and code == 1:
            return True  # the killed run had finished it: the invariants check the result
        assert code == expect, f"{' '.join(args)}: exit {code}, expected {expect}\n{out}"
        return code == 0

    # ------------------------------------------------------------ operator actions

    @precondition(lambda self: self.model.op not in ("committed", "failed_back"))  # see below
    @rule(kill=KILL)
    def test(self, kill: float | None) -> None:
        ok = self.model.op in ("idle", "testing")
        if self.act(("test",), kill, 0 if ok else 1):
            self.model.op = "testing"

    @rule(kill=KILL)
    def stop_test(self, kill: float | None) -> None:
        if self.act(("stop-test",), kill, 0 if self.model.op == "testing" else 1):
            self.model.op = "idle"

    @rule(kill=KILL)
    def verify(self, kill: float | None) -> None:
        expect = {"idle": 0, "testing": 1, "live": 4, "committed": 0, "failed_back": 0}
        expect_code = expect[self.model.op]
        self.act(("verify",), kill, expect_code)

    @rule(
        kill=KILL,
        at=st.one_of(st.none(), st.floats(0.2, 0.9)),
        force=st.booleans(),
        overwrite=st.booleans(),
    )
    def run(self, kill: float | None, at: float | None, force: bool, overwrite: bool) -> None:
        m = self.model
        args = ["run", "--no-wait"]
        seq = None
        if at is not None:  # a restore point (a batch boundary), other than the active one
            points = [p for p in self.world.points() if p != m.point] or [m.point]
            seq = points[int(len(points) * at)]
            args += ["--at", str(seq)]
        connected = m.source_up and not m.fenced and self.world.source_writes(3, 10)
        force = force and m.op != "failed_back"  # a forced second copy: not modelled
        args += ["--force-split-brain"] * force + ["--overwrite-recovered"] * overwrite
        if m.op == "live":  # a resume (of an unplanned run); another point: roll back first
            ok = seq in (None, m.point) and not m.planned
        else:
            ok = m.op == "idle" and (force or not connected) and (overwrite or not m.kept)
        if self.act(tuple(args), kill, 0 if ok else 1) and m.op != "live":
            if m.kept:
                m.destroyed_by = "--overwrite-recovered"
            m.op, m.kept, m.planned = "live", False, False
            m.point = self.world.status()["points"][GROUP]["seq"]
            assert seq is None or m.point == seq, (m.point, seq)
        if m.op == "live":
            self.world.guest_writes()
            m.dr_data = True

    @rule(kill=KILL, overwrite=st.booleans())
    def run_planned(self, kill: float | None, overwrite: bool) -> None:
        m = self.model
        args = ("run", "--planned", "--no-wait", *["--overwrite-recovered"] * overwrite)
        if m.op == "live":
            ok = m.planned  # a resume; an unplanned one is another operation
        else:  # the seal needs the source connected (else refused at the check)
            ok = m.op == "idle" and m.source_up and (overwrite or not m.kept)
        if self.act(args, kill, 0 if ok else 1) and m.op != "live":
            if m.kept:
                m.destroyed_by = "--overwrite-recovered"
            m.op, m.kept, m.planned = "live", False, True
            m.point = self.world.status()["points"][GROUP]["seq"]
            # (e) zero loss: the sealed point is every write the source completed
            assert m.point == self.world.last_seq(), (m.point, self.world.last_seq())
            if not m.source_restarted:  # one seq per write: the count says the same
                assert m.point == self.world.source.writes, (m.point, self.world.source.writes)
        if m.op == "live":
            self.world.guest_writes()
            m.dr_data = True

    @rule(kill=KILL)
    def commit(self, kill: float | None) -> None:
        if self.act(("commit",), kill, 0 if self.model.op == "live" else 1):
            self.model.op, self.model.point = "committed", None

    @rule(
        kill=KILL, flag=st.sampled_from(["", "--keep-recovered-data", "--discard-recovered-data"])
    )
    def rollback(self, kill: float | None, flag: str) -> None:
        m = self.model
        ok = m.op == "live" and flag != ""
        if self.act(("rollback", *([flag] if flag else [])), kill, 0 if ok else 1):
            m.op, m.point, m.planned = "idle", None, False
            m.kept = flag == "--keep-recovered-data"
            if not m.kept:
                m.dr_data, m.destroyed_by = False, flag

    @rule(kill=st.one_of(KILL, st.sampled_from(FAILBACK_STEPS)))
    def failback(self, kill: float | str | None) -> None:
        """Back to the original site (committing an awaiting failover first); once failed
        back, a re-run is refused."""
        m = self.model
        ok = m.op in ("live", "committed")
        if ok and not m.planned:  # the originals still run: failback refuses two copies
            self.world.power_off_originals()
            self.world.log.append("  the operator powers off the original VMs")
            m.originals_off = True
        if self.act(("failback",), kill, 0 if ok else 1):
            score("lifecycle failbacks")
            m.op, m.point = "failed_back", None

    # ------------------------------------------------------------ the source

    @precondition(lambda self: self.model.source_up)
    @rule()
    def source_link_drops(self) -> None:
        score("lifecycle operations tried")
        self.world.drop_link()
        self.world.log.append("  the source's link drops")
        self.model.source_up = False

    @precondition(lambda self: not self.model.source_up and not self.model.source_dead)
    @rule()
    def source_comes_back(self) -> None:
        score("lifecycle operations tried")
        self.world.reconnect()
        self.world.log.append("  the source comes back (epoch 0)")
        self.model.source_up = True
        if self.model.fenced:  # (b) from the source's side: its writes go nowhere
            before = self.world.group().durable_seq
            assert not self.world.source_writes(3, 2.0)
            assert self.world.group().durable_seq == before, "a fenced source wrote"

    @precondition(lambda self: not self.model.source_dead)
    @rule()
    def source_killed(self) -> None:
        """kill -9 of the source host: its buffer is gone (its link with it)."""
        score("lifecycle operations tried")
        score("lifecycle source kills (kill -9)")
        self.world.kill_source()
        self.world.log.append("  the source host is killed (kill -9)")
        self.model.source_up, self.model.source_dead = False, True

    @precondition(lambda self: self.model.source_dead)
    @rule()
    def source_restarts(self) -> None:
        """The source host starts again on its disks; it resyncs, unless fenced."""
        score("lifecycle operations tried")
        self.world.restart_source()
        self.world.log.append("  the source host restarts (empty buffer: resync)")
        m = self.model
        m.source_up, m.source_dead, m.source_restarted = True, False, True
        if m.fenced:  # (b) a restarted old source is still fenced
            before = self.world.group().durable_seq
            assert not self.world.source_writes(3, 2.0)
            assert self.world.group().durable_seq == before, "a fenced source wrote"

    @rule()
    def target_restarts(self) -> None:
        score("lifecycle operations tried")
        score("lifecycle target restarts")
        self.world.restart_target(self.model.source_up)
        self.world.log.append("  the target restarts")

    # ------------------------------------------------------------ invariants

    @invariant()
    def invariants_hold(self) -> None:
        status = self.world.status()
        for check in (self.recovered_data_kept, self.one_writer, self.inventory_is_status):
            score("lifecycle invariants checked")
            check(status)
            score("lifecycle invariants held")
        score("lifecycle invariants checked")
        self.production_running_or_reported(status)
        score("lifecycle invariants held")
        score("lifecycle invariants checked")
        self.protected_site_as_planned()
        score("lifecycle invariants held")

    def recovered_data_kept(self, status: dict[str, Any]) -> None:
        """(a) the guests' writes survive unless a flag named their loss."""
        m = self.model
        if m.op == "failed_back":  # production's disks at home hold them (DR copies may go)
            lost = [vm for vm in VMS if not self.world.holds_guest_writes(vm, home=True)]
            assert not lost, f"recovered data of {lost} not brought home by the failback"
        elif m.dr_data:
            lost = [vm for vm in VMS if not self.world.holds_guest_writes(vm)]
            assert not lost, f"recovered data of {lost} destroyed without a flag"
        elif m.op in ("idle", "testing"):
            left = [vm for vm in VMS if (self.world.site.replicas / f"{vm}-dr").exists()]
            assert not left, f"{left}: -dr folders left after {m.destroyed_by}"

    def one_writer(self, status: dict[str, Any]) -> None:
        """(b) lifecycle and epoch as the model says; the old epoch fenced when failed over."""
        g = self.world.group()
        assert (LIFECYCLE_NAMES[g.lifecycle], g.epoch) == LIFECYCLE[self.model.op], status
        if self.model.fenced:
            assert self.world.old_epoch_session_refused(), "the old source may write"
        if self.model.op == "failed_back":  # home: the reverse group failed over, its
            h = self.world.home_group()  # reverse source gone (production writes there)
            assert (LIFECYCLE_NAMES[h.lifecycle], h.epoch) == ("failed_over_committed", 1), h
            assert not h.source_connected, "the reverse source still writes after failback"

    def inventory_is_status(self, status: dict[str, Any]) -> None:
        """(c) vcsim's VMs and power states are what `failover status --json` claims."""
        power, op = self.world.power(), self.model.op
        assert status["failback"]["active"] is False, status["failback"]  # never left half done
        if op in ("testing", "live"):
            want = {"testing": "testing", "live": "awaiting-commit"}[op]
            assert status.get("active") and status["status"] == want, status
            claimed = {v["name"] for v in status["vms"] if v["ref"]}
            assert set(power) == claimed, (power, status["vms"])
            assert set(power.values()) == {"poweredOn"}, power
        else:
            assert not status["active"], status
            committed = status.get("state") == "failed over, committed"
            assert committed == (op == "committed"), status
            want_vms = {vm: "poweredOn" for vm in VMS} if committed else {}
            assert power == want_vms, (power, status)

    def production_running_or_reported(self, status: dict[str, Any]) -> None:
        """(d) production runs (recovered VMs on, or the source's writes durable) or the
        target reports it stopped (source disconnected) or status says so."""
        if self.model.op == "failed_back":  # production runs at home, from the synced disks
            want = {vm: (f"[fb-ds] {vm}-dr/{vm}.vmx", "poweredOn") for vm in VMS}
            assert self.world.prod_vms() == want, self.world.prod_vms()
            return
        if self.model.fenced or status.get("production") == "stopped":
            return  # the recovered VMs are production: (c) checked they are on
        if self.model.source_up:
            assert self.world.source_writes(2, 15), "the source runs but cannot write"
        else:
            assert not self.world.group().source_connected, "a lost source shown connected"

    def protected_site_as_planned(self) -> None:
        """(e) the source VMs are off exactly while a planned failover is active/committed."""
        m = self.model
        stopped = (m.planned or m.originals_off) and m.op in ("live", "committed")
        state = "poweredOff" if stopped else "poweredOn"  # failed back: production runs there
        assert self.world.prod_power() == {vm: state for vm in VMS}, self.world.prod_power()


def _run_machine(
    loop: asyncio.AbstractEventLoop, binary: Path, root: Path, examples: int, steps: int
) -> None:
    machine = type("Machine", (LifecycleMachine,), {"loop": loop, "binary": binary, "root": root})
    shrink = os.environ.get("CDP_MODEL_SHRINK") == "1"  # slow against vcsim; off by default
    phases = (Phase.explicit, Phase.generate, *((Phase.shrink,) if shrink else ()))
    config = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(machine, settings=config)


async def test_lifecycle_model(vcsim_binary: Path, tmp_path: Path) -> None:
    """A few short random walks (the default run)."""
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(_run_machine, loop, vcsim_binary, tmp_path, *EXAMPLES_STEPS)


@pytest.mark.soak
async def test_lifecycle_model_soak(vcsim_binary: Path, tmp_path: Path) -> None:
    """Long random walks (pytest -m soak)."""
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(_run_machine, loop, vcsim_binary, tmp_path, 25, 20)


def _planned_walk(loop: asyncio.AbstractEventLoop, binary: Path, root: Path) -> None:
    """Planned run, target restart, rollback, planned run killed and resumed, commit."""
    cls = type("Machine", (LifecycleMachine,), {"loop": loop, "binary": binary, "root": root})
    m = cls()
    try:
        m.invariants_hold()
        for step in (
            lambda: m.run_planned(None, False),
            m.target_restarts,
            lambda: m.rollback(None, "--discard-recovered-data"),
            lambda: m.run_planned(1.5, False),
            m.target_restarts,
            lambda: m.commit(None),
            lambda: m.verify(None),
            lambda: m.failback(None),  # after a committed (planned) failover
        ):
            step()
            m.invariants_hold()
        assert m.model.op == "failed_back" and m.model.planned
    finally:
        m.teardown()


async def test_planned_walk(vcsim_binary: Path, tmp_path: Path) -> None:
    """The planned paths, in a fixed order, with every invariant after every step."""
    await asyncio.to_thread(_planned_walk, asyncio.get_running_loop(), vcsim_binary, tmp_path)


def refused_second_copy(m: LifecycleMachine) -> None:
    """A new run after the failback is refused: production runs at the original site, and
    the group's points here predate it until its source protects the group again."""
    m.run(None, None, False, False)
    assert "failed back at" in m.last_out and "second, older copy" in m.last_out, m.last_out


def _failback_walk(loop: asyncio.AbstractEventLoop, binary: Path, root: Path) -> None:
    """Source kill -9 and restart (resync), unplanned run, failback of the failover still
    awaiting commit with the CLI kill -9'd and run again, failback again (refused), a new
    run after the failback (refused), verify."""
    cls = type("Machine", (LifecycleMachine,), {"loop": loop, "binary": binary, "root": root})
    m = cls()
    try:
        m.invariants_hold()
        for step in (
            m.source_killed,
            m.source_restarts,
            m.source_link_drops,
            lambda: m.run(None, None, False, False),
            lambda: m.failback("power-off-dr"),  # the recovered VMs off, not home yet
            lambda: m.failback(None),  # the re-run: already failed back
            lambda: refused_second_copy(m),
            lambda: m.verify(None),
        ):
            step()
            m.invariants_hold()
        assert m.model.op == "failed_back" and m.model.source_restarted
        assert any(line.startswith("  kill -9 once power-off-dr") for line in m.world.log)
    finally:
        m.teardown()


async def test_failback_walk(vcsim_binary: Path, tmp_path: Path) -> None:
    """Failback (from awaiting commit, killed mid-way), its re-run and a source restart, in
    a fixed order, with every invariant after every step."""
    await asyncio.to_thread(_failback_walk, asyncio.get_running_loop(), vcsim_binary, tmp_path)


def _test_after_commit(loop: asyncio.AbstractEventLoop, binary: Path, root: Path) -> None:
    world = World(loop, binary, root)
    try:
        world.drop_link()
        assert world.cli("run", "--no-wait", "--force-split-brain")[0] == 0
        assert world.cli("commit")[0] == 0
        for args in (("verify",), ("test",), ("stop-test",)):
            code, out = world.cli(*args)
            assert code == 0, out
            g = world.group()
            assert (LIFECYCLE_NAMES[g.lifecycle], g.epoch) == LIFECYCLE["committed"], args
            if args != ("test",):  # (while a test runs, status shows that operation)
                state = world.status().get("state")  # found by the model: lost after verify
                assert state == "failed over, committed", (args, state)
    finally:
        world.close()


async def test_a_test_failover_after_commit_keeps_the_committed_lifecycle(
    vcsim_binary: Path, tmp_path: Path
) -> None:
    """Found by the model: `verify` (or `test` + `stop-test`) after a commit set the group
    back to "protecting" although it is failed over and committed. A test failover only
    marks groups that are protecting, and stop-test puts back what was there."""
    await asyncio.to_thread(_test_after_commit, asyncio.get_running_loop(), vcsim_binary, tmp_path)
