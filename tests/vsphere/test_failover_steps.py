"""The pure parts of failover: names, placement, the step plan, time accounting."""

from __future__ import annotations

from pathlib import Path

import yaml

from cdp.failover import steps as st
from cdp.failover.plan import VmSettings, load_plan
from cdp.failover.records import StepEntry
from cdp.failover.summary import time_by_kind
from cdp.failover.vcenter import DiskAttach, Hardware, HostFacts, NicAttach

GiB = 2**30


def host(name: str, free_gib: float, threads: int = 4, **kw: object) -> HostFacts:
    args: dict[str, object] = {
        "name": name,
        "connected": True,
        "maintenance": False,
        "cpu_threads": threads,
        "memory_bytes": int(free_gib * GiB),
        "memory_used_bytes": 0,
        "vcpus_running": 0,
        "datastores": frozenset(),
        "networks": frozenset(),
    }
    args.update(kw)
    return HostFacts(**args)  # type: ignore[arg-type]


def test_names_never_touch_the_replica_folder() -> None:
    assert st.vmx_path("ds", "app01", st.MODE_TEST) == "[ds] app01-test/app01-test.vmx"
    assert st.vmx_path("ds", "app01", st.MODE_LIVE) == "[ds] app01-dr/app01.vmx"
    assert st.disk_file("app01", st.MODE_LIVE, 1) == "app01_1.vmdk"
    assert st.folder_name("app01", st.MODE_LIVE) != "app01"


def test_placement_spreads_by_free_memory_and_skips_unusable_hosts() -> None:
    vms = [VmSettings("big", 2, 6 * 1024), VmSettings("a", 1, 1024), VmSettings("b", 1, 1024)]
    hosts = (
        host("h0", 8),
        host("h1", 4),
        host("h2", 64, maintenance=True),
        host("h3", 64, connected=False),
    )
    placement, unplaced = st.place(vms, hosts, vcpus_per_cpu=1)
    assert unplaced == []
    assert placement["big"] == "h0"  # only h0 has 6 GiB; h2/h3 are not usable
    assert placement["a"] == "h1" and placement["b"] == "h1"  # then the most free memory


def test_placement_reports_what_does_not_fit() -> None:
    vms = [VmSettings("wide", 8, 512), VmSettings("huge", 1, 64 * 1024), VmSettings("ok", 1, 512)]
    placement, unplaced = st.place(vms, (host("h0", 8, threads=4),), vcpus_per_cpu=4)
    assert placement == {"ok": "h0"}
    assert sorted(unplaced) == ["huge", "wide"]  # 8 vCPUs > 4 threads; 64 GiB > 8 GiB


def test_recovered_vm_round_trips_through_the_log() -> None:
    vm = st.RecoveredVm(
        "app01",
        "g1",
        "app01",
        "[ds] app01-dr/app01.vmx",
        "/r/app01-dr",
        "h0",
        "app",
        Hardware(
            2,
            512,
            (DiskAttach("[ds] app01-dr/app01_0.vmdk", 4096),),
            (NicAttach("DR-Prod", "vmxnet3"),),
        ),
    )
    assert st.RecoveredVm.from_json(vm.to_json()) == vm


def test_undo_steps_order_and_source_restart() -> None:
    vm = st.RecoveredVm("db01", "g1", "db01", "p", "/r/db01-dr", "h0", "db", Hardware(1, 4, (), ()))
    kinds = [(s.phase, s.kind) for s in st.undo_steps((vm,), ["db01"])]
    assert kinds == [(0, "power-off"), (1, "unregister"), (2, "delete"), (3, "restart-source")]


def test_time_by_kind_counts_overlapping_steps_once() -> None:
    def entry(kind: str, done: bool, *span: float) -> StepEntry:
        times = dict(zip(("started_unix", "finished_unix"), span, strict=False))
        return StepEntry(f"{kind}:{span}", kind, 0, "", "", {}, done, {}, **times)

    steps = [
        entry("export", True, 10.0, 12.0),
        entry("export", True, 11.0, 13.0),
        entry("export", True, 20.0, 21.0),
        entry("register", False),
    ]
    assert time_by_kind(steps, 0.5) == {"checks": 0.5, "export": 4.0}


def test_a_planned_failover_bookmarks_every_group_in_one_step(tmp_path: Path) -> None:
    """#12: one plan-wide bookmark step (one instant), not one bookmark per group."""
    nic = [{"network": "VM Network"}]
    data = {
        "version": 1, "name": "two", "target": {"address": "127.0.0.1:1", "insecure": True},
        "state_dir": str(tmp_path / "state"),
        "vcenter": {"url": "https://127.0.0.1:1/sdk",
                    "credentials": {"user_env": "U", "password_env": "P"},
                    "tls": {"verify": False}},
        "recovery": {"datacenter": "DC0", "cluster": "C0",
                     "datastore": {"name": "ds", "path": str(tmp_path)}},
        "network_mappings": [{"source": "VM Network", "live": "L", "test": "T"}],
        "groups": [{"name": "ga", "vms": [{"name": "a1", "cpus": 1, "memory_mb": 64,
                                           "nics": nic}]},
                   {"name": "gb", "vms": [{"name": "b1", "cpus": 1, "memory_mb": 64,
                                           "nics": nic}]}],
    }  # fmt: skip
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data))
    plan = load_plan(str(path))
    hw = Hardware(1, 64, (), ())
    vms = tuple(
        st.RecoveredVm(v, g, v, f"[ds] {v}-dr/{v}.vmx", f"/r/{v}-dr", "h0", "", hw)
        for v, g in (("a1", "ga"), ("b1", "gb"))
    )
    steps = st.failover_steps(plan, vms, planned=True)
    bookmarks = [s for s in steps if s.kind == st.BOOKMARK]
    assert [(s.id, s.args) for s in bookmarks] == [("bookmark", {"groups": ["ga", "gb"]})]
    seals = [s for s in steps if s.kind == st.SEAL]  # #6: the seal, before any power-off
    stops = [s for s in steps if s.kind == st.STOP_SOURCE]
    assert {s.group for s in seals} == {"ga", "gb"}
    assert all(d.phase < t.phase < bookmarks[0].phase for d in seals for t in stops)
