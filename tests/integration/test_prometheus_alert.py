"""A real Prometheus server scrapes a real target and a cut link fires the RPO alert.

The target (real gRPC server, real RocksDB) serves /metrics on 127.0.0.1; a simulated
source writes to it through the bench's link proxy; ``prometheus`` (Debian package) runs
as a subprocess with its own config and storage under ``tmp_path``, scraping every 0.5 s.
Its rules are the shipped ``deploy/prometheus/cdp-rules.yml`` with every ``for:``
rewritten to 1 s (the only change, so that the test takes seconds, not minutes), and the
target's config names an RPO threshold of 3 s through the ``rpo_threshold_s`` seam of
``cdp.web.rpo_threshold_s``. While the source writes, and then while it is idle (fully
acked, sending heartbeats: idle is not lag), the RPO alert must stay inactive; after the
cut it must turn to firing. Loopback only; everything stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port

from bench.linkproxy import LinkProxy
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.journal.store.rocksdb import RocksIndex
from cdp.rpc.client import ReplicationClient
from cdp.rpc.server import start_server
from cdp.source.buffer import SourceBuffer
from cdp.source.shipper import Shipper, ShipperConfig
from cdp.target.config import DEFAULT_POLICY, GroupPolicy, TargetConfig
from cdp.target.target import Target
from cdp.web import start_web

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "cdp-rules.yml"
PROMETHEUS = shutil.which("prometheus")
THRESHOLD_S = 3.0

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus missing (Debian package prometheus; deploy/setup.sh)"
)


def alerting_config(data_dir: str) -> TargetConfig:
    """A target config whose default policy has an RPO alert threshold of THRESHOLD_S."""
    policy = GroupPolicy(history_window_s=3600.0, rpo_alert_s=THRESHOLD_S)
    return TargetConfig(data_dir, policies={DEFAULT_POLICY: policy})


def fast_rules(tmp: Path) -> Path:
    """The shipped rules with every ``for:`` shortened to 1 s."""
    text, n = re.subn(r"(?m)^(\s+for:) \S+$", r"\1 1s", RULES.read_text())
    assert n >= 10
    out = tmp / "cdp-rules-fast.yml"
    out.write_text(text)
    return out


@contextlib.contextmanager
def prometheus(tmp: Path, metrics_port: int) -> Iterator[str]:
    """A Prometheus server scraping 127.0.0.1:metrics_port; yields its base URL."""
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 500ms, scrape_timeout: 500ms, evaluation_interval: 500ms}\n"
        f"rule_files: [{fast_rules(tmp)}]\n"
        "scrape_configs:\n"
        "  - job_name: cdp-target\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [PROMETHEUS or "prometheus", f"--config.file={config}",
         f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(base):
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "prometheus did not become ready in 60 s"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def alerts(base: str, name: str) -> list[dict[str, Any]]:
    """The alerts of that name Prometheus holds now (pending or firing)."""
    with urllib.request.urlopen(base + "/api/v1/alerts", timeout=5) as resp:
        body = json.load(resp)
    return [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == name]


def series(base: str, query: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    url = base + "/api/v1/query?query=" + urllib.parse.quote(query)
    with urllib.request.urlopen(url, timeout=5) as resp:
        return list(json.load(resp)["data"]["result"])


async def until(what: str, check: Any, timeout_s: float) -> Any:
    """Poll ``check`` (in a thread) until it returns something true."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.25)


async def test_cut_link_fires_the_rpo_alert(tmp_path: Path) -> None:
    config = alerting_config(str(tmp_path / "target"))
    async with Target(config, RocksIndex) as target:
        server, port = await start_server(target, "127.0.0.1:0")
        web_runner, http_port = await start_web(target, "127.0.0.1", 0)
        proxy = await LinkProxy(f"127.0.0.1:{port}").start()
        client = ReplicationClient(proxy.address)
        buffer = SourceBuffer()
        spec = GroupSpec("prom", (VmSpec("vm-p", (DiskSpec("0", 4 * 2**20),)),))
        source = asyncio.ensure_future(Shipper(spec, buffer, client, ShipperConfig("p")).run())
        writing = asyncio.ensure_future(_write(buffer))
        try:
            with prometheus(tmp_path, http_port) as base:
                await _check_quiet_then_firing(base, target, proxy, writing)
        finally:
            for task in (writing, source):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await client.close()
            await proxy.close()
            await web_runner.cleanup()
            await server.stop(grace=1.0)


async def _write(buffer: SourceBuffer) -> None:
    """A guest writing 4 KiB at random places, about 200 times a second, until cancelled."""
    n = 0
    while True:
        n += 1
        buffer.append(0, (n * 7919 % 1024) * 4096, n.to_bytes(4, "little") * 1024, time.time_ns())
        await asyncio.sleep(0.005)


async def _quiet(base: str, seconds: float) -> None:
    """For ``seconds``: scraped, evaluated, and the RPO alert never pending."""
    quiet_until = time.monotonic() + seconds
    while time.monotonic() < quiet_until:
        assert await asyncio.to_thread(alerts, base, "CdpRpoOverThreshold") == []
        await asyncio.sleep(0.25)
    rpo = await asyncio.to_thread(series, base, 'cdp_group_rpo_seconds{group="prom"}')
    assert float(rpo[0]["value"][1]) < THRESHOLD_S


async def _check_quiet_then_firing(
    base: str, target: Target, proxy: LinkProxy, writing: asyncio.Future[None]
) -> None:
    threshold = await until(
        "threshold scraped",
        lambda: series(base, 'cdp_group_rpo_threshold_seconds{group="prom"}'),
        60,
    )
    assert float(threshold[0]["value"][1]) == THRESHOLD_S
    await until("writes replicate", lambda: target.status("prom")[0].durable_seq > 0, 60)
    await _quiet(base, 2 * THRESHOLD_S)  # the source writing
    writing.cancel()
    await _quiet(base, 3 * THRESHOLD_S)  # the source idle, fully acked: idle is not lag
    assert target.status("prom")[0].source_connected
    proxy.outage()
    cut = time.monotonic()
    firing = await until(
        "RPO alert firing after the cut",
        lambda: [a for a in alerts(base, "CdpRpoOverThreshold") if a["state"] == "firing"],
        60,
    )
    assert time.monotonic() - cut >= THRESHOLD_S, "fired before the RPO could pass it"
    assert firing[0]["labels"]["group"] == "prom"
    assert firing[0]["labels"]["severity"] == "critical"
    assert float(firing[0]["value"]) > THRESHOLD_S
