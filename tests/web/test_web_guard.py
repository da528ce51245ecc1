"""Retention and detector state in the web page's JSON (/api/v1/status, what the group's
row and alert lines are drawn from): a real target with a retention lock and a small
journal limit, real HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import Running, make_record, small_group, start_target, stop_target
from helpers import TargetProcess, free_port

from cdp.errors import RemoteError
from cdp.rpc.client import ReplicationClient
from cdp.web import start_web

CHROMIUM = "/usr/bin/chromium"

GROUP = "web-guard"
LIMIT = 256 * 2**10


async def write_until_refused(r: Running) -> RemoteError:
    """4 KiB incompressible writes, one batch each, until the target refuses one."""
    return await fill(r.client)


async def fill(client: ReplicationClient) -> RemoteError:
    """4 KiB incompressible writes, one batch each, until the target refuses one."""
    reply = await client.open_session("src", small_group(GROUP, disks=1), 0, 1)
    stream = client.stream(reply.session_id)
    try:
        for seq in range(1, 201):  # 800 KiB against the 256 KiB limit
            rec = make_record(seq, 0, seq * 4096, os.urandom(4096), ts=time.time_ns())
            await stream.send([rec])
            try:
                ack = await stream.recv()
            except RemoteError as exc:
                return exc
            assert ack is not None and ack.durable_seq == seq
    finally:
        stream.cancel()
    raise AssertionError("the journal took 800 KiB against its 256 KiB limit")


async def test_status_json_names_the_refusal_the_lock_and_the_detector(tmp_path: Path) -> None:
    r = await start_target(str(tmp_path / "t"), journal_limit_bytes=LIMIT,
                           history_window_s=3600.0, retention_lock_s=3600.0)  # fmt: skip
    web_runner, port = await start_web(r.target, "127.0.0.1", 0)
    try:
        err = await write_until_refused(r)
        assert err.code == "RESOURCE_EXHAUSTED", str(err)
        url = f"http://127.0.0.1:{port}/api/v1/status"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            (g,) = (await resp.json())["groups"]
        assert g["intake_refused_by"] == "lock", g
        assert "retention lock of 3600 s" in g["intake_refused_reason"]
        assert (g["retention_lock_seconds"], g["clock_jump_seconds"]) == (3600.0, 0.0)
        assert g["detector_phase"] == "training" and g["detector_watching_from_seq"] == 0
        assert isinstance(g["detector_training_until_unix_ns"], int)
        assert g["detector_training_until_unix_ns"] > time.time_ns()  # 10 min of training
    finally:
        await web_runner.cleanup()
        await stop_target(r)


async def _fill_remote(address: str) -> RemoteError:
    client = ReplicationClient(address)
    try:
        return await fill(client)
    finally:
        await client.close()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing")
def test_page_shows_the_refusal_and_the_detector(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    http_port = free_port()
    target = TargetProcess(
        str(tmp_path / "target"), free_port(), "--http", f"127.0.0.1:{http_port}",
        "--journal-limit", "256KiB", "--history-window", "1h", "--retention-lock", "1h",
    )  # fmt: skip
    target.start()
    try:
        err = asyncio.run(_fill_remote(target.address))
        assert err.code == "RESOURCE_EXHAUSTED", str(err)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox"])  # fmt: skip
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{http_port}/")
                alert = page.locator("#alerts .alert.guard")
                expect(alert).to_contain_text(f"ALERT {GROUP}: intake refused (lock): ",
                                              timeout=10_000)  # fmt: skip
                expect(alert).to_contain_text("retention lock of 3600 s")
                row = page.locator(f'#groups tr[data-group="{GROUP}"]')
                expect(row.locator("td.detector")).to_have_text(
                    re.compile(r"^training until .*; lock 3600 s$")
                )
            finally:
                browser.close()
    finally:
        target.stop_or_kill()
