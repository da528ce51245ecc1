"""Ransomware alerts on the web edge: /metrics gauges and the timeline's suspect band (a
real target, real aiohttp server, real HTTP), and the red band and alert line in a real
browser (Debian chromium driven by Playwright against ``cdp target serve --http``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import Running, make_record, small_group, start_target, stop_target
from helpers import TargetProcess, free_port
from prometheus_client.parser import text_string_to_metric_families

from cdp.v1 import replication_pb2 as pb
from cdp.web import start_web

CHROMIUM = "/usr/bin/chromium"
GROUP = "web-suspect"


async def write(r: Running, batches: int) -> list[int]:
    """Batches of 4 records (points at seqs 4, 8, ...); each point's time."""
    reply = await r.client.open_session("src", small_group(GROUP, disks=1), 0, 1)
    stream = r.client.stream(reply.session_id)
    times = []
    for b in range(batches):
        ts = time.time_ns()
        await stream.send([make_record(4 * b + i, ts=ts) for i in (1, 2, 3, 4)])
        ack = await stream.recv()
        assert ack is not None and ack.durable_seq == 4 * b + 4
        times.append(ts)
        time.sleep(0.002)
    stream.cancel()
    return times


def samples(text: str, name: str) -> dict[str, float]:
    """group -> value of one metric family."""
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return {s.labels["group"]: s.value for s in family.samples}
    raise AssertionError(f"no {name} in /metrics")


async def test_metrics_and_timeline_json_show_the_alert(tmp_path: Path) -> None:
    r = await start_target(str(tmp_path / "t"), history_window_s=3600.0)
    web_runner, port = await start_web(r.target, "127.0.0.1", 0)
    try:
        times = await write(r, 6)  # points at seqs 4..24
        r.target.members(GROUP)[0].verdicts.start_watching(1)  # the detector's training ended
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/metrics") as resp:
                text = await resp.text()
            assert samples(text, "cdp_group_suspicions") == {GROUP: 0.0}
            newest = samples(text, "cdp_group_last_clean_point_timestamp_seconds")[GROUP]
            assert newest == pytest.approx(times[-1] / 1e9)
            await r.client.mark_compromised(
                pb.MarkCompromisedRequest(group_id=GROUP, start_seq=14, reason="EDR")
            )
            async with http.get(base + "/metrics") as resp:
                text = await resp.text()
            assert samples(text, "cdp_group_suspicions") == {GROUP: 1.0}
            clean = samples(text, "cdp_group_last_clean_point_timestamp_seconds")[GROUP]
            assert clean == pytest.approx(times[2] / 1e9)  # point 12, before the onset
            async with http.get(f"{base}/api/v1/groups/{GROUP}/timeline") as resp:
                timeline = await resp.json()
            (band,) = timeline["suspect_bands"]
            assert (band["start_seq"], band["open"]) == (14, True)
            assert {m["verdict"] for m in timeline["marks"]} <= {"clean", "suspect"}
            async with http.get(f"{base}/api/v1/status") as resp:
                (g,) = (await resp.json())["groups"]
            assert (g["standing_suspicions"], g["last_clean_seq"]) == (1, 12)
    finally:
        await web_runner.cleanup()
        await stop_target(r)


def cdp(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "cdp", *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing")
def test_page_shows_the_alert_and_a_red_band(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    http_port = free_port()
    target = TargetProcess(str(tmp_path / "target"), free_port(), "--http",
                           f"127.0.0.1:{http_port}")  # fmt: skip
    target.start()
    group = "browser-suspect"
    try:
        cdp("sim", "run", "--target", target.address, "--insecure", "--seconds", "0.5",
            "--rate-mb", "2", "--group", group, "--vm", "bs-vm", "--disk-size", "8MiB",
            "--dir", str(tmp_path / "src"))  # fmt: skip
        g = ["--target", target.address, "--insecure", "--group", group]
        durable = json.loads(cdp("status", *g, "--json").splitlines()[-1])["groups"][0]
        start = max(1, durable["durable_seq"] // 2)
        cdp("suspicions", "mark", *g, "--from-seq", str(start), "--reason", "EDR alert 9")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox"])  # fmt: skip
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{http_port}/")
                alert = page.locator("#alerts .alert")
                expect(alert).to_contain_text(f"ALERT {group}: 1 standing", timeout=10_000)
                expect(alert).to_contain_text("--at last-clean")
                expect(page.locator("#conn")).to_contain_text("with a ransomware alert")
                page.locator(f'#groups tr[data-group="{group}"]').click()
                expect(page.locator("#band svg rect.band-suspect")).to_have_count(1)
                expect(page.locator("#timeline tr.suspect")).to_contain_text(
                    re.compile(r"SUSPECT \(s-1: marked compromised\)")
                )
            finally:
                browser.close()
    finally:
        target.stop_or_kill()
