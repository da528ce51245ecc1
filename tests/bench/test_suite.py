"""The RPO suite's code path on tiny cases (real target and source processes), the
shaping proxy's behaviour, the plot, and the ``--rpo-log`` / ``--trace`` hooks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from bench import capacity, linkproxy, rto, suite, suite_report, suite_scenarios, trace
from bench.linkproxy import LinkModel, LinkProxy

TINY = suite_scenarios.Scenario(
    "tiny-4k", "4 KiB random at 500 writes/s",
    ("--pattern", "random", "--block-size", "4k", "--iops", "500"),
    disk_size="64MiB", seconds=1.5,
)  # fmt: skip


def _settings(tmp_path: Path) -> suite.Settings:
    out = tmp_path / "out"
    out.mkdir()
    return suite.Settings(seconds=1.5, quick=True, out=str(out), work_dir=str(tmp_path),
                          source_dir=str(tmp_path))  # fmt: skip


def _check_run(r: dict[str, object]) -> None:
    missing = [k for k in suite.FIELDS if k not in r]
    assert not missing, missing
    assert isinstance(r["writes"], int) and r["writes"] > 0
    assert r["target_received_bytes"] == r["bytes"], "bytes differ from what the guest wrote"
    for key in ("rpo_p50_s", "rpo_p95_s", "rpo_p99_s", "rpo_max_s", "rpo_worst_vm_p99_s"):
        assert isinstance(r[key], float) and r[key] >= 0, key
    assert r["rpo_p50_s"] <= r["rpo_p99_s"] <= r["rpo_max_s"]  # type: ignore[operator]
    if r["history_window"] == "0":  # the applying target trimmed its journal
        assert r["compression_ratio"] is None
    else:
        assert 0 < r["compression_ratio"] < 1  # type: ignore[operator]
    assert r["samples"] and all(s[1] >= 0 for s in r["samples"])  # type: ignore[union-attr]
    assert r["samples"][-1][2] == r["bytes"]  # type: ignore[index]


async def test_a_tiny_scenario_writes_json_png_and_report(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    r = await suite._run_and_save(TINY, settings)

    _check_run(r)
    assert r["bytes"] == r["writes"] * 4096
    out = Path(settings.out)
    assert json.loads((out / "tiny-4k.json").read_text())["scenario"] == "tiny-4k"
    assert (out / "tiny-4k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = suite_report.render({"env": suite.environment(settings), "runs": [r], "sweep": None})
    assert "| tiny-4k |" in report
    assert "published claim" in report and "measured" in report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "run data was not removed"


async def test_three_vms_on_two_hosts_through_a_capped_link_replaying_a_trace(
    tmp_path: Path,
) -> None:
    sc = suite_scenarios.Scenario(
        "tiny-trace", "fio trace, 3 VMs on 2 hosts, 100 Mbit/s",
        link=LinkModel("100 Mbit/s", 12.5e6), vms=3, vms_per_host=2,
        trace=str(suite_scenarios.TRACES / "sample.fio"), speedup=4.0,
    )  # fmt: skip
    assert suite_scenarios.hosts(sc) == [2, 1]
    r = await suite.run_scenario(sc, _settings(tmp_path))

    _check_run(r)
    assert r["hosts"] == 2
    tr = trace.load(str(suite_scenarios.TRACES / "sample.fio"))
    assert r["writes"] == 3 * len(tr.writes) and r["bytes"] == 3 * tr.bytes
    assert r["rpo_samples"] >= 3 * 5, "every group's RPO log is pooled"
    assert r["predicted"]["batch_serialization_s"] > 0  # type: ignore[index]
    assert r["predicted"]["journal_bytes"] > 0  # type: ignore[index]


def test_scenarios_are_named_seeded_and_cover_the_issue() -> None:
    names = [
        s.name for s in suite_scenarios.scenarios(4, True) + suite_scenarios.sweep_scenarios(True)
    ]
    assert len(names) == len(set(names))
    for want in ("4k-random-20k-iops", "64k-random-300mb", "1m-sequential-300mb", "mixed-100mb",
                 "bursts-4k", "overwrite-4k", "compressible-64k", "incompressible-64k",
                 "vms-1", "vms-4", "vms-16", "link-1gbit", "link-100mbit-under",
                 "link-100mbit-over", "rtt-20ms", "rtt-80ms", "outage", "trace-msr",
                 "trace-fio", "sweep-4k-20k", "cap-10mb", "priority-alone",
                 "priority-2-groups"):  # fmt: skip
        assert want in names, want


@pytest.mark.parametrize(("wire_mb_s", "met"), [(10.1, True), (10.9, True), (9.9, False),
                                                (11.1, False), (None, False)])  # fmt: skip
def test_the_cap_scenario_is_met_only_within_5_percent_of_the_cap(
    wire_mb_s: float | None, met: bool
) -> None:
    sc = next(s for s in suite_scenarios.scenarios(4, True) if s.name == "cap-10mb")
    r: dict[str, object] = {"wire_mb_s_up": wire_mb_s, "bytes": 1, "target_received_bytes": 1,
                            "resyncs": 0, "predicted": {}}  # fmt: skip
    suite.judge(sc, r)
    assert r["goal_met"] is met, r["goal_miss"]


# -- the shaping proxy: behaviour of the link model -------------------------------------


async def _sink() -> tuple[asyncio.Server, list[float], list[int]]:
    """A server that records (arrival time, bytes) of what it receives and echoes 1 byte."""
    times: list[float] = []
    sizes: list[int] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                times.append(time.monotonic())
                sizes.append(len(data))
                if data == b"p":
                    w.write(b"p")
                    await w.drain()
        except ConnectionError:
            pass
        finally:
            w.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, times, sizes


async def test_proxy_caps_bandwidth() -> None:
    server, times, sizes = await _sink()
    port = server.sockets[0].getsockname()[1]
    rate = 2e6  # 2 MB/s
    proxy = await LinkProxy(f"127.0.0.1:{port}", LinkModel("2 MB/s", rate)).start()
    host, _, p = proxy.address.rpartition(":")
    try:
        _, w = await asyncio.open_connection(host, int(p))
        t0 = time.monotonic()
        total = 3_000_000
        w.write(b"x" * total)
        await w.drain()
        while sum(sizes) < total:
            await asyncio.sleep(0.01)
        elapsed = times[-1] - t0
        w.close()
    finally:
        await proxy.close()
        server.close()
        await asyncio.sleep(0.05)  # let the sink's handlers see the end and close
    measured = total / elapsed
    assert 0.8 * rate <= measured <= 1.1 * rate, f"{measured / 1e6:.2f} MB/s through a 2 MB/s cap"


async def test_proxy_adds_latency_per_direction() -> None:
    server, _, _ = await _sink()
    port = server.sockets[0].getsockname()[1]
    proxy = await LinkProxy(f"127.0.0.1:{port}", LinkModel("100 ms RTT", 0.0, 0.05)).start()
    host, _, p = proxy.address.rpartition(":")
    try:
        r, w = await asyncio.open_connection(host, int(p))
        rtts = []
        for _ in range(3):
            t0 = time.monotonic()
            w.write(b"p")
            await w.drain()
            assert await r.readexactly(1) == b"p"
            rtts.append(time.monotonic() - t0)
        w.close()
    finally:
        await proxy.close()
        server.close()
        await asyncio.sleep(0.05)
    assert 0.095 <= min(rtts) <= 0.3, rtts


async def test_proxy_outage_refuses_then_restores() -> None:
    server, _, _ = await _sink()
    port = server.sockets[0].getsockname()[1]
    proxy = await LinkProxy(f"127.0.0.1:{port}", linkproxy.LinkModel()).start()
    host, _, p = proxy.address.rpartition(":")
    try:
        r, w = await asyncio.open_connection(host, int(p))
        proxy.outage()
        assert await r.read(1) == b""  # the connection was dropped
        r2, w2 = await asyncio.open_connection(host, int(p))
        assert await r2.read(1) == b""  # and new ones are refused
        proxy.restore()
        r3, w3 = await asyncio.open_connection(host, int(p))
        w3.write(b"p")
        assert await r3.readexactly(1) == b"p"
        for writer in (w, w2, w3):
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    finally:
        await proxy.close()
        server.close()
        await asyncio.sleep(0.05)
    assert proxy.outages == 1


# -- failover RTO in the suite's report ---------------------------------------------------


@pytest.mark.vsphere
async def test_the_report_has_a_measured_failover_rto(tmp_path: Path) -> None:
    settings = dataclasses.replace(_settings(tmp_path), rto_vms=(2,))
    doc = await suite.run_rto(settings)

    (case,) = doc["results"]
    assert case["vms"] == 2 and case["rto_s"] > 0
    assert case["by_step"]["power-on"] > 0 and case["bytes_to_prepare"] > 0
    assert case["rto_estimate_s"] > 0
    assert case["rto_estimate_error_s"] == round(case["rto_estimate_s"] - case["rto_s"], 3)
    assert json.loads((Path(settings.out) / "rto.json").read_text())["results"][0]["vms"] == 2
    report = suite_report.render({"env": suite.environment(settings), "runs": [], "sweep": None,
                           "rto": doc})  # fmt: skip
    assert "## Failover RTO (vcsim)" in report
    row = rf"\| 2 +\| \d+ +\| \w+ +\| {case['rto_s']:.3f} +\| {case['rto_estimate_s']:.3f} +\|"
    assert re.search(row, report)  # VMs, data per disk, disks mode, RTO, estimate
    assert "estimate s" in report and "error %" in report
    assert "published claim: no measured RTO" in report and "2 VMs" in report


def test_the_rto_estimate_error_is_signed_seconds_and_percent_of_the_measured_rto() -> None:
    assert rto.estimate_error(16.3, 8.3) == {"rto_estimate_error_s": -8.0,
                                             "rto_estimate_error_pct": -49.1}  # fmt: skip
    assert rto.estimate_error(15.7, 21.3)["rto_estimate_error_pct"] == 35.7
    assert rto.estimate_error(0.0, 1.0)["rto_estimate_error_pct"] is None


async def test_without_vcsim_the_report_says_rto_was_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_vcsim() -> str:
        raise subprocess.CalledProcessError(1, ["build.sh"], "", "go: command not found\n")

    monkeypatch.setattr(rto, "build_vcsim", no_vcsim)
    settings = _settings(tmp_path)
    doc = await suite.run_rto(settings)

    assert doc == {"error": "failover RTO not measured: go: command not found"}
    report = suite_report.render({"env": suite.environment(settings), "runs": [], "sweep": None,
                           "rto": doc})  # fmt: skip
    assert "failover RTO not measured: go: command not found" in report


def test_above_the_cap_the_model_predicts_the_peak_after_the_writes_stop() -> None:
    # 40 MB/s of 64 KiB writes stored at half size (20 MB/s) for 4 s into 12.5 MB/s: the
    # backlog drains 4 x (20 / 12.5 - 1) = 2.4 s after the writes stop, and the last write
    # waits that long, so the peak RPO is ~2.4 s, not the 1.5 s reached as writing stops.
    sc = suite_scenarios.Scenario("over", "over the cap", link=LinkModel("100 Mbit/s", 12.5e6))
    writes = int(40e6 * 4 / 65536)
    r = {"bytes": writes * 65536, "writes": writes, "batches": writes // 16, "seconds": 4.0,
         "mb_per_s": 40.0, "compression_ratio": 0.5, "samples": [[0.1, 0.0, 0]]}  # fmt: skip
    p = suite.predict(sc, r, None)

    assert p["wire_mb_s"] == 20.0
    assert p["rpo_at_end_of_writes_s"] == 1.5
    assert p["drain_s"] == 2.4
    assert 2.4 <= p["rpo_max_s"] <= 2.4 + capacity.DEFAULT_LATENCY_S + 0.15
    assert p["rpo_p99_s"] <= p["rpo_max_s"]


def test_the_sweep_reports_its_highest_rate_and_why_it_stopped() -> None:
    def step(name: str, rate: float, met: bool, miss: str = "") -> dict[str, object]:
        return {"scenario": name, "writes_per_s": rate, "goal_met": met, "goal_miss": miss}

    s = suite.sweep_result([step("a", 19_990.4, True), step("b", 29_971.0, True),
                            step("c", 33_000.0, False, "wrote 135.2 MB/s")])  # fmt: skip
    assert s["highest_writes_per_s"] == 29_971
    assert s["stopped"] == "stopped at `c`: wrote 135.2 MB/s"
    assert suite.sweep_result([step("a", 10.0, True)])["stopped"].startswith("every step held")
    failed = suite.sweep_result([{"scenario": "a", "error": "source 0 exited with 1"}])
    assert failed["highest_writes_per_s"] == 0
    assert failed["stopped"] == "stopped at `a`: source 0 exited with 1"


async def test_an_apply_scenario_counts_the_replica_writes(tmp_path: Path) -> None:
    sc = dataclasses.replace(TINY, name="tiny-apply", history_window="0")
    r = await suite.run_scenario(sc, _settings(tmp_path))

    _check_run(r)
    assert r["history_window"] == "0"
    # The journal stores ~half of each write (lz4); the replica takes all of it.
    assert r["target_write_bytes_per_guest_byte"] >= 1.4
