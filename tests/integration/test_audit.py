"""The audit trail at a real target: bookmarks over mTLS recorded with the operator's
identity, failures recorded too, RecordAudit/ListAudit operator-only, the file private,
``cdp audit`` and the web page's /api/v1/audit over a plain-text target ("insecure")."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from conftest import make_record, small_group, start_target, stop_target

from cdp import audit, tls
from cdp.cli.certs import CertsPlan, init_certs
from cdp.errors import RemoteError
from cdp.journal.store.rocksdb import RocksIndex
from cdp.rpc.client import ReplicationClient
from cdp.rpc.server import start_server
from cdp.target.config import TargetConfig
from cdp.target.target import Target
from cdp.web import start_web

SPEC = small_group("ga")


@dataclass
class Secure:
    """A target serving mTLS on loopback and the PKI of ``cdp certs init``."""

    target: Target
    address: str
    pki: str

    def client(self, kind: str, name: str) -> ReplicationClient:
        return ReplicationClient(
            self.address, tls.load_client_tls(os.path.join(self.pki, kind, name))
        )


@pytest.fixture
async def secure(tmp_path: object) -> AsyncIterator[Secure]:
    root = str(tmp_path)
    pki = os.path.join(root, "pki")
    init_certs(CertsPlan(pki, sources={"host-a": ["ga"]}, operators=("ops",)))
    config = TargetConfig(os.path.join(root, "target"), apply_idle_s=0.005, history_window_s=0.0)
    async with Target(config, RocksIndex) as target:
        server, port = await start_server(
            target, "127.0.0.1:0", tls.load_server_tls(os.path.join(pki, "target"))
        )
        try:
            yield Secure(target, f"127.0.0.1:{port}", pki)
        finally:
            await server.stop(grace=1.0)


async def one_write(client: ReplicationClient) -> None:
    """Open a session for ga and make one record durable (a point to bookmark)."""
    session = (await client.open_session("host-a", SPEC, 0, 1)).session_id
    stream = client.stream(session)
    try:
        await stream.send([make_record(1)])
        assert (await stream.recv()) is not None
    finally:
        stream.cancel()


async def test_bookmark_over_mtls_is_recorded_with_the_operator(secure: Secure) -> None:
    async with secure.client("sources", "host-a") as source:
        await one_write(source)
    async with secure.client("operators", "ops") as ops:
        await ops.create_bookmark("ga", "before-upgrade")
        with pytest.raises(RemoteError):
            await ops.create_bookmark("ga", "before-upgrade")  # taken: recorded as failed
        entries = [(e.identity, e.action, e.object, e.outcome) for e in await ops.list_audit()]
    assert entries[0] == (
        "operator 'ops'",
        "create_bookmark",
        "group ga bookmark before-upgrade",
        "ok",
    )
    assert entries[1][:3] == entries[0][:3] and entries[1][3].startswith("error: ")
    assert len(entries) == 2
    path = os.path.join(secure.target.config.data_dir, audit.FILE_NAME)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_record_and_list_are_operator_only(secure: Secure) -> None:
    async with secure.client("operators", "ops") as ops:
        entry = await ops.record_audit("failover.test", "plan p.yaml group ga", "ok")
        assert entry.identity == "operator 'ops'" and entry.time_unix_ns > 0
        with pytest.raises(RemoteError) as err:
            await ops.record_audit("", "plan", "ok")
        assert err.value.code == "INVALID_ARGUMENT" and "action" in str(err.value)
        assert [e.action for e in await ops.list_audit()] == ["failover.test"]
    async with secure.client("sources", "host-a") as source:
        for call in (source.list_audit(), source.record_audit("x", "y", "ok")):
            with pytest.raises(RemoteError) as err:
                await call
            assert err.value.code == "PERMISSION_DENIED"
    assert len(audit.target_log(secure.target.config.data_dir).entries()) == 1


async def test_cli_and_web_show_insecure_actions(tmp_path: object) -> None:
    r = await start_target(os.path.join(str(tmp_path), "target"))
    web_runner, port = await start_web(r.target, "127.0.0.1", 0)
    try:
        session = (await r.client.open_session("host-a", SPEC, 0, 1)).session_id
        stream = r.client.stream(session)
        await stream.send([make_record(1)])
        assert (await stream.recv()) is not None
        stream.cancel()
        await r.client.create_bookmark("ga", "b1")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cdp", "audit", "--target", r.address, "--insecure", "--json",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0
        [entry] = json.loads(out)["entries"]
        assert (entry["identity"], entry["action"], entry["outcome"]) == (
            "insecure", "create_bookmark", "ok",
        )  # fmt: skip
        assert entry["time"].endswith("Z")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/api/v1/audit") as resp,
        ):
            body = await resp.json()
        assert resp.status == 200 and body["entries"] == [entry]
    finally:
        await web_runner.cleanup()
        await stop_target(r)


async def test_a_failover_operation_is_recorded_under_the_operator_certificate(
    secure: Secure, tmp_path: object
) -> None:
    """The failover CLI's recording path (failover_common.record_operation) over mTLS: the
    operator's identity at the target and locally; a source certificate is refused by the
    target and the local entry says so, with the identity of that certificate."""
    from types import SimpleNamespace

    from cdp.cli.failover_common import record_operation

    state = os.path.join(str(tmp_path), "state")
    for kind, name in (("operators", "ops"), ("sources", "host-a")):
        client = secure.client(kind, name)
        cert = tls.load_client_tls(os.path.join(secure.pki, kind, name)).cert_pem
        session = SimpleNamespace(
            client=client, identity=str(tls.identity_of(cert or b"")),
            plan=SimpleNamespace(state_dir=state, name="dr"),
        )  # fmt: skip
        try:
            await record_operation(session, "failover.test", "plan dr (/p.yaml)", "ok")  # type: ignore[arg-type]
        finally:
            await client.close()
    local = audit.AuditLog(os.path.join(state, "dr", audit.FILE_NAME)).entries()
    assert [(e.identity, e.action, e.outcome) for e in local] == [
        ("operator 'ops'", "failover.test", "ok"), ("source 'host-a'", "failover.test", "ok"),
    ]  # fmt: skip
    assert "not recorded at the target" not in local[0].object
    assert "not recorded at the target: PERMISSION_DENIED" in local[1].object
    remote = audit.target_log(secure.target.config.data_dir).entries()
    assert [(e.identity, e.action) for e in remote if e.action == "failover.test"] == [
        ("operator 'ops'", "failover.test")
    ]
