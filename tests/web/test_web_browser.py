"""The on-call page in a real browser: Debian chromium driven by Playwright, against
``cdp target serve --http`` with data written by ``cdp sim run``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from helpers import TargetProcess, free_port

CHROMIUM = "/usr/bin/chromium"
GROUP = "browser-group"

pytestmark = [
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is missing (Debian package chromium; deploy/setup.sh installs it)",
    ),
    pytest.mark.slow,
]


def sim_run(address: str, folder: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cdp", "sim", "run", "--target", address, "--insecure",
         "--seconds", "0.5", "--rate-mb", "2", "--group", GROUP, "--vm", "browser-vm",
         "--disk-size", "8MiB", "--dir", folder],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def cdp(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "cdp", *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


RECORD_VERIFIED = """
import asyncio, sys
from cdp.rpc.client import ReplicationClient
from cdp.verified import ACTION, Verification
async def main():
    c = ReplicationClient(sys.argv[1], None)
    s = (await c.status(sys.argv[2])).groups[0]
    v = Verification(sys.argv[2], "dr", "passed", s.durable_seq, s.durable_source_time_unix_ns)
    await c.record_audit(ACTION, v.to_object(), "ok")
    await c.close()
asyncio.run(main())
"""


def test_page_shows_groups_timeline_and_an_unreachable_target(tmp_path: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    http_port = free_port()
    # History window 0: applied seqs leave the timeline, so it shows a retention gap.
    target = TargetProcess(
        os.path.join(tmp_path, "target"), free_port(),
        "--http", f"127.0.0.1:{http_port}", "--history-window", "0",
    )  # fmt: skip
    target.start()
    try:
        sim_run(target.address, os.path.join(tmp_path, "src"))
        cdp("points", "bookmark", "before-upgrade", "--target", target.address, "--insecure",
            "--group", GROUP)  # fmt: skip
        subprocess.run([sys.executable, "-c", RECORD_VERIFIED, target.address, GROUP],
                       check=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{http_port}/")
                row = page.locator(f'#groups tr[data-group="{GROUP}"]')
                expect(row.locator("td.group")).to_have_text(GROUP, timeout=10_000)
                expect(row.locator("td.state")).to_have_text("disconnected")
                expect(row.locator("td.lifecycle")).to_have_text("protecting")
                expect(row.locator("td.state")).to_have_class(re.compile("state-disconnected"))
                expect(page.locator("#conn")).to_contain_text("target connected")
                expect(page.locator("#conn")).to_contain_text("UTC; 0 of 1 group members with")
                expect(row.locator("td.rpo")).to_contain_text(" s / 300 s")
                expect(row.locator("td.verified")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d "))
                expect(row.locator("td.detector")).to_have_text(
                    re.compile(r"^training until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
                )
                card = page.locator(f'#charts figure[data-group="{GROUP}"]')
                expect(card.locator("svg polyline.rpo-line")).to_have_count(1)
                expect(card.locator("svg line.threshold")).to_have_count(1)
                row.click()
                expect(page.locator("#timeline-group")).to_have_text(GROUP)
                expect(page.locator("#timeline tr.interval").last).to_contain_text("restore points")
                expect(page.locator("#timeline tr.gap").first).to_contain_text(
                    "NO RESTORE POINTS (retention)"
                )
                expect(page.locator("#timeline-health")).to_contain_text("history:")
                band = page.locator("#band svg")
                expect(band.locator("rect.band-ok")).not_to_have_count(0)
                expect(band.locator("rect.gap-retention")).to_have_count(1)
                expect(band.locator("line.mark-bookmark")).to_have_count(1)
                expect(band.locator("path.verified-mark")).to_have_count(1)
                shot = os.path.join(tmp_path, "oncall.png")
                page.screenshot(path=shot, full_page=True)
                with open(shot, "rb") as f:
                    head = f.read(8)
                assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(shot) > 20_000
                assert target.stop() == 0
                expect(page.locator("#conn")).to_contain_text("UNREACHABLE", timeout=10_000)
                expect(page.locator("#conn")).to_have_class("down")
                expect(page.locator("#groups")).to_have_class(re.compile("stale"))
            finally:
                browser.close()
    finally:
        target.stop_or_kill()


REPORT_PROGRESS = """
import asyncio, sys, time
from cdp.progress import OperationProgress, StepProgress
from cdp.rpc.client import ReplicationClient
from cdp.rpc.convert import progress_to_pb
steps = (
    StepProgress("exp-0", "export", 1, "export disk 0 of browser-vm", "ok", 2.5),
    StepProgress("reg", "register", 2, "register browser-vm-test on host-1", "running", 0.4),
    StepProgress("on", "power-on", 3, "power on browser-vm-test (boot group 'db')", "pending"),
)
p = OperationProgress(
    plan="dr-browser", group_ids=(sys.argv[2],), kind="test", status="running", phase=2,
    phases=3, started_ns=time.time_ns() - 30 * 10**9, started_by="operator dana (ops@dr1)",
    steps=steps,
)
async def main():
    c = ReplicationClient(sys.argv[1], None)
    await c.report_failover_progress(progress_to_pb(p), 10)
    await c.close()
asyncio.run(main())
"""


def test_page_shows_an_active_failover_with_its_phase_and_steps(tmp_path: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    http_port = free_port()
    target = TargetProcess(
        os.path.join(tmp_path, "target"), free_port(), "--http", f"127.0.0.1:{http_port}"
    )
    target.start()
    try:
        sim_run(target.address, os.path.join(tmp_path, "src"))
        subprocess.run([sys.executable, "-c", REPORT_PROGRESS, target.address, GROUP],
                       check=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{http_port}/")
                row = page.locator(f'#groups tr[data-group="{GROUP}"]')
                expect(row.locator("td.lifecycle")).to_contain_text(
                    "test: running, phase 2/3", timeout=10_000
                )
                card = page.locator('#failovers .failover[data-plan="dr-browser"]')
                expect(card.locator("h3")).to_have_text(
                    "test failover of plan dr-browser: running, phase 2 of 3"
                )
                expect(card.locator(".failover-who")).to_contain_text(
                    "started by operator dana (ops@dr1) at "
                )
                expect(card.locator(".failover-who")).to_contain_text(
                    "1 ok, 1 running, 0 failed, 1 pending"
                )
                states = card.locator("td.step-state")
                expect(states).to_have_text(["ok", "running", "pending"])
                expect(card.locator('tr[data-step="reg"] td.step-running')).to_have_count(1)
                expect(card.locator('tr[data-step="reg"]')).to_contain_text(
                    "register browser-vm-test on host-1"
                )
                page.screenshot(path=os.path.join(tmp_path, "failover.png"), full_page=True)
            finally:
                browser.close()
    finally:
        target.stop_or_kill()
