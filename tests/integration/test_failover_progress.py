"""Failover progress at a real target (real gRPC, RocksDB, aiohttp): a report is shown on
every group of its plan in ``/api/v1/status``, bad reports are refused naming the field,
and the CLI's reporter never fails or slows an operation when the target is unreachable."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from conftest import Running, make_record, small_group, start_target, stop_target
from helpers import free_port

from cdp import tls
from cdp.cli.certs import CertsPlan, init_certs
from cdp.errors import RemoteError
from cdp.failover.progress import ProgressReporter
from cdp.failover.records import Operation
from cdp.failover.remote import TargetReplication
from cdp.journal.store.rocksdb import RocksIndex
from cdp.progress import FINISHED_KEEP_S, OperationProgress, ProgressBoard, StepProgress
from cdp.rpc.client import ReplicationClient
from cdp.rpc.convert import progress_to_pb
from cdp.rpc.server import start_server
from cdp.target.config import TargetConfig
from cdp.target.target import Target
from cdp.web import start_web


def report(
    groups: tuple[str, ...] = ("g1", "g2"), kind: str = "test", **over: Any
) -> OperationProgress:
    steps = (
        StepProgress("export-db01-0", "export", 1, "export db01 disk 0", "ok", 1.5),
        StepProgress("register-db01", "register", 2, "register db01-test", "running", 0.2),
        StepProgress("power-on-db01", "power-on", 3, "power on db01-test", "pending"),
    )
    fields: dict[str, Any] = {
        "plan": "dr", "group_ids": groups, "kind": kind, "status": "running", "phase": 2,
        "phases": 3, "started_ns": 1_700_000_000 * 10**9, "started_by": "operator alice",
        "steps": steps,
    }  # fmt: skip
    fields.update(over)
    return OperationProgress(**fields)


@pytest.fixture
async def two_groups(tmp_path: str) -> AsyncIterator[tuple[Running, str]]:
    r = await start_target(os.path.join(str(tmp_path), "target"))
    runner, port = await start_web(r.target, "127.0.0.1", 0)
    try:
        for g in ("g1", "g2", "other"):
            reply = await r.client.open_session("host-a", small_group(g, disks=1), 0, 1)
            stream = r.client.stream(reply.session_id)
            await stream.send([make_record(1, 0, 0, b"x" * 4096)])
            assert (await stream.recv()) is not None
            stream.cancel()
        yield r, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await stop_target(r)


async def status_json(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(base + "/api/v1/status") as resp:
        assert resp.status == 200
        data: dict[str, Any] = await resp.json()
    return {g["group_id"]: g for g in data["groups"]}


async def test_a_report_shows_on_every_group_of_its_plan(two_groups: tuple[Running, str]) -> None:
    r, base = two_groups
    before = time.time_ns()
    await TargetReplication(r.client).report_progress(report(), 5.0)
    groups = await status_json(base)
    assert groups["other"]["failovers"] == []
    (shown,) = groups["g1"]["failovers"]
    assert groups["g2"]["failovers"] == [shown]
    assert shown["kind"] == "test" and shown["status"] == "running"
    assert (shown["phase"], shown["phases"], shown["finished"]) == (2, 3, False)
    assert shown["started_by"] == "operator alice" and shown["reported_by"] == "insecure"
    assert shown["started"].startswith("2023-11-14T22:13:20")
    assert shown["updated_unix"] * 1e9 >= before
    assert [(s["id"], s["state"]) for s in shown["steps"]] == [
        ("export-db01-0", "ok"), ("register-db01", "running"), ("power-on-db01", "pending"),
    ]  # fmt: skip
    assert shown["counts"] == {"pending": 1, "running": 1, "ok": 1, "failed": 0}

    done = report(status="test-stopped", kind="stop-test", finished=True, steps=())
    await TargetReplication(r.client).report_progress(done, 5.0)  # same plan: replaces it
    (shown,) = (await status_json(base))["g1"]["failovers"]
    assert (shown["kind"], shown["status"], shown["finished"]) == (
        "stop-test",
        "test-stopped",
        True,
    )


@pytest.mark.parametrize(
    ("bad", "code", "field"),
    [
        (report(groups=("g1", "nope")), "NOT_FOUND", "group_ids[1]"),
        (report(kind="failsideways"), "INVALID_ARGUMENT", "kind"),
        (report(plan=""), "INVALID_ARGUMENT", "plan"),
        (report(groups=()), "INVALID_ARGUMENT", "group_ids"),
        (report(status="x" * 33), "INVALID_ARGUMENT", "status"),
    ],
)
async def test_bad_reports_are_refused_naming_the_field(
    two_groups: tuple[Running, str], bad: OperationProgress, code: str, field: str
) -> None:
    r, base = two_groups
    with pytest.raises(RemoteError) as err:
        await r.client.report_failover_progress(progress_to_pb(bad), 5.0)
    assert err.value.code == code and field in str(err.value)
    assert (await status_json(base))["g1"]["failovers"] == []  # nothing kept


async def test_an_unset_step_state_is_invalid_argument(two_groups: tuple[Running, str]) -> None:
    r, _ = two_groups
    req = progress_to_pb(report())
    req.steps[1].state = 0
    with pytest.raises(RemoteError) as err:
        await r.client.report_failover_progress(req, 5.0)
    assert err.value.code == "INVALID_ARGUMENT" and "steps[1].state" in str(err.value)


def test_finished_reports_expire_active_ones_stay() -> None:
    board = ProgressBoard()
    board.report(report(plan="old", finished=True), "alice", 0)
    board.report(report(plan="live"), "bob", 0)
    later = int(FINISHED_KEEP_S * 1e9) + 1
    assert [p.plan for p in board.for_group("g1", 1)] == ["live", "old"]  # active first
    assert [p.plan for p in board.for_group("g1", later)] == ["live"]


class Blackhole:
    """A target whose progress call never answers (a cut link without RST)."""

    async def report_progress(self, progress: OperationProgress, timeout_s: float) -> None:
        await asyncio.sleep(3600)


async def test_the_reporter_never_blocks_or_raises() -> None:
    client = ReplicationClient(f"127.0.0.1:{free_port()}")  # nothing listens there
    try:
        for replication in (TargetReplication(client), Blackhole()):
            reporter = ProgressReporter(replication, "alice")  # type: ignore[arg-type]
            t0 = time.monotonic()
            for _ in range(50):
                reporter.publish(None)
            op = Operation(
                plan="dr", plan_file="p.yaml", datacenter="DC0", operation="test",
                planned=False, origin="", at="latest", status="running", started_unix=1.0,
                checks_s=0.0, bytes_to_prepare=0, rto_estimate_s=0.0, points={"g1": None},
                vms=[], steps=[],
            )  # fmt: skip
            for _ in range(50):
                reporter.publish(op)
            assert time.monotonic() - t0 < 0.5  # publishing never waits for the target
            await asyncio.sleep(0.2)
            await reporter.drain(timeout_s=1.0)
            assert time.monotonic() - t0 < 2.0 and reporter.sent == 0
    finally:
        await client.close()


async def test_under_mtls_reports_need_the_right_to_each_group(tmp_path: str) -> None:
    pki = os.path.join(str(tmp_path), "pki")
    init_certs(CertsPlan(pki, sources={"host-a": ["ga"], "host-b": ["gb"]}, operators=("ops",)))
    config = TargetConfig(os.path.join(str(tmp_path), "target"), apply_idle_s=0.005)

    def client(address: str, kind: str, name: str) -> ReplicationClient:
        return ReplicationClient(address, tls.load_client_tls(os.path.join(pki, kind, name)))

    async with Target(config, RocksIndex) as target:
        server, port = await start_server(
            target, "127.0.0.1:0", tls.load_server_tls(os.path.join(pki, "target"))
        )
        address = f"127.0.0.1:{port}"
        try:
            for host, group in (("host-a", "ga"), ("host-b", "gb")):
                async with client(address, "sources", host) as source:
                    reply = await source.open_session(host, small_group(group, disks=1), 0, 1)
                    stream = source.stream(reply.session_id)
                    await stream.send([make_record(1, 0, 0, b"x" * 4096)])
                    assert (await stream.recv()) is not None
                    stream.cancel()
            both = progress_to_pb(report(groups=("ga", "gb")))
            async with client(address, "operators", "ops") as ops:
                resp = await ops.report_failover_progress(both, 5.0)
                assert resp.reported_by == "operator 'ops'"
            async with client(address, "sources", "host-a") as source:
                own = progress_to_pb(report(groups=("ga",), plan="reverse"))
                assert (await source.report_failover_progress(own, 5.0)).reported_by
                with pytest.raises(RemoteError) as err:
                    await source.report_failover_progress(both, 5.0)
                assert err.value.code == "PERMISSION_DENIED"
            shown = target.progress.for_group("gb", time.time_ns())
            assert [(p.plan, p.reported_by) for p in shown] == [("dr", "operator 'ops'")]
        finally:
            await server.stop(grace=1.0)
