"""A failover's progress on the target's web JSON, against vcsim and a real target: while
``failover test`` runs, ``/api/v1/status`` shows the operation on its group with its
phase and steps (running, then ok), then the stop-test; and a target that never answers
progress reports does not stop or fail the failover."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from cdp.failover import vsphere
from cdp.failover.orchestrator import Orchestrator
from cdp.failover.plan import Credentials
from cdp.failover.remote import TargetReplication
from cdp.progress import OperationProgress
from cdp.rpc.client import ReplicationClient
from cdp.web import start_web

from .drsite import GROUP, DrSite
from .harness import Vcsim
from .test_failback import Home, fail_over_and_write, failback, orchestrator
from .test_failback import home as home  # noqa: F401 - a fixture
from .test_failback import protected as protected  # noqa: F401 - a fixture


async def watch(base: str, seen: list[dict[str, Any]], stop: asyncio.Event) -> None:
    """Collect every distinct failover entry of GROUP that /api/v1/status shows."""
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            async with http.get(base + "/api/v1/status") as resp:
                data = await resp.json()
            for g in data["groups"]:
                for op in g["failovers"] if g["group_id"] == GROUP else []:
                    if not seen or seen[-1] != op:
                        seen.append(op)
            await asyncio.sleep(0.01)


async def shown(base: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(base + "/api/v1/status") as resp:
        data = await resp.json()
    (g,) = [g for g in data["groups"] if g["group_id"] == GROUP]
    return list(g["failovers"])


async def test_status_json_follows_a_test_failover_and_its_stop(site: DrSite) -> None:
    runner, port = await start_web(site.target.target, "127.0.0.1", 0)
    base, seen, stop = f"http://127.0.0.1:{port}", [], asyncio.Event()
    watcher = asyncio.create_task(watch(base, seen, stop))
    try:
        orch = site.orchestrator(operator="operator carol (ops@dr1)")
        before = time.time()
        result = await orch.failover("test")
        await orch.progress.drain()
        assert result["status"] == "testing"
        (now,) = await shown(base)
        assert (now["kind"], now["status"], now["finished"]) == ("test", "testing", False)
        assert now["plan"] == "dr-test" and now["groups"] == [GROUP]
        assert now["started_by"] == "operator carol (ops@dr1)"
        assert now["reported_by"] == "insecure" and now["started_unix"] >= before - 60
        assert now["phases"] == len({s["phase"] for s in now["steps"]}) > 1
        assert now["phase"] == now["phases"]
        assert {s["state"] for s in now["steps"]} == {"ok"}
        assert len(now["steps"]) == result["steps"]
        assert any(s["kind"] == "power-on" for s in now["steps"])

        # While it ran, the page could see it: running steps, phases going up, done steps.
        running = [op for op in seen if op["status"] == "running"]
        assert running, seen
        assert any(s["state"] == "running" for op in running for s in op["steps"])
        phases = [op["phase"] for op in running]
        assert phases == sorted(phases) and phases[-1] > phases[0]
        assert running[0]["counts"]["ok"] < running[-1]["counts"]["ok"]

        await orch.stop_test()
        await orch.progress.drain()
        (after,) = await shown(base)
        assert (after["kind"], after["status"], after["finished"]) == (
            "stop-test", "test-stopped", True,
        )  # fmt: skip
        assert after["steps"] and {s["state"] for s in after["steps"]} == {"ok"}
        orch.close()
    finally:
        stop.set()
        await watcher
        await runner.cleanup()


class Deaf(TargetReplication):
    """The real target for everything but progress reports, which never get an answer."""

    async def report_progress(self, progress: OperationProgress, timeout_s: float) -> None:
        await asyncio.sleep(3600)


async def test_a_target_deaf_to_progress_never_fails_or_stalls_a_failover(site: DrSite) -> None:
    plan = site.plan()
    client = ReplicationClient(plan.target_address)
    creds = Credentials(site.vcsim.user, site.vcsim.password, "test")
    orch = Orchestrator(
        plan, lambda: vsphere.connect(plan.vcenter, creds), Deaf(client), rpo_probe_s=0.05
    )
    try:
        t0 = time.monotonic()
        assert (await orch.failover("test"))["status"] == "testing"
        assert (await orch.stop_test())["status"] == "test-stopped"
        t1 = time.monotonic()
        await orch.progress.drain(timeout_s=1.0)
        assert time.monotonic() - t1 < 1.5  # the last report is given up, not waited for
        assert orch.progress.sent == 0 and t1 - t0 < 60
    finally:
        orch.close()
        await client.close()


async def test_a_failback_is_reported_on_its_group_at_the_recovery_target(
    site: DrSite,
    protected: Vcsim,  # noqa: F811 - the fixture
    home: Home,  # noqa: F811 - the fixture
) -> None:
    await fail_over_and_write(site, protected, home)
    orch = orchestrator(site, protected, home)
    try:
        result = await failback(orch, home).run()
        await orch.progress.drain(timeout_s=30.0)  # the target shares this loop: slow under load
    finally:
        orch.close()
    assert result["status"] == "failed-back"
    newest = site.target.target.progress.for_group(GROUP, time.time_ns())[0]
    assert (newest.kind, newest.status, newest.finished) == ("failback", "failed-back", True)
    assert newest.steps and {s.state for s in newest.steps} == {"ok"}
    assert len(newest.steps) == result["steps_done"] and newest.phase == newest.phases
    assert newest.group_ids == (GROUP,) and newest.started_by == ""
