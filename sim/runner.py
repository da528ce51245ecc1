"""Run a simulated protected host against a target and measure what it saw.

Used by ``cdp sim run``, ``cdp demo`` and ``bench/``. One host, one consistency group
holding all its VMs, one shipper. RPO is sampled every 100 ms from the source's view
(its buffer and the acks it got), which is what DESIGN.md defines.

A run goes in phases, each its own function: set up (``_set_up``: host, filters, buffer,
protection, shipper), wait at the start barrier, start the background tasks (``_start``),
write and drain (``_write_and_drain``), stop (``_stop``) and report (``_report``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from cdp.rpc.client import ReplicationClient
from cdp.source.bandwidth import DEFAULT_PRIORITY, Limiter, Schedule, Throttle
from cdp.source.buffer import DEFAULT_BUFFER_BYTES, SourceBuffer
from cdp.source.protection import Mode, Protection, ProtectionConfig
from cdp.source.rpo import SAMPLE_INTERVAL_S, RpoSeries, rpo_seconds
from cdp.source.shipper import Shipper, ShipperConfig
from cdp.tls import ClientTLS
from sim.agent import GuestAgent, QuiesceGate
from sim.filter import ReplicationFilter
from sim.power import POLL_S as POWER_POLL_S
from sim.power import Power, PowerSwitch, VCenterPower
from sim.vm import SimHost, SimVM
from sim.workload import SCENARIO_PATTERNS, Workload, WorkloadSpec

DEFAULT_DRAIN_TIMEOUT_S = 120.0
YIELD_BYTES = 2**20
"""An unpaced guest yields to the shipper after this many bytes (or 256 writes)."""


@dataclass(frozen=True)
class SimConfig:
    """One simulated host run."""

    target: str
    folder: str
    """Where the source VMs' disks live (``<folder>/<vm>/<vm>_<n>.vmdk``)."""
    group: str = "demo-group"
    vms: tuple[str, ...] = ("demo-vm",)
    disks_per_vm: int = 2
    disk_bytes: int = 256 * 2**20
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    seconds: float = 10.0
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    source_id: str = "sim-host-1"
    epoch: int = 0
    """The fencing epoch the source writes under (``cdp status`` shows the group's; after a
    failback the original site's source rejoins with it)."""
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    app_consistent_every_s: float = 0.0
    """Take an application-consistent point this often (0: never)."""
    tls: ClientTLS | None = None
    """The source's certificate for mutual TLS (None: plain text)."""
    protection: ProtectionConfig = field(default_factory=ProtectionConfig)
    """Dirty-map fallback and resync settings (initial_sync for disks that hold data)."""
    rpo_log: str = ""
    """Append each 100 ms RPO sample here as a JSON line [t_s, rpo_s, bytes] ("" = none)."""
    trace: str = ""
    """Replay this normalised trace (sim/trace_workload.py) instead of ``workload``."""
    trace_speedup: float = 1.0
    source_bandwidth: Schedule = field(default_factory=Schedule)
    """The source's cap, shared by the groups of one run (:func:`run_groups`)."""
    group_bandwidth: Schedule = field(default_factory=Schedule)
    """This group's own cap."""
    priority: str = DEFAULT_PRIORITY
    """This group's claim on the source's cap (strict priority)."""
    power_file: str = ""
    """The guests' power state (sim/power.py): "off" in it stops their writes ("" = on)."""
    power_states: Callable[[], dict[str, str]] | None = None
    """Reads each VM's power state at the protected vCenter (``--power-plan``, a blocking
    call run in a thread); a VM powered off there writes no more. None: ``power_file``."""
    attack_at_s: float = 0.0
    """A ransomware scenario's first encrypted write, seconds from the start (0: half-way)."""
    attack_mb_s: float = 0.0
    """A ransomware scenario's encrypted MB/s (0: the scenario's default)."""


@dataclass
class Progress:
    """A live reading while a run goes on."""

    elapsed_s: float
    writes: int
    bytes: int
    acked_seq: int
    rpo_s: float
    buffer_bytes: int
    connected: bool
    mode: str = "journaling"
    """Where writes go: journaling, tracking (dirty map) or resyncing."""


def build_host(config: SimConfig) -> SimHost:
    """The host with its VMs and blank disks."""
    vms = [SimVM(config.folder, vm, [config.disk_bytes] * config.disks_per_vm) for vm in config.vms]
    return SimHost(config.source_id, vms)


async def run(
    config: SimConfig,
    on_progress: Callable[[Progress], None] | None = None,
    start: asyncio.Barrier | None = None,
    source_limiter: Limiter | None = None,
) -> dict[str, Any]:
    """Write for ``config.seconds``, drain, and return the figures of the run.

    With ``start``, wait there once set up, so that groups sharing this event loop begin
    writing together (a group's set-up blocks the loop for a while). ``source_limiter``
    is the source's cap when several groups share it (else one is made from the config).
    """
    parts = _set_up(config)
    parts.shipper.throttle = throttle_for(config, source_limiter)
    if start is not None:
        await start.wait()
    tasks = _start(parts, config, on_progress)
    try:
        write_s, drain_s = await _write_and_drain(parts, config, tasks, on_progress)
    finally:
        await _stop(parts, tasks)
    return _report(parts, config, write_s, drain_s, _cpu_s() - tasks.cpu0)


@dataclass
class _Parts:
    """One run's host and source side, wired together before the start barrier."""

    host: SimHost
    buffer: SourceBuffer
    protection: Protection
    agent: GuestAgent
    client: ReplicationClient
    shipper: Shipper
    workload: Workload
    series: RpoSeries = field(default_factory=RpoSeries)
    counters: dict[str, int] = field(default_factory=lambda: {"writes": 0, "bytes": 0})
    """The guest's writes and bytes so far."""
    t0: float = 0.0
    """When writing began (monotonic seconds)."""

    def reading(self) -> Progress:
        """The run as it stands now."""
        now = time.time_ns()
        buffer = self.buffer
        rpo = self.protection.rpo_s(now)
        if rpo is None:
            rpo = rpo_seconds(now, len(buffer), buffer.acked_ns, buffer.oldest_ns())
        return Progress(
            time.monotonic() - self.t0, self.counters["writes"], self.counters["bytes"],
            buffer.acked_seq, rpo, buffer.bytes_held, self.shipper.connected,
            self.protection.mode.value,
        )  # fmt: skip


@dataclass
class _Tasks:
    """The background tasks of a started run, and where its CPU count began."""

    guard: asyncio.Future[None]
    ship: asyncio.Future[None]
    sampler: asyncio.Future[None]
    points: asyncio.Future[Any]
    log: TextIO | None
    cpu0: float


def _set_up(config: SimConfig) -> _Parts:
    """The host, its filters, buffer, protection, agent and shipper: nothing runs yet."""
    host = build_host(config)
    spec = host.group_spec(config.group)
    buffer = SourceBuffer(config.buffer_bytes)
    gates = [QuiesceGate() for _ in host.vms]
    seals = [QuiesceGate() for _ in host.vms]  # a planned failover's seal holds guest writes
    protection = make_protection(host, buffer, gates, config.protection)
    for vm, gate, seal in zip(host.vms, gates, seals, strict=True):
        vm.attach(gate)
        vm.attach(seal)  # last before the journal: no write waits between it and the buffer
        vm.attach(ReplicationFilter(buffer, host.disk_numbers(), protection=protection))
    agent = GuestAgent(buffer, gates, [])
    client = ReplicationClient(config.target, config.tls)
    shipper = Shipper(spec, buffer, client, ShipperConfig(config.source_id, epoch=config.epoch))
    shipper.hold_writes, shipper.release_writes = _switch(seals, True), _switch(seals, False)
    shipper.on_resync_required = protection.rejoin
    shipper.idle_check = protection.journaling_all
    workload = Workload(config.workload, [config.disk_bytes] * config.disks_per_vm * len(host.vms))
    return _Parts(host, buffer, protection, agent, client, shipper, workload)


def _switch(gates: list[QuiesceGate], hold: bool) -> Callable[[], None]:
    """Hold (or release) every gate: how a seal fences the guests' writes."""

    def switch() -> None:
        for g in gates:
            if hold:
                g.hold()
            else:
                g.release()

    return switch


def _start(
    parts: _Parts, config: SimConfig, on_progress: Callable[[Progress], None] | None
) -> _Tasks:
    """Start protection, shipping, RPO sampling and application-consistent points."""
    guard = asyncio.ensure_future(parts.protection.run(parts.shipper, parts.client))
    cpu0 = _cpu_s()
    ship = asyncio.ensure_future(parts.shipper.run())
    parts.t0 = time.monotonic()
    log = open(config.rpo_log, "a", encoding="utf-8") if config.rpo_log else None  # noqa: SIM115
    sampler = asyncio.ensure_future(_sample(parts.reading, parts.series, on_progress, log))
    every = config.app_consistent_every_s
    points = asyncio.ensure_future(parts.agent.run_every(every) if every else asyncio.sleep(0))
    return _Tasks(guard, ship, sampler, points, log, cpu0)


async def _write_and_drain(
    parts: _Parts, config: SimConfig, tasks: _Tasks,
    on_progress: Callable[[Progress], None] | None,
) -> tuple[float, float]:  # fmt: skip
    """Drive the workload, wait until every write is acked; (writing s, draining s)."""
    await _drive(parts.host, config, parts.workload, parts.counters, tasks.ship)
    write_s = time.monotonic() - parts.t0
    drain_start = time.monotonic()
    await _wait_drained(parts.shipper, tasks.ship, parts.protection, config.drain_timeout_s)
    drain_s = time.monotonic() - drain_start
    tasks.sampler.cancel()
    _record(parts.reading(), parts.series, on_progress, tasks.log)  # the closing sample
    return write_s, drain_s


async def _stop(parts: _Parts, tasks: _Tasks) -> None:
    """Cancel the run's tasks, close the RPO log, the channel and the disks."""
    tasks.sampler.cancel()
    if tasks.log is not None:
        tasks.log.close()
    tasks.points.cancel()
    tasks.guard.cancel()
    tasks.ship.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await tasks.ship
    await parts.client.close()
    parts.host.close()


def _report(
    parts: _Parts, config: SimConfig, write_s: float, drain_s: float, cpu_s: float
) -> dict[str, Any]:
    """The figures of a finished run (``cdp sim run --json`` prints these)."""
    written, stats = parts.counters["bytes"], parts.protection.stats
    return {
        "writes": parts.counters["writes"],
        "bytes": written,
        "acked_seq": parts.buffer.acked_seq,
        "seconds": round(write_s, 3),
        "mb_per_s": round(written / write_s / 1e6, 2),
        "writes_per_s": round(parts.counters["writes"] / write_s, 1),
        "drain_s": round(drain_s, 3),
        "sessions": parts.shipper.sessions,
        "batches": parts.shipper.batches_sent,
        "source_cpu_s": round(cpu_s, 3),
        "source_cpu_s_per_gb": round(cpu_s / max(written, 1) * 1e9, 3),
        **{k: round(v, 4) for k, v in parts.series.summary().items()},
        "rpo_samples": len(parts.series.samples),
        "app_consistent_points": len(parts.agent.points),
        "resyncs": stats.resyncs,
        "resync_regions_sent": stats.regions_sent,
        "resync_bytes_sent": stats.bytes_sent,
        "resync_last_s": round(stats.last_resync_s, 3),
        "disks": [
            {"vm": vm.vm_id, "disk": n, "vmdk": d.descriptor_path}
            for vm in parts.host.vms
            for n, d in enumerate(vm.disks)
        ],
        "group": config.group,
        "attack_first_write_unix_ns": parts.counters.get("attack_first_write_unix_ns", 0),
    }


def group_rpo_log(path: str, i: int, groups: int) -> str:
    """Where group ``i`` of ``groups`` logs its RPO: ``path`` alone, ``path.i`` for several."""
    return path if groups == 1 else f"{path}.{i}"


def group_configs(config: SimConfig, groups: int) -> list[SimConfig]:
    """``groups`` copies of one host's settings, each its own consistency group.

    Copy ``i`` is group ``<group>-<i>`` with VMs ``<vm>-<i>``, source ``<source_id>-<i>``,
    seed ``seed + i``, disks under ``<folder>/group-<i>`` and RPO log ``<rpo_log>.<i>``.
    One copy is ``config`` unchanged.
    """
    if groups == 1:
        return [config]
    return [
        dataclasses.replace(
            config,
            group=f"{config.group}-{i}",
            vms=tuple(f"{vm}-{i}" for vm in config.vms),
            source_id=f"{config.source_id}-{i}",
            folder=os.path.join(config.folder, f"group-{i}"),
            workload=dataclasses.replace(config.workload, seed=config.workload.seed + i),
            rpo_log=group_rpo_log(config.rpo_log, i, groups) if config.rpo_log else "",
        )  # fmt: skip
        for i in range(groups)
    ]


async def run_groups(configs: list[SimConfig]) -> dict[str, Any]:
    """Run several groups side by side in this process (one host, many protected groups).

    Each group has its own filter, buffer, shipper and gRPC channel, as each would on a
    real ESXi host. Returns the totals, with each group's own figures under ``groups``;
    CPU is the process's, so it is only given in total.
    """
    cpu0 = _cpu_s()
    start = asyncio.Barrier(len(configs))
    shared = Limiter(configs[0].source_bandwidth) if configs[0].source_bandwidth.capped else None
    results = list(
        await asyncio.gather(*(run(c, start=start, source_limiter=shared) for c in configs))
    )
    cpu_s = _cpu_s() - cpu0
    for r in results:
        del r["source_cpu_s"], r["source_cpu_s_per_gb"]
    total = sum(r["bytes"] for r in results)
    writes = sum(r["writes"] for r in results)
    seconds = max(r["seconds"] for r in results)
    return {
        "writes": writes, "bytes": total, "seconds": seconds,
        "mb_per_s": round(total / seconds / 1e6, 2), "writes_per_s": round(writes / seconds, 1),
        "drain_s": max(r["drain_s"] for r in results),
        "batches": sum(r["batches"] for r in results),
        "source_cpu_s": round(cpu_s, 3),
        "source_cpu_s_per_gb": round(cpu_s / max(total, 1) * 1e9, 3),
        **{k: max(r[k] for r in results) for k in _WORST},
        "resyncs": sum(r["resyncs"] for r in results),
        "resync_bytes_sent": sum(r["resync_bytes_sent"] for r in results),
        "resync_last_s": max(r["resync_last_s"] for r in results),
        "groups": results,
    }  # fmt: skip


_WORST = ("rpo_p50_s", "rpo_p95_s", "rpo_p99_s", "rpo_max_s", "rpo_above_sla_s")
"""Per-group RPO figures whose worst value the totals of :func:`run_groups` report."""


async def _drive(
    host: SimHost, config: SimConfig, workload: Workload, counters: dict[str, int],
    ship: asyncio.Future[None],
) -> None:  # fmt: skip
    """Issue the workload's writes at its rate for ``config.seconds``."""
    vm_disks = [(vm, n) for vm in host.vms for n in range(len(vm.disks))]
    if config.trace:
        await _drive_trace(vm_disks, config, counters, ship)
        return
    if config.workload.pattern in SCENARIO_PATTERNS:
        await _drive_scenario(vm_disks, config, counters, ship)
        return
    rate = config.workload.writes_per_s()
    t0 = end = time.monotonic()
    end += config.seconds
    power: Power = (
        VCenterPower(config.power_states) if config.power_states else PowerSwitch(config.power_file)
    )
    try:
        await _drive_until(end, t0, rate, vm_disks, workload, counters, ship, power)
    finally:
        if isinstance(power, VCenterPower):
            power.close()


async def _drive_until(
    end: float, t0: float, rate: float, vm_disks: list[tuple[SimVM, int]], workload: Workload,
    counters: dict[str, int], ship: asyncio.Future[None], power: Power,
) -> None:  # fmt: skip
    """The paced write loop of :func:`_drive`; a powered-off guest issues no write."""
    burst = 0
    while time.monotonic() < end:
        elapsed = time.monotonic() - t0
        if ship.done():
            ship.result()  # a shipper that stopped for good ends the run with its error
        if not power.is_on():  # powered off: no guest writes; the shipper drains and idles
            await asyncio.sleep(POWER_POLL_S)
            t0 += POWER_POLL_S  # the pace resumes where it stopped (no catch-up burst)
            continue
        due = int(rate * elapsed) + 1 if rate else counters["writes"] + 256
        if rate and counters["writes"] >= due:
            # Caught up: sleep until the next write is due, not a fixed 1 ms, so that many
            # slow guests in one process do not wake the event loop thousands of times a second.
            await asyncio.sleep(max(0.001, counters["writes"] / rate - elapsed))
            continue
        while counters["writes"] < due:
            disk, offset, data = workload.next_write()
            vm, n = vm_disks[disk]
            if not power.is_on(vm.vm_id):  # this guest is off: end the burst
                break
            await vm.write(n, offset, data)
            counters["writes"] += 1
            counters["bytes"] += len(data)
            burst += len(data)
            if counters["writes"] % 256 == 0 or burst >= YIELD_BYTES:
                burst = 0
                break
        await asyncio.sleep(0.001 if rate else 0)


async def _drive_trace(
    vm_disks: list[tuple[SimVM, int]],
    config: SimConfig,
    counters: dict[str, int],
    ship: asyncio.Future[None],
) -> None:
    """Replay ``config.trace`` (timestamps / speed-up) for at most ``config.seconds``."""
    from sim import trace_workload as tw

    writes = tw.load_trace(config.trace)
    tw.check_fits(writes, len(vm_disks), config.disk_bytes)

    async def write(w: tw.TraceWrite, data: bytes) -> None:
        vm, n = vm_disks[w.disk]
        await vm.write(n, w.offset, data)
        counters["writes"] += 1
        counters["bytes"] += len(data)

    def check() -> None:
        if ship.done():
            ship.result()

    data = tw.TraceData(config.workload.seed, config.workload.compressibility)
    await tw.replay(writes, config.trace_speedup, config.seconds, write, data, check)


async def _drive_scenario(
    vm_disks: list[tuple[SimVM, int]],
    config: SimConfig,
    counters: dict[str, int],
    ship: asyncio.Future[None],
) -> None:
    """Run a ransomware or benign high-entropy scenario (sim/ransomware.py) in real time."""
    from sim import ransomware

    spec = ransomware.ScenarioSpec(
        config.workload.pattern, seconds=config.seconds,
        attack_at_s=config.attack_at_s or config.seconds / 2,
        base_mb_s=config.workload.rate_mb_s or 2.0, attack_mb_s=config.attack_mb_s,
        disks=len(vm_disks), disk_bytes=config.disk_bytes, seed=config.workload.seed,
    )  # fmt: skip

    async def write(w: ransomware.TimedWrite) -> None:
        vm, n = vm_disks[w.disk]
        await vm.write(n, w.offset, w.data)
        counters["writes"] += 1
        counters["bytes"] += len(w.data)

    def check() -> None:
        if ship.done():
            ship.result()

    counters["attack_first_write_unix_ns"] = await ransomware.drive(spec, write, check)


def throttle_for(config: SimConfig, source_limiter: Limiter | None) -> Throttle | None:
    """The group's caps: its own, then the source's (shared, or made here); None: no cap."""
    if source_limiter is None and config.source_bandwidth.capped:
        source_limiter = Limiter(config.source_bandwidth)
    limiters = [Limiter(config.group_bandwidth)] if config.group_bandwidth.capped else []
    limiters += [source_limiter] if source_limiter is not None else []
    return Throttle(tuple(limiters), config.priority) if limiters else None


def make_protection(
    host: SimHost, buffer: SourceBuffer, gates: list[QuiesceGate], config: ProtectionConfig
) -> Protection:
    """The host's protection state machine, reading its disks and holding its gates."""
    disks = [d for vm in host.vms for d in vm.disks]

    def hold() -> None:
        for g in gates:
            g.hold()

    def release() -> None:
        for g in gates:
            g.release()

    return Protection(
        buffer, [d.capacity_bytes for d in disks],
        lambda disk, offset, length: disks[disk].read(offset, length), hold, release, config,
    )  # fmt: skip


async def _drained(shipper: Shipper, protection: Protection) -> None:
    """Every write is acked and no resync is pending."""
    while len(shipper.buffer) or protection.mode is not Mode.JOURNALING or len(protection.dirty):
        await asyncio.sleep(0.01)


async def _wait_drained(
    shipper: Shipper, ship: asyncio.Future[None], protection: Protection, timeout_s: float
) -> None:
    drain = asyncio.ensure_future(_drained(shipper, protection))
    done, _ = await asyncio.wait(
        [drain, ship], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    drain.cancel()
    if ship in done:
        ship.result()
    if drain not in done:
        raise TimeoutError(
            f"{len(shipper.buffer)} writes still unacked after {timeout_s:.0f} s of draining"
        )


async def _sample(
    reading: Callable[[], Progress],
    series: RpoSeries,
    on_progress: Callable[[Progress], None] | None,
    log: TextIO | None = None,
) -> None:
    while True:
        await asyncio.sleep(SAMPLE_INTERVAL_S)
        _record(reading(), series, on_progress, log)


def _record(
    now: Progress,
    series: RpoSeries,
    on_progress: Callable[[Progress], None] | None,
    log: TextIO | None,
) -> None:
    """One RPO sample: into the series, the log file and the progress callback."""
    series.add(now.elapsed_s, now.rpo_s)
    if log is not None:
        log.write(f"[{now.elapsed_s:.3f}, {now.rpo_s:.4f}, {now.bytes}]\n")
        log.flush()
    if on_progress is not None:
        on_progress(now)


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
