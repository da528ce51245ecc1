"""``cdp sim run``: a simulated protected host writing to a target.

This and ``cdp demo`` are the only places cdp reaches into ``sim/``: the simulator is a
test and demo tool, driven from the product's command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from cdp.cli import bandwidth_flags, common
from cdp.errors import InvalidInputError

MAX_GROUPS = 64


def add_parser(sub: Any) -> None:
    """Register ``sim run``."""
    p = sub.add_parser("sim", help="simulated protected hosts (VAIO-style filter + workload)")
    ssub = p.add_subparsers(dest="sim_command", required=True, metavar="SUBCOMMAND")
    r = ssub.add_parser("run", help="run one simulated host with a workload against a target")
    r.add_argument("--target", required=True, help="HOST:PORT of the target")
    add_workload_args(r)
    r.add_argument("--dir", help="folder for the source disks (default: a temporary folder)")
    r.add_argument("--json", action="store_true", help="print one JSON object at the end")
    r.add_argument("--rpo-log", default="", help="append each 100 ms RPO sample to this file "
                   "as a JSON line [t_s, rpo_s, bytes written so far]")  # fmt: skip
    r.add_argument("--trace", default="", help="replay this normalised trace (bench/trace.py "
                   "converts MSR CSV / fio iolog) instead of --pattern")  # fmt: skip
    r.add_argument("--speedup", type=float, default=1.0, help="replay the trace N times faster")
    r.add_argument("--groups", type=int, default=1, metavar="N",
                   help=f"run N consistency groups on this host (1..{MAX_GROUPS}), each with its "
                   "own VMs, shipper and session: group G-i, VMs V-i, seed+i, RPO log "
                   "PATH.i; --json then prints the totals, with each group's figures under "
                   "'groups'")  # fmt: skip
    bandwidth_flags.add_bandwidth_args(r)
    r.add_argument(
        "--epoch", type=int, default=0, metavar="N",
        help="the fencing epoch to write under (default 0). A group failed over has a "
        "higher one (`cdp status`): after a failback the original site's source rejoins "
        "with it, and the target asks it for a full resync (docs/FAILOVER.md, Failback)",
    )  # fmt: skip
    r.add_argument(
        "--power-file", default="", metavar="PATH",
        help="the protected VMs' power state: 'off' in PATH stops the guests' writes (the "
        "source drains and idles), 'on' or no file resumes them; polled every 50 ms "
        "(rehearse a planned failover, docs/FAILOVER.md)",
    )  # fmt: skip
    r.add_argument(
        "--power-plan", default="", metavar="PLAN",
        help="obey the protected vCenter of this failover plan (its protected_site): a VM "
        "it reports powered off writes no more, as `cdp failover run --planned` powers them "
        "off; polled every 0.25 s (docs/FAILOVER.md)",
    )  # fmt: skip
    common.add_tls_flags(r, "a source's folder from `cdp certs init`, e.g. DIR/sources/host-a")
    r.set_defaults(handler=run)


def add_workload_args(p: argparse.ArgumentParser) -> None:
    """Flags that describe the simulated host and its workload."""
    p.add_argument("--group", default="sim-group", help="consistency group name")
    p.add_argument("--vm", action="append", help="VM name (repeat for several; default sim-vm)")
    p.add_argument("--disks", type=int, default=2, help="disks per VM")
    p.add_argument("--disk-size", default="256MiB", help="capacity of each disk")
    p.add_argument("--pattern", default="random", help="random, sequential, mixed or "
                   "overwrite; or a ransomware/benign scenario: office, media-copy, "
                   "encrypted-db, ransom-fast, ransom-slow, ransom-intermittent, flip "
                   "(--rate-mb is then the everyday traffic, default 2)")  # fmt: skip
    p.add_argument(
        "--attack-at",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="a ransom-*/flip scenario's first encrypted write (default: half-way)",
    )
    p.add_argument(
        "--attack-rate-mb",
        type=float,
        default=0.0,
        help="a ransom-*/flip scenario's encrypted MB/s (default: the scenario's)",
    )
    p.add_argument("--block-size", default="4k", help="write size, 512 B to 1 MiB, 512-aligned")
    p.add_argument(
        "--rate-mb", type=float, default=0.0, help="MB/s to write (0: as fast as possible)"
    )
    p.add_argument(
        "--iops", type=float, default=0.0, help="writes per second (instead of --rate-mb)"
    )
    p.add_argument("--compressibility", type=float, default=0.5, help="0 (random) to 1 (zeros)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0, help="how long to write")
    p.add_argument(
        "--region-size", default="64KiB",
        help="dirty-map region size (the unit of resync)",
    )  # fmt: skip
    p.add_argument(
        "--dirty-after", type=float, default=10.0, metavar="SECONDS",
        help="after the link is down this long, writes go to the dirty map (default 10)",
    )  # fmt: skip
    p.add_argument(
        "--initial-sync", action="store_true",
        help="the disks already hold data: start with a full, hash-compared sync",
    )  # fmt: skip
    p.add_argument(
        "--app-consistent-every", type=float, default=0.0, metavar="SECONDS",
        help="quiesce the VMs and take an application-consistent point this often (0: never)",
    )  # fmt: skip


def build_parser_defaults(**overrides: Any) -> argparse.Namespace:
    """The workload flags' defaults as parsed arguments, with ``overrides``."""
    p = argparse.ArgumentParser()
    add_workload_args(p)
    args = p.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def sim_config(args: argparse.Namespace, folder: str, default_vm: str) -> Any:
    """A :class:`sim.runner.SimConfig` from the flags, validated."""
    from sim.runner import SimConfig
    from sim.workload import WorkloadSpec

    if args.disks < 1 or args.disks > 60:
        raise InvalidInputError("--disks", "must be 1..60")
    if args.seconds <= 0:
        raise InvalidInputError("--seconds", "must be positive")
    if args.app_consistent_every < 0:
        raise InvalidInputError("--app-consistent-every", "cannot be negative")
    if args.attack_at < 0 or args.attack_rate_mb < 0:
        raise InvalidInputError(
            "--attack-at", "--attack-at and --attack-rate-mb cannot be negative"
        )
    workload = WorkloadSpec(
        args.pattern, common.parse_size("--block-size", args.block_size), args.rate_mb,
        args.iops, args.compressibility, args.seed,
    ).validate()  # fmt: skip
    disk_bytes = common.parse_size("--disk-size", args.disk_size)
    if disk_bytes < workload.block_bytes or disk_bytes % 512:
        raise InvalidInputError("--disk-size", "must be a multiple of 512 and hold one block")
    epoch = getattr(args, "epoch", 0)
    if epoch < 0:
        raise InvalidInputError("--epoch", "cannot be negative")
    return SimConfig(
        target=args.target, folder=folder, group=args.group, epoch=epoch,
        vms=tuple(args.vm or [default_vm]), disks_per_vm=args.disks, disk_bytes=disk_bytes,
        workload=workload, seconds=args.seconds,
        app_consistent_every_s=args.app_consistent_every,
        protection=protection_config(args),
        attack_at_s=args.attack_at, attack_mb_s=args.attack_rate_mb,
    )  # fmt: skip


def protection_config(args: argparse.Namespace) -> Any:
    """The dirty-map and resync settings from the flags."""
    from cdp.source.protection import ProtectionConfig

    region = common.parse_size("--region-size", args.region_size)
    if region % 512 or not 4096 <= region <= 64 * 2**20:
        raise InvalidInputError("--region-size", "must be a multiple of 512 in 4KiB..64MiB")
    if args.dirty_after < 0:
        raise InvalidInputError("--dirty-after", "cannot be negative")
    return ProtectionConfig(region, args.dirty_after, args.initial_sync)


async def run(args: argparse.Namespace) -> int:
    """Run the host, print the figures."""
    from sim import runner

    if not 1 <= args.groups <= MAX_GROUPS:
        raise InvalidInputError("--groups", f"must be 1..{MAX_GROUPS}")
    caps = bandwidth_flags.bandwidth_settings(args)
    if args.power_plan and args.power_file:
        raise InvalidInputError("--power-plan", "give --power-plan or --power-file, not both")
    with tempfile.TemporaryDirectory(prefix="cdp-sim-") as tmp, PowerPlan(args.power_plan) as pp:
        config = sim_config(args, args.dir or tmp, "sim-vm")
        if args.speedup <= 0:
            raise InvalidInputError("--speedup", "must be positive")
        config = dataclasses.replace(
            config, tls=common.client_tls(args), rpo_log=args.rpo_log,
            trace=args.trace, trace_speedup=args.speedup,
            source_bandwidth=caps.source, group_bandwidth=caps.group,
            power_file=args.power_file,
        )  # fmt: skip
        configs = [
            dataclasses.replace(c, priority=caps.priority_of(i), power_states=pp.reader(c.vms))
            for i, c in enumerate(runner.group_configs(config, args.groups))
        ]
        if args.groups == 1:
            result = await runner.run(configs[0], None if args.json else live_line)
        else:
            result = await runner.run_groups(configs)
    if args.json:
        common.emit_json(result)
    else:
        print(file=sys.stderr)
        print(summary(result))
    return common.EXIT_OK


class PowerPlan:
    """The protected vCenter of a failover plan, asked for the sim's VMs' power states.

    One vCenter session for the run (opened at the first read, in the reader's thread),
    logged out on exit. With no plan, :meth:`reader` is None (the power file decides).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._session: list[Any] = []
        self._lock = threading.Lock()
        if not path:
            return
        from cdp.cli.failover_common import connector
        from cdp.failover.plan import load_plan

        site = load_plan(path).protected_site
        if site is None:
            raise InvalidInputError(
                "--power-plan", f"{path} has no protected_site (the vCenter of the source VMs)"
            )
        self._site = site
        self._connect = connector(site.vcenter, 1)

    def reader(self, vms: tuple[str, ...]) -> Callable[[], dict[str, str]] | None:
        """Reads {VM: power state} of ``vms`` (those vCenter knows); None without a plan."""
        if not self.path:
            return None

        def read() -> dict[str, str]:
            with self._lock:
                if not self._session:
                    self._session.append(self._connect())
                vc = self._session[0]
            found = {vm: vc.find_vm_by_name(self._site.datacenter, vm) for vm in vms}
            return {vm: f.power_state for vm, f in found.items() if f is not None}

        return read

    def __enter__(self) -> PowerPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            for vc in self._session:
                vc.close()


def live_line(p: Any) -> None:
    """One status line, rewritten in place on a terminal."""
    from sim.runner import Progress

    assert isinstance(p, Progress)
    rate = p.bytes / max(p.elapsed_s, 1e-9) / 1e6
    line = (
        f"{p.elapsed_s:6.1f} s  writes {p.writes:>9,}  {rate:7.1f} MB/s"
        f"  RPO {p.rpo_s:6.3f} s  acked seq {p.acked_seq:>9,}  "
        f"buffer {common.fmt_bytes(p.buffer_bytes):>9}  {'linked' if p.connected else 'LINK DOWN'}"
    )
    end = "\r" if sys.stderr.isatty() else "\n"
    if end == "\n" and int(p.elapsed_s * 10) % 10:
        return  # once a second when not on a terminal
    print(line, end=end, file=sys.stderr, flush=True)


def summary(r: dict[str, Any]) -> str:
    """The figures of a run, for people."""
    return (
        f"wrote {r['writes']:,} writes, {common.fmt_bytes(r['bytes'])} in {r['seconds']} s "
        f"({r['mb_per_s']} MB/s, {r['writes_per_s']:,} writes/s)\n"
        f"RPO p50 {r['rpo_p50_s']} s  p99 {r['rpo_p99_s']} s  max {r['rpo_max_s']} s; "
        + (f"acked seq {r['acked_seq']:,}" if "groups" not in r else
           f"{len(r['groups'])} groups (RPO: the worst group's)")
        + f"; drained in {r['drain_s']} s"
    )  # fmt: skip
