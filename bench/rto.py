"""RTO of a live failover against vcsim: from ``run`` to the last VM powered on.

For 1, 10 and 50 VMs (one consistency group, one 64 MiB disk each with 1 MiB of random
4 KiB writes from the VAIO-style simulator), against a real in-process target (RocksDB,
segments, gRPC on loopback, one-hour history) and a vcsim recovery site of 8 hosts whose
cluster mounts the target's replica folder as the recovery datastore. The failover runs
in-process through the same orchestrator the CLI uses (``cdp failover run``): readiness
checks, PIT image export into ``<vm>-dr/``, RegisterVM, ReconfigVM (CPU, memory, disk,
NIC on the mapped port group), power-on in two boot groups (no delay). Each case then
rolls back and that time is reported too.

RTO is measured from the start of the operation (plan already parsed) to the end of the
last power-on, as the step log records it; "by step" is the wall time spent in each
step kind (steps of one phase run 8 at a time). Prints a Markdown table, writes
results.json and table.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bench.report import environment, markdown

REPO = Path(__file__).resolve().parent.parent
VCSIM_DIR = REPO / "deploy" / "vcsim"
VM_COUNTS = (1, 10, 50)
HOSTS = 8
DISK_BYTES = 64 * 2**20
WRITES_PER_VM = 256
BLOCK = 4096
DS_NAME = "cdp-replica"
VCSIM_TASK_S = 0.1
"""``recovery.estimate_task_s`` of the bench's plans: one round of vCenter tasks on vcsim
(the 50-VM runs in docs/FAILOVER.md: register / reconfigure / power-on 0.5-0.8 s for 7
rounds of 8). The plan default (1 s) is for a real vCenter; with it the estimate's error
here would mostly measure that mismatch, not the model."""
STEP_KINDS = ("checks", "prepare", "export", "register", "reconfigure", "power-on")


# ---------------------------------------------------------------- vcsim


def build_vcsim() -> str:
    """Build (or reuse) the vcsim-cdp binary; return its path."""
    done = subprocess.run([str(VCSIM_DIR / "build.sh")], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def vcsim(binary: str, hosts: int, log_path: Path) -> Any:
    """A vcsim with one cluster of ``hosts`` hosts and the DR port groups; yields its URL."""
    args = [
        binary,
        "-cluster",
        "1",
        "-host",
        str(hosts),
        "-standalone-host",
        "0",
        "-vm",
        "0",
        "-pg",
        "0",
        "-portgroups",
        "DR-Prod,DR-Test-Isolated",
        "-username",
        "cdp",
        "-password",
        "cdp-secret",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("VCSIM_URL="):
            raise RuntimeError(f"vcsim did not start: {line!r}; see {log_path}")
        yield urlsplit(line.removeprefix("VCSIM_URL="))
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def mount_datastore(url: Any, path: Path) -> None:
    """CreateLocalDatastore(DS_NAME, path) on every host of the cluster (lab setup)."""
    import ssl

    from pyVmomi import SoapStubAdapter, vim  # type: ignore[attr-defined]

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    stub = SoapStubAdapter(
        host=url.hostname, port=url.port, version="vim.version.version13", sslContext=ctx
    )
    si = vim.ServiceInstance("ServiceInstance", stub)
    content = si.RetrieveContent()
    content.sessionManager.Login(userName=url.username, password=url.password)
    try:
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        for host in view.view:
            host.configManager.datastoreSystem.CreateLocalDatastore(name=DS_NAME, path=str(path))
        view.DestroyView()
    finally:
        content.sessionManager.Logout()
        stub.DropConnections()


# ---------------------------------------------------------------- the protected side


def parse_size(text: str) -> int:
    """``64MiB``, ``1GiB``, ``512KiB`` or plain bytes."""
    units = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def disk_bytes_for(data_bytes: int, disk_bytes: int = 0) -> int:
    """The disk's capacity for a case: ``disk_bytes`` if given, else twice the data it
    holds (64 MiB for the toy case)."""
    return disk_bytes or max(DISK_BYTES, 2 * data_bytes)


def data_offsets(data_bytes: int, disk_bytes: int, chunk: int = 2**20) -> list[int]:
    """Where the 1 MiB chunks of a disk's data go: from offset 0 when the data fills half
    the disk or more, else spread evenly over the whole disk (sparse in between)."""
    count = -(-data_bytes // chunk)
    stride = max(chunk, (disk_bytes // max(count, 1)) // chunk * chunk)
    if data_bytes * 2 >= disk_bytes:
        stride = chunk
    return [i * stride for i in range(count)]


async def write_source(
    address: str, folder: Path, vms: list[str], seed: int, data_bytes: int = 0,
    target: Any = None, disk_bytes: int = 0,
) -> int:  # fmt: skip
    """Simulated guests write ``data_bytes`` of random data each (1 MiB writes, into the
    base: the target applies at once; spread over the disk, see :func:`data_offsets`),
    then WRITES_PER_VM random 4 KiB blocks each (the journal tail: the target keeps one
    hour from then on); drain; return the tail bytes."""
    from cdp.rpc.client import ReplicationClient
    from cdp.source.buffer import SourceBuffer
    from cdp.source.shipper import Shipper, ShipperConfig
    from sim.filter import ReplicationFilter
    from sim.vm import SimHost, SimVM

    disk = disk_bytes_for(data_bytes, disk_bytes)
    host = SimHost("bench-src", [SimVM(str(folder), vm, [disk]) for vm in vms])
    buffer = SourceBuffer(256 * 2**20)
    for vm in host.vms:
        vm.attach(ReplicationFilter(buffer, host.disk_numbers()))
    client = ReplicationClient(address)
    shipper = Shipper(host.group_spec("bench"), buffer, client, ShipperConfig("bench-src"))
    task = asyncio.ensure_future(shipper.run())
    rng = random.Random(seed)
    try:
        if data_bytes:
            await write_base(host.vms, shipper, data_offsets(data_bytes, disk), data_bytes, target)
        for _ in range(WRITES_PER_VM):
            for vm in host.vms:
                await vm.write(0, rng.randrange(disk // BLOCK) * BLOCK, rng.randbytes(BLOCK))
        await asyncio.wait_for(shipper.drain(), 120)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await client.close()
        host.close()
    return len(vms) * WRITES_PER_VM * BLOCK


async def write_base(
    vms: list[Any], shipper: Any, offsets: list[int], data_bytes: int, target: Any
) -> None:
    """``data_bytes`` of random data per disk at ``offsets``, in 1 MiB writes (drained every
    64 MiB so the source buffer never overflows); wait until the target applied it all, then
    give the target a one-hour history window (as a config reload would)."""
    import dataclasses

    chunk = 2**20
    for i, offset in enumerate(offsets):
        for vm in vms:
            await vm.write(0, offset, os.urandom(min(chunk, data_bytes - i * chunk)))
        if i % 64 == 63:
            await asyncio.wait_for(shipper.drain(), 600)
    await asyncio.wait_for(shipper.drain(), 600)
    while any(m.applier.applied_seq < m.journal.durable_seq for m in target.groups.values()):
        await asyncio.sleep(0.05)
    target.reconfigure(dataclasses.replace(target.config, history_window_s=3600.0))


# ---------------------------------------------------------------- the plan


def plan_file(
    work: Path, url: Any, address: str, replicas: Path, vms: list[str], thumbprint: str,
    disks: str = "chain",
) -> Path:  # fmt: skip
    """A plan for ``vms``: first fifth boots first, the rest next (no delay)."""
    cred = work / "vcenter.cred"
    cred.write_text(yaml.safe_dump({"user": url.username, "password": url.password}))
    cred.chmod(0o600)
    first = vms[: max(1, len(vms) // 5)]
    plan = {
        "version": 1,
        "name": f"bench-{len(vms)}",
        "target": {"address": address, "insecure": True},
        "state_dir": str(work / "state"),
        "rpo_sla_s": 300,
        "vcenter": {
            "url": f"https://{url.hostname}:{url.port}/sdk",
            "credentials": {"file": str(cred)},
            "tls": {"thumbprint": thumbprint},
        },
        "recovery": {
            "datacenter": "DC0",
            "cluster": "DC0_C0",
            "datastore": {"name": DS_NAME, "path": str(replicas)},
            "disks": disks,
            "estimate_task_s": VCSIM_TASK_S,
        },
        "network_mappings": [
            {"source": "VM Network", "live": "DR-Prod", "test": "DR-Test-Isolated"}
        ],
        "groups": [
            {
                "name": "bench",
                "vms": [
                    {"name": vm, "cpus": 1, "memory_mb": 256, "nics": [{"network": "VM Network"}]}
                    for vm in vms
                ],
            }
        ],
        "boot_order": [{"name": "first", "vms": first}, {"name": "rest", "vms": vms[len(first) :]}]
        if len(vms) > 1
        else [],
        "commit": {"timeout_s": 0, "default_action": "rollback"},
    }
    path = work / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


# ---------------------------------------------------------------- one case


async def one_case(
    work: Path, binary: str, n: int, seed: int, data_bytes: int = 0, disks: str = "chain",
    disk_bytes: int = 0, promote: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Fail over ``n`` VMs (``data_bytes`` held per disk), time it, then roll back (or, with
    ``promote``, commit, power the VMs off and time ``cdp failover promote``)."""
    from cdp.failover import vsphere
    from cdp.failover.faults import server_thumbprint
    from cdp.failover.guards import DISCARD
    from cdp.failover.orchestrator import Orchestrator
    from cdp.failover.plan import Credentials, load_plan
    from cdp.failover.remote import TargetReplication
    from cdp.journal.store.rocksdb import RocksIndex
    from cdp.rpc.client import ReplicationClient
    from cdp.rpc.server import start_server
    from cdp.target.config import TargetConfig
    from cdp.target.target import Target

    vms = [f"vm{i:03d}" for i in range(n)]
    data_dir = work / "target"
    with vcsim(binary, HOSTS, work / "vcsim.log") as url:
        window = 0.0 if data_bytes else 3600.0  # the data goes into the base, the tail stays
        target = Target(TargetConfig(str(data_dir), history_window_s=window), RocksIndex)
        async with target:
            server, port = await start_server(target, "127.0.0.1:0")
            address = f"127.0.0.1:{port}"
            t_data = time.monotonic()
            written = await write_source(
                address, work / "source", vms, seed, data_bytes, target, disk_bytes
            )
            data_s = time.monotonic() - t_data
            await asyncio.to_thread(mount_datastore, url, data_dir / "replicas")
            thumbprint = server_thumbprint(url.hostname, url.port, 5)
            plan = load_plan(
                str(plan_file(work, url, address, data_dir / "replicas", vms, thumbprint, disks))
            )
            creds = Credentials(url.username, url.password)
            client = ReplicationClient(address)
            orch = Orchestrator(
                plan,
                lambda: vsphere.connect(plan.vcenter, creds, plan.recovery.parallel),
                TargetReplication(client),
            )
            try:
                t0 = time.monotonic()
                result = await orch.failover("live")
                wall = time.monotonic() - t0
                log = work / "state" / plan.name / "operation.json"
                steps = json.loads(log.read_text())["steps"]
                t1 = time.monotonic()
                if promote:
                    promoted = await promote_all(orch, result)
                else:
                    await orch.rollback(DISCARD)
                rollback_s = time.monotonic() - t1
            finally:
                orch.close()
                await client.close()
                await server.stop(grace=1.0)
    exports = [s for s in steps if s.get("kind") == "export"]
    return {
        "vms": n,
        "disks": disks,
        "data_per_disk_bytes": data_bytes,
        "disk_bytes": disk_bytes_for(data_bytes, disk_bytes),
        "data_layout": "from offset 0"
        if data_bytes * 2 >= disk_bytes_for(data_bytes, disk_bytes)
        else "1 MiB chunks spread evenly over the disk, sparse between",
        "setup_write_s": round(data_s, 1),
        "delta_bytes_written": sum(int((s.get("result") or {}).get("bytes", 0)) for s in exports),
        # nothing runs by itself after power-on; `promote` is an explicit step (VMs off)
        "background_after_power_on_s": 0.0,
        "promote": promoted if promote else None,
        "rto_s": result["rto_s"],
        "wall_s": round(wall, 3),
        "by_step": result["time_by_step"],
        "bytes_written_by_guests": written,
        "bytes_to_prepare": result["bytes_to_prepare"],
        "rto_estimate_s": result["rto_estimate_s"],
        **estimate_error(result["rto_s"], result["rto_estimate_s"]),
        "rollback_s": None if promote else round(rollback_s, 3),
        "steps": result["steps"],
    }


async def promote_all(orch: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Commit, power the recovered VMs off, promote their chains; the promote's figures."""
    from cdp.failover.promote import promote

    await orch.commit()
    vc = await asyncio.to_thread(orch.vcenter)
    for vm in result["vms"]:
        await asyncio.to_thread(vc.power_off, vm["ref"])
    t0 = time.monotonic()
    done = await promote(orch.log, orch.vcenter, orch.replication)
    rows = done["vms"]
    return {
        "seconds": round(time.monotonic() - t0, 3),
        "disks": sum(r["promoted"] for r in rows),
        "bytes_written": sum(r["bytes_written"] for r in rows),
        "holds_released": sum(1 for r in rows if r["released"]),
    }


def estimate_error(measured_s: float, estimate_s: float) -> dict[str, float | None]:
    """How far the dry run's RTO estimate (``steps.estimate_rto``) was from the measured
    RTO: seconds (estimate minus measured; negative = too optimistic) and % of measured."""
    error_s = estimate_s - measured_s
    pct = round(100.0 * error_s / measured_s, 1) if measured_s > 0 else None
    return {"rto_estimate_error_s": round(error_s, 3), "rto_estimate_error_pct": pct}


async def run(
    counts: list[int], seed: int, work_dir: str | None, sizes: tuple[int, ...] = (0,),
    modes: tuple[str, ...] = ("chain",), disk_sizes: tuple[int, ...] = (0,),
    promote: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Every case in its own work folder (removed afterwards)."""
    binary = await asyncio.to_thread(build_vcsim)
    results = []
    cases = [(n, z, d, m) for z in sizes for d in disk_sizes for m in modes for n in counts]
    for n, size, disk, mode in cases:
        work = Path(tempfile.mkdtemp(prefix=f"cdp-rto-{n}-", dir=work_dir))
        try:
            r = await one_case(work, binary, n, seed, size, mode, disk, promote)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results.append(r)
        after = r["promote"]["seconds"] if r.get("promote") else r["rollback_s"]
        print(
            f"  {n:>3} VMs  {size / 2**20:.0f} MiB/disk of {r['disk_bytes'] / 2**30:.2f} GiB "
            f"{mode}  RTO {r['rto_s']:.3f} s  "
            f"delta {r['delta_bytes_written'] / 2**20:.1f} MiB  "
            f"estimate {r['rto_estimate_s']:.3f} s "
            f"({_signed(r['rto_estimate_error_s'])} s, {_pct(r['rto_estimate_error_pct'])})  "
            f"({'promote' if promote else 'rollback'} {after:.3f} s)",
            file=sys.stderr, flush=True,
        )  # fmt: skip
    settings = {
        "hosts": HOSTS,
        "disk_bytes": DISK_BYTES,
        "writes_per_vm": WRITES_PER_VM,
        "block_bytes": BLOCK,
        "parallel": 8,
        "boot_groups": 2,
    }
    return {
        "benchmark": "rto",
        "settings": settings,
        "environment": environment(REPO, work_dir),
        "results": results,
    }


def render(doc: dict[str, Any]) -> str:
    """The cases as a Markdown table (seconds)."""
    header = (
        "VMs", "data/disk MiB", "disks", "RTO s", "estimate s", "error s", "error %",
        "disk GiB", *(f"{k} s" for k in STEP_KINDS), "rollback s", "prepare MiB", "written MiB",
        "after power-on",
    )  # fmt: skip
    rows = [
        (
            str(r["vms"]),
            f"{r.get('data_per_disk_bytes', 0) / 2**20:.0f}",
            r.get("disks", "copy"),
            f"{r['rto_s']:.3f}",
            f"{r['rto_estimate_s']:.3f}",
            _signed(r.get("rto_estimate_error_s")),
            _pct(r.get("rto_estimate_error_pct")),
            f"{r.get('disk_bytes', DISK_BYTES) / 2**30:g}",
            *(f"{r['by_step'].get(k, 0.0):.3f}" for k in STEP_KINDS),
            _secs(r.get("rollback_s")),
            f"{r['bytes_to_prepare'] / 2**20:.1f}",
            f"{r.get('delta_bytes_written', 0) / 2**20:.1f}",
            _after(r.get("promote")),
        )
        for r in doc["results"]
    ]
    return markdown(header, rows)


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _after(promoted: dict[str, Any] | None) -> str:
    """What ran after power-on: nothing on its own; ``promote`` when the case asked."""
    if not promoted:
        return "none"
    return f"promote {promoted['seconds']:.1f} s ({promoted['bytes_written'] / 2**20:.0f} MiB)"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f} %"


def add_parser(sub: Any) -> None:
    """Register ``rto``."""
    p = sub.add_parser("rto", help="failover RTO for 1, 10, 50 VMs against vcsim")
    p.add_argument("--vms", default=",".join(map(str, VM_COUNTS)), help="VM counts, e.g. 1,10,50")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="results folder (default bench/results/rto-<UTC timestamp>/)")
    p.add_argument("--work-dir", help="where targets and vcsim datastores go (default: temp)")
    p.add_argument(
        "--data-per-disk", default="",
        help="random data written into each disk's base first, e.g. 64MiB,1GiB (disk = 2x)",
    )  # fmt: skip
    p.add_argument(
        "--disks", default="chain", help="recovery.disks modes to compare, e.g. chain,copy"
    )
    p.add_argument(
        "--disk-size", default="",
        help="each disk's capacity, e.g. 8GiB,64GiB (sparse files; the data is spread over "
        "it in 1 MiB chunks); default twice the data",
    )  # fmt: skip
    p.add_argument(
        "--promote", action="store_true",
        help="after the failover: commit, power off, time `cdp failover promote` (no rollback)",
    )  # fmt: skip
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run, print the table, write results.json and table.md."""
    counts = [int(x) for x in args.vms.split(",") if x.strip()]
    sizes = tuple(parse_size(x) for x in args.data_per_disk.split(",") if x.strip()) or (0,)
    modes = tuple(x for x in args.disks.split(",") if x.strip())
    disk_sizes = tuple(parse_size(x) for x in args.disk_size.split(",") if x.strip()) or (0,)
    doc = asyncio.run(run(counts, args.seed, args.work_dir, sizes, modes, disk_sizes, args.promote))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out or REPO / "bench" / "results" / f"rto-{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    table = render(doc)
    (out / "table.md").write_text(table + "\n")
    print(table)
    print(f"\nresults: {out / 'results.json'}")
    return 0
