"""The RPO suite's scenarios: named, seeded runs (workload, link, VMs per host) and the sweep.

Owns :class:`Scenario`, the suite's list in report order (:func:`scenarios`), the 4 KiB
rate sweep (:func:`sweep_scenarios`) and how a scenario's VMs spread over simulated hosts
(:func:`hosts`). Pure: it runs nothing and measures nothing (bench/suite.py does).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.linkproxy import LinkModel, mbit
from bench.processes import REPO

TRACES = REPO / "bench" / "traces"
HISTORY_WINDOW = "1h"
LOOPBACK = LinkModel()
SWEEP_FULL = (10_000, 20_000, 25_000, 30_000, 35_000, 40_000, 45_000, 50_000, 60_000)
SWEEP_QUICK = (20_000, 30_000, 40_000, 50_000)
SWEEP_P99_S = 1.0


@dataclass(frozen=True)
class Scenario:
    """One named, seeded run: a workload, a link, a number of VMs."""

    name: str
    what: str
    flags: tuple[str, ...] = ()
    """``cdp sim run`` workload flags (rate, pattern, size...)."""
    link: LinkModel = LOOPBACK
    vms: int = 1
    """VMs, each its own consistency group."""
    vms_per_host: int = 1
    """VMs per simulated host: one ``cdp sim run --groups K`` process per host."""
    outage: tuple[float, float] | None = None
    """(start, length) in seconds since the first RPO sample: the link is down then."""
    trace: str = ""
    """An MSR/fio trace file, or ``bursts`` for the synthetic burst trace."""
    speedup: float = 1.0
    goal_p99_s: float = 1.0
    min_mb_s: float = 0.0
    """The guest must write at least this share x seconds (0: no rate goal)."""
    disk_size: str = "1GiB"
    disks: int = 2
    seconds: float | None = None
    """Overrides the suite's seconds (e.g. short sweep steps)."""
    history_window: str = HISTORY_WINDOW
    """The target's ``--history-window``; "0" applies as it goes (journal + apply writes)."""
    cap_bytes_s: float = 0.0
    """The source's ``--bandwidth`` (in ``flags``): the wire rate must hold it within 5 %."""


def _w(*flags: str) -> tuple[str, ...]:
    return flags


def scenarios(seconds: float, quick: bool) -> list[Scenario]:
    """The suite, in report order."""
    return (
        _workload_scenarios(seconds) + _vm_scenarios() + _link_scenarios(seconds)
        + _cap_scenarios()
    )  # fmt: skip


_R64 = _w("--pattern", "random", "--block-size", "64k")
"""The workload flags of 64 KiB random writes, the suite's most common shape."""


def _workload_scenarios(seconds: float) -> list[Scenario]:
    """One VM on loopback: write sizes, patterns, bursts, compressibility, applying."""
    burst_phase = max(1.0, seconds / 3)
    return [
        Scenario("4k-random-20k-iops", "4 KiB random at 20,000 writes/s (fixed IOPS)",
                 _w("--pattern", "random", "--block-size", "4k", "--iops", "20000"),
                 goal_p99_s=0.5, min_mb_s=20_000 * 4096 / 1e6),
        Scenario("64k-random-300mb", "64 KiB random at 300 MB/s", (*_R64, "--rate-mb", "300"),
                 goal_p99_s=0.5, min_mb_s=300),
        Scenario("1m-sequential-300mb", "1 MiB sequential at 300 MB/s",
                 _w("--pattern", "sequential", "--block-size", "1m", "--rate-mb", "300"),
                 min_mb_s=300),
        Scenario("mixed-100mb", "mixed sizes 512 B-1 MiB, random places, 100 MB/s",
                 _w("--pattern", "mixed", "--rate-mb", "100"), min_mb_s=100),
        Scenario("bursts-4k", f"4 KiB: 2,000/s, 20,000/s (10x) for {burst_phase:g} s, 2,000/s",
                 trace="bursts"),
        Scenario("overwrite-4k", "4 KiB overwrites in a 2 % hot set, 10,000 writes/s",
                 _w("--pattern", "overwrite", "--block-size", "4k", "--iops", "10000")),
        Scenario("compressible-64k", "64 KiB random, 90 % compressible, 200 MB/s",
                 (*_R64, "--rate-mb", "200", "--compressibility", "0.9"), min_mb_s=200),
        Scenario("incompressible-64k", "64 KiB random, incompressible, 200 MB/s",
                 (*_R64, "--rate-mb", "200", "--compressibility", "0"), min_mb_s=200),
        Scenario("apply-64k-100mb", "64 KiB random at 100 MB/s, target applying as it goes "
                 "(history window 0): journal + replica writes",
                 (*_R64, "--rate-mb", "100"), min_mb_s=100, history_window="0"),
        Scenario("ransom-flip", "media copies, then every 16th 4 KiB of each file encrypted "
                 "at 5 MB/s from half-way (sim/ransomware.py): RPO under an attack",
                 _w("--pattern", "flip", "--rate-mb", "2", "--attack-rate-mb", "5")),
    ]  # fmt: skip


def _vm_scenarios() -> list[Scenario]:
    """Many VMs, each its own consistency group, on one host or spread over several."""
    s: list[Scenario] = []
    for n in (1, 4, 16):
        s.append(Scenario(f"vms-{n}", f"{n} VM(s) on one host, each its own group, 10 MB/s of "
                          "64 KiB each", (*_R64, "--rate-mb", "10"), vms=n, vms_per_host=n,
                          disk_size="256MiB", disks=1, min_mb_s=10 * n))  # fmt: skip
    s.append(Scenario("vms-16-4-hosts", "16 VMs on 4 hosts (4 source processes), each VM its "
                      "own group, 10 MB/s of 64 KiB each: the sources share the target's 2 "
                      "cores", (*_R64, "--rate-mb", "10"), vms=16, vms_per_host=4,
                      disk_size="256MiB", disks=1, min_mb_s=160,
                      goal_p99_s=float("inf")))  # fmt: skip
    return s


def _link_scenarios(seconds: float) -> list[Scenario]:
    """Capped bandwidth, round trips, an outage and trace replays."""
    out_at, out_len = max(1.0, seconds * 0.25), max(3.0, seconds * 0.25)
    return [
        Scenario("link-1gbit", "64 KiB at 100 MB/s through a 1 Gbit/s link",
                 (*_R64, "--rate-mb", "100"), LinkModel("1 Gbit/s", mbit(1000))),
        Scenario("link-100mbit-under", "64 KiB at 10 MB/s (~5 MB/s lz4) through 100 Mbit/s",
                 (*_R64, "--rate-mb", "10"), LinkModel("100 Mbit/s", mbit(100))),
        Scenario("link-100mbit-over", "64 KiB at 40 MB/s (~20 MB/s lz4) through 100 Mbit/s",
                 (*_R64, "--rate-mb", "40"), LinkModel("100 Mbit/s", mbit(100)),
                 goal_p99_s=float("inf")),
        Scenario("rtt-20ms", "4 KiB at 5,000 writes/s over a 20 ms round trip",
                 _w("--pattern", "random", "--block-size", "4k", "--iops", "5000"),
                 LinkModel("20 ms RTT", 0.0, 0.010)),
        Scenario("rtt-80ms", "4 KiB at 5,000 writes/s over an 80 ms round trip",
                 _w("--pattern", "random", "--block-size", "4k", "--iops", "5000"),
                 LinkModel("80 ms RTT", 0.0, 0.040)),
        Scenario("outage", f"64 KiB at 20 MB/s, link down {out_len:g} s at {out_at:g} s "
                 "(dirty map after 1 s)",
                 (*_R64, "--rate-mb", "20", "--dirty-after", "1"), outage=(out_at, out_len),
                 goal_p99_s=float("inf")),
        Scenario("trace-msr", "replay bench/traces/sample-msr.csv (MSR CSV), speed-up 1",
                 trace=str(TRACES / "sample-msr.csv")),
        Scenario("trace-fio", "replay bench/traces/sample.fio (fio iolog v2), speed-up 1",
                 trace=str(TRACES / "sample.fio")),
    ]  # fmt: skip


COUNTING = LinkModel("proxy, no cap")
"""The link proxy without shaping: it only counts the bytes on the wire."""
_CAP10 = 10 * 2**20


def _cap_scenarios() -> list[Scenario]:
    """The source's bandwidth cap and priorities (``--bandwidth``, ``--priority``)."""
    inc = (*_R64, "--compressibility", "0")  # incompressible: wire bytes = guest bytes
    cap8 = ("--bandwidth", "8MB/s")
    return [
        Scenario("cap-10mb", "64 KiB incompressible at 12 MB/s, source cap 10 MiB/s: the wire "
                 "carries the cap", (*inc, "--rate-mb", "12", "--bandwidth", "10MB/s"),
                 COUNTING, goal_p99_s=float("inf"), cap_bytes_s=_CAP10),
        Scenario("priority-alone", "one high-priority group, 64 KiB incompressible at 6 MB/s, "
                 "source cap 8 MiB/s: the uncontended RPO",
                 (*inc, "--rate-mb", "6", *cap8, "--priority", "high"), COUNTING),
        Scenario("priority-2-groups", "two groups at 6 MB/s each (high, low) sharing a source "
                 "cap of 8 MiB/s: high keeps its RPO, low takes the lag",
                 (*inc, "--rate-mb", "6", *cap8, "--priority", "high,low"), COUNTING, vms=2,
                 vms_per_host=2, goal_p99_s=float("inf")),
    ]  # fmt: skip


def sweep_scenarios(quick: bool) -> list[Scenario]:
    """The 4 KiB rate sweep, lowest rate first."""
    return [
        Scenario(f"sweep-4k-{rate // 1000}k", f"rate sweep: 4 KiB random at {rate:,} writes/s",
                 _w("--pattern", "random", "--block-size", "4k", "--iops", str(rate)),
                 goal_p99_s=SWEEP_P99_S, min_mb_s=rate * 4096 / 1e6,
                 seconds=3.0 if quick else 10.0)
        for rate in (SWEEP_QUICK if quick else SWEEP_FULL)
    ]  # fmt: skip


def hosts(sc: Scenario) -> list[int]:
    """How many VMs each simulated host (source process) runs."""
    per = max(1, sc.vms_per_host)
    return [min(per, sc.vms - i) for i in range(0, sc.vms, per)]
