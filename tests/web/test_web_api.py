"""The web edge against a real target: real gRPC source writes, real aiohttp server on
127.0.0.1 port 0, real HTTP requests; status, timeline, errors and /metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import prometheus_client
import pytest
from conftest import Running, start_target, stop_target
from prometheus_client.parser import text_string_to_metric_families

from cdp import verified
from cdp.errors import InvalidInputError
from cdp.rpc.convert import status_to_dict, timeline_to_dict
from cdp.verified import Verification
from cdp.web import is_loopback, parse_http_address, start_web
from sim import runner
from sim.workload import WorkloadSpec

GROUP = "web-group"
VM = "web-vm"


@dataclass
class Served:
    """A target with one replicated group, and its web server."""

    running: Running
    base: str
    sim: dict[str, Any]
    http: aiohttp.ClientSession

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(self.base + path) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()


@pytest.fixture
async def served(tmp_path: str) -> AsyncIterator[Served]:
    """History window 0: the applier moves the base at once, so the timeline has a
    retention gap before the restorable interval and applied_seq is not 0."""
    r = await start_target(os.path.join(tmp_path, "target"), history_window_s=0.0)
    web_runner, port = await start_web(r.target, "127.0.0.1", 0)
    http = aiohttp.ClientSession()
    try:
        sim = await runner.run(
            runner.SimConfig(
                target=r.address,
                folder=os.path.join(tmp_path, "src"),
                group=GROUP,
                vms=(VM,),
                disks_per_vm=2,
                disk_bytes=8 * 2**20,
                workload=WorkloadSpec("random", 4096, iops=2000, seed=7),
                seconds=0.5,
            )  # fmt: skip
        )
        assert sim["acked_seq"] > 0
        await wait_applied(r, sim["acked_seq"])
        yield Served(r, f"http://127.0.0.1:{port}", sim, http)
    finally:
        await http.close()
        await web_runner.cleanup()
        await stop_target(r)


async def wait_applied(r: Running, seq: int) -> None:
    """Until the applier is idle, so the timeline stays put during a test."""
    async with asyncio.timeout(30):
        while r.target.status(GROUP)[0].applied_seq < seq:
            await asyncio.sleep(0.01)


def without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


async def test_status_json_has_the_facts_of_cdp_status(served: Served) -> None:
    code, data = await served.get("/api/v1/status")
    assert code == 200
    (g,) = data["groups"]
    assert g["group_id"] == GROUP
    assert g["state"] == "disconnected"  # the source finished and closed its session
    assert g["durable_seq"] == served.sim["acked_seq"]
    assert g["received_bytes"] > 0 and g["journal_bytes"] >= 0
    assert [vm["vm_id"] for vm in g["vms"]] == [VM]
    assert {"resync_total_bytes", "resync_received_bytes", "resync_eta_seconds"} <= g.keys()
    # The same dict `cdp status --json` prints (over gRPC); lag and RPO move with the clock.
    (rpc,) = (await served.running.client.status()).groups
    moving = ("lag_seconds", "rpo_seconds")
    page_only = {"rpo_threshold_s", "last_verified_seq", "last_verified_point_unix_ns",
                 "last_verified_point", "last_verify_result", "last_verify_unix_ns",
                 "verify_every_s", "failovers"}  # fmt: skip
    assert without(g, *moving, *page_only) == without(status_to_dict(rpc), *moving)
    assert g["lag_seconds"] > 0 and g["rpo_seconds"] > 0  # disconnected: no newer point
    assert g["failovers"] == []  # no failover reported


async def test_timeline_json_equals_the_timeline_rpc(served: Served) -> None:
    code, data = await served.get(f"/api/v1/groups/{GROUP}/timeline")
    assert code == 200
    rpc = timeline_to_dict(GROUP, await served.running.client.timeline(GROUP))
    assert without(data, "available_history_s", "marks") == without(rpc, "available_history_s")
    assert data["marks"] == []  # no bookmark yet
    assert data["group"] == GROUP
    last = data["spans"][-1]
    assert last["restorable"] and last["points"] > 0
    assert last["end_seq"] == served.sim["acked_seq"]
    assert data["history_health"] in ("ok", "warning", "error")


async def test_unknown_group_is_404_naming_it(served: Served) -> None:
    code, data = await served.get("/api/v1/groups/no-such-group/timeline")
    assert code == 404
    assert "no-such-group" in data["error"] and data["status"] == 404


@pytest.mark.parametrize("bad", ["-leading-dash", "a" * 65, "sp%20ace", "semi;colon", ".hidden"])
async def test_bad_group_name_is_400_naming_the_field(served: Served, bad: str) -> None:
    code, data = await served.get(f"/api/v1/groups/{bad}/timeline")
    assert code == 400, data
    assert data["field"] == "group" and "group" in data["error"]


async def test_no_write_methods(served: Served) -> None:
    for path in ("/api/v1/status", f"/api/v1/groups/{GROUP}/timeline", "/metrics", "/"):
        for method in ("POST", "PUT", "DELETE"):
            async with served.http.request(method, served.base + path) as resp:
                assert resp.status == 405, (method, path)


async def test_index_page_is_served(served: Served) -> None:
    async with served.http.get(served.base + "/") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        page = await resp.text()
    assert '<script src="/static/app.js">' in page and "<style" not in page
    async with served.http.get(served.base + "/static/app.js") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/javascript"
        script = await resp.text()
    assert "/api/v1/status" in script and "UNREACHABLE" in script
    for text in (page, script):
        assert "http://" not in text and "https://" not in text  # no CDN, nothing external
    async with served.http.get(served.base + "/static/../web.py") as resp:
        assert resp.status == 404


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_match_the_status(served: Served) -> None:
    async with served.http.get(served.base + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    _, status = await served.get("/api/v1/status")
    (g,) = status["groups"]
    got = samples(text)
    labels = (("group", GROUP), ("member", ""))
    assert got[("cdp_group_durable_seq", labels)] == g["durable_seq"] == served.sim["acked_seq"]
    assert got[("cdp_group_applied_seq", labels)] == g["applied_seq"]
    assert got[("cdp_group_journal_bytes", labels)] == g["journal_bytes"]
    assert got[("cdp_group_received_bytes_total", labels)] == g["received_bytes"] > 0
    assert got[("cdp_group_resync_remaining_bytes", labels)] == 0
    assert got[("cdp_group_resync_eta_seconds", labels)] == 0
    assert 0 < got[("cdp_group_lag_seconds", labels)] <= g["lag_seconds"]
    assert 0 < got[("cdp_group_rpo_seconds", labels)] <= g["rpo_seconds"]
    states = {dict(k[1])["state"]: v for k, v in got.items() if k[0] == "cdp_group_state"}
    assert states == {
        "replicating": 0, "disconnected": 1, "resync_required": 0, "resyncing": 0, "error": 0,
    }  # fmt: skip
    assert "# HELP cdp_group_lag_seconds Seconds" in text
    assert "# HELP cdp_group_rpo_seconds Seconds since the newest restorable point" in text
    assert "# TYPE cdp_group_received_bytes_total counter" in text


async def test_metrics_use_their_own_registry(served: Served) -> None:
    async with served.http.get(served.base + "/metrics") as resp:
        assert "cdp_group_durable_seq" in await resp.text()
    assert b"cdp_group" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


async def test_metrics_of_an_empty_target(running: Running) -> None:
    web_runner, port = await start_web(running.target, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            async with http.get(f"http://127.0.0.1:{port}/api/v1/status") as resp:
                assert (await resp.json())["groups"] == []
    finally:
        await web_runner.cleanup()
    assert "# TYPE cdp_group_durable_seq gauge" in text
    assert "cdp_group_durable_seq{" not in text


async def test_non_loopback_bind_warns(running: Running, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cdp.web"):
        web_runner, _ = await start_web(running.target, "0.0.0.0", 0)
        await web_runner.cleanup()
        loop_runner, _ = await start_web(running.target, "127.0.0.1", 0)
        await loop_runner.cleanup()
    (warning,) = [r for r in caplog.records if r.name == "cdp.web"]
    assert "0.0.0.0" in warning.message and "without authentication" in warning.message


@pytest.mark.parametrize(
    ("text", "want"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:0", ("::1", 0)), ("h:1", ("h", 1))],
)
def test_parse_http_address(text: str, want: tuple[str, int]) -> None:
    assert parse_http_address(text) == want


@pytest.mark.parametrize("text", ["8080", ":8080", "host:", "host:http", "host:70000"])
def test_parse_http_address_rejects(text: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_http_address(text)
    assert err.value.field == "--http"


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")
    assert not is_loopback("dr-site.example")


async def test_lifecycle_and_epoch_in_metrics_and_status_json(served: Served) -> None:
    """Issue 13: the lifecycle a failover sets is on /metrics (one sample per state) and in
    the status JSON, with the fencing epoch."""
    await served.running.target.set_lifecycle(GROUP, "failing_over", True, False, "run of p")
    async with served.http.get(served.base + "/metrics") as resp:
        got = samples(await resp.text())
    labels = (("group", GROUP), ("member", ""))
    states = {dict(k[1])["state"]: v for k, v in got.items() if k[0] == "cdp_group_lifecycle"}
    assert states["failing_over"] == 1 and states["protecting"] == 0 and len(states) == 7
    assert got[("cdp_group_epoch", labels)] == 1
    _, status = await served.get("/api/v1/status")
    (g,) = status["groups"]
    assert (g["lifecycle"], g["epoch"], g["lifecycle_note"]) == ("failing_over", 1, "run of p")
    assert g["source_connected"] is False


def _strings_that_are_numbers(data: Any, where: str = "") -> list[str]:
    """Paths of values that are strings holding a number (int64 rendered by protobuf)."""
    if isinstance(data, dict):
        return [
            p for k, v in data.items() if not k.endswith("_id")  # ids are names, "0" included
            for p in _strings_that_are_numbers(v, f"{where}.{k}")
        ]  # fmt: skip
    if isinstance(data, list):
        return [
            p for i, v in enumerate(data) for p in _strings_that_are_numbers(v, f"{where}[{i}]")
        ]
    return [where] if isinstance(data, str) and data.lstrip("-").isdigit() else []


async def test_status_json_numbers_are_json_numbers(served: Served) -> None:
    _, data = await served.get("/api/v1/status")
    (g,) = data["groups"]
    assert _strings_that_are_numbers(data) == []
    assert g["vms"][0]["disks"][0]["capacity_bytes"] == 8 * 2**20
    assert g["rpo_threshold_s"] > 0 and g["last_verified_seq"] is None  # never verified


async def test_rpo_history_and_bookmarks_for_the_page(served: Served) -> None:
    await served.running.client.create_bookmark(GROUP, "before-upgrade")
    code, data = await served.get(f"/api/v1/groups/{GROUP}/rpo")
    assert code == 200 and data["group"] == GROUP and data["threshold_s"] > 0
    assert len(data["samples"]) >= 1  # the samples so far and one taken now
    t, rpo = data["samples"][-1]
    assert isinstance(t, float) and isinstance(rpo, float) and rpo >= 0
    code, err = await served.get("/api/v1/groups/nope/rpo")
    assert code == 404 and "nope" in err["error"]
    _, timeline = await served.get(f"/api/v1/groups/{GROUP}/timeline")
    (mark,) = [m for m in timeline["marks"] if m["kind"] == "bookmark"]  # checkpoints may show too
    assert mark["label"] == "before-upgrade"
    assert mark["seq"] == served.sim["acked_seq"] and mark["time"].endswith("+00:00")


async def test_a_recorded_verification_is_the_last_verified_point(served: Served) -> None:
    (g,) = served.running.target.status(GROUP)
    point_ns = g.durable_source_ns
    client = served.running.client
    for result in ("passed", "failed"):
        v = Verification(GROUP, "dr", result, g.durable_seq, point_ns, 86400.0)
        await client.record_audit(verified.ACTION, v.to_object(), "ok")
        _, data = await served.get("/api/v1/status")
        (row,) = data["groups"]
        assert row["last_verified_seq"] == g.durable_seq
        assert row["last_verified_point_unix_ns"] == point_ns
        assert row["last_verify_result"] == result and row["verify_every_s"] == 86400.0
    _, text = await served.get("/metrics")
    samples = {
        s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
        if s.labels.get("group") == GROUP and "verif" in s.name
    }  # fmt: skip
    assert samples == {
        "cdp_group_last_verified_timestamp_seconds": pytest.approx(point_ns / 1e9),
        "cdp_group_verify_last_run_timestamp_seconds": pytest.approx(time.time(), abs=60),
        "cdp_group_verify_failed": 1.0,
        "cdp_group_verify_interval_seconds": 86400.0,
    }
