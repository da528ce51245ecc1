"""Shared fixtures: a real target (RocksDB, segments, replica files) behind a real
grpc.aio server on 127.0.0.1 port 0, and helpers to build batches by hand."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from cdp import codec
from cdp.group import DiskSpec, GroupSpec, VmSpec
from cdp.journal.store.memory import MemoryIndex
from cdp.journal.store.rocksdb import RocksIndex
from cdp.record import Record
from cdp.rpc.client import ReplicationClient
from cdp.rpc.server import start_server
from cdp.target.config import TargetConfig
from cdp.target.member import Member
from cdp.target.target import Target
from cdp.tls import ClientTLS, ServerTLS

MiB = 2**20


@dataclass
class Running:
    """A target serving on loopback, with a client connected to it."""

    target: Target
    address: str
    client: ReplicationClient
    data_dir: str


def small_group(group: str = "g1", vms: int = 1, disks: int = 2, size: int = 4 * MiB) -> GroupSpec:
    return GroupSpec(
        group,
        tuple(
            VmSpec(f"{group}-vm{v}", tuple(DiskSpec(str(d), size) for d in range(disks)))
            for v in range(vms)
        ),
    )


def make_record(
    seq: int, disk: int = 0, offset: int = 0, data: bytes = b"x" * 512, ts: int | None = None
) -> Record:
    return Record(
        seq,
        disk,
        offset,
        len(data),
        ts if ts is not None else 1_000 + seq,
        codec.checksum(data),
        codec.compress(data),
    )


async def start_target(
    data_dir: str,
    tls: ServerTLS | None = None,
    client_tls: ClientTLS | None = None,
    **config: object,
) -> Running:
    """A target on loopback; history_window_s defaults to 0 (apply at once) for data-path tests.

    With ``tls`` it serves mutual TLS only (and checks authz.yaml); ``client_tls`` is then
    the certificate folder its ``client`` presents."""
    config.setdefault("history_window_s", 0.0)
    target = Target(TargetConfig(data_dir, apply_idle_s=0.005, **config), RocksIndex)  # type: ignore[arg-type]
    await target.__aenter__()
    server, port = await start_server(target, "127.0.0.1:0", tls)
    address = f"127.0.0.1:{port}"
    running = Running(target, address, ReplicationClient(address, client_tls), data_dir)
    running.server = server  # type: ignore[attr-defined]
    return running


async def stop_target(r: Running) -> None:
    await r.client.close()
    await r.server.stop(grace=1.0)  # type: ignore[attr-defined]
    await r.target.__aexit__(None, None, None)


LONE_SPEC = GroupSpec("g", (VmSpec("vm", (DiskSpec("d0", 1 << 20),)),))
"""The group of the ``member`` fixture: one VM with one 1 MiB disk."""


@contextlib.asynccontextmanager
async def lone_member(folder: str, **config: Any) -> AsyncIterator[Member]:
    """A started member of group "g" (:data:`LONE_SPEC`) on an in-memory index, in
    ``folder``, with the target's default policy changed by ``config``."""
    target_config = TargetConfig(folder, **config)
    for d in (target_config.journal_dir, target_config.replica_dir):
        os.makedirs(d)
    m = Member("g", LONE_SPEC, target_config, MemoryIndex())
    m.start()
    try:
        yield m
    finally:
        await m.stop()
        m.close()


@pytest.fixture
async def member(tmp_path: object) -> AsyncIterator[Member]:
    """A :func:`lone_member` with the default policy (a module may override the fixture,
    e.g. for a 0 s window)."""
    async with lone_member(str(tmp_path)) as m:
        yield m


@pytest.fixture
async def running(tmp_path: object) -> AsyncIterator[Running]:
    r = await start_target(os.path.join(str(tmp_path), "target"), history_window_s=0.0)
    try:
        yield r
    finally:
        await stop_target(r)


@pytest.fixture
async def running_history(tmp_path: object) -> AsyncIterator[Running]:
    """A target that keeps a one-hour history (nothing is applied during a test)."""
    r = await start_target(os.path.join(str(tmp_path), "target-h"), history_window_s=3600.0)
    try:
        yield r
    finally:
        await stop_target(r)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Soaks run as long as they need: the per-test timeout (pyproject) is for hangs."""
    for item in items:
        if item.get_closest_marker("soak") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(0))


# -- fault scorecard -----------------------------------------------------------------------

SCORECARD: dict[str, int] = {}
"""Counters the fault-injection tests add to; printed at the end of the run."""


def score(key: str, n: int = 1) -> None:
    SCORECARD[key] = SCORECARD.get(key, 0) + n


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker, hand this worker's counters to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["scorecard"] = dict(SCORECARD)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """On the xdist controller, add up the counters of a worker that finished."""
    for key, n in getattr(node, "workeroutput", {}).get("scorecard", {}).items():
        score(key, n)


def pytest_terminal_summary(terminalreporter: object) -> None:
    if not SCORECARD:
        return
    write = terminalreporter.write_line  # type: ignore[attr-defined]
    write("")
    write("fault scorecard")
    for key in (
        "outages survived",
        "stalls survived",
        "target crashes survived",
        "crashes during resync",
        "source restarts survived",
        "malformed inputs tried",
        "malformed inputs rejected",
        "corruptions detected",
        "corruptions tried",
        "corruptions detected or repaired",
        "corruptions silently wrong",
        "fsync failures injected",
        "acked after a failed fsync",
        "acked writes lost",
        "replicas identical after drain",
        "replicas compared",
        "abusive clients tried",
        "other groups' RPO p99 under abuse (ms)",
        "lifecycle operations tried",
        "lifecycle CLI kills (kill -9)",
        "lifecycle source kills (kill -9)",
        "lifecycle target restarts",
        "lifecycle failbacks",
        "lifecycle invariants checked",
        "lifecycle invariants held",
    ):
        if key in SCORECARD:
            write(f"  {key:32} {SCORECARD[key]}")
