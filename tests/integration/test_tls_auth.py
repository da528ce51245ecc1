"""Mutual TLS and authorization on a real grpc.aio server with a real target.

Certificates come from ``cdp certs init`` (in-process); odd ones (another CA, expired,
no identity) are made with :mod:`cdp.tls` in the test. Each refusal is checked for its
status code and for a message naming the identity and the group.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import make_record, small_group, start_target, stop_target
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cdp import tls
from cdp.cli.certs import CertsPlan, init_certs
from cdp.errors import RemoteError
from cdp.group import GroupSpec
from cdp.journal.store.rocksdb import RocksIndex
from cdp.rpc.client import ReplicationClient
from cdp.rpc.server import start_server
from cdp.source.buffer import SourceBuffer
from cdp.source.shipper import AckReply, Shipper, ShipperConfig
from cdp.target.config import TargetConfig
from cdp.target.target import Target
from cdp.v1 import replication_pb2 as pb
from sim import runner
from sim.workload import WorkloadSpec

SOURCES = {"host-a": ["ga"], "host-a2": ["ga"], "host-b": ["gb"]}
"""host-a and host-a2 both write group ga (as the members of a group spanning hosts do)."""
SPEC_A, SPEC_B = small_group("ga"), small_group("gb")
SPEC_A2 = GroupSpec("ga", small_group("a2").vms)
"""host-a2's VMs in group ga, when host-a and host-a2 stream ga as two members."""


@dataclass
class Secure:
    """A target serving mTLS on loopback, and the PKI that ``cdp certs init`` made for it."""

    target: Target
    address: str
    pki: str

    def tls_of(self, kind: str, name: str) -> tls.ClientTLS:
        return tls.load_client_tls(os.path.join(self.pki, kind, name))

    def client(self, kind: str, name: str) -> ReplicationClient:
        return ReplicationClient(self.address, self.tls_of(kind, name))

    def odd_client(self, issued: tls.Issued) -> ReplicationClient:
        """A client that trusts the real CA, with a certificate made by the test."""
        with open(os.path.join(self.pki, "ca", "ca.pem"), "rb") as f:
            ca_pem = f.read()
        return ReplicationClient(
            self.address, tls.ClientTLS(ca_pem, issued.cert_pem(), issued.key_pem())
        )

    def authz_path(self) -> str:
        return os.path.join(self.pki, "target", tls.AUTHZ_FILE)


@pytest.fixture
async def secure(tmp_path: object) -> AsyncIterator[Secure]:
    root = str(tmp_path)
    pki = os.path.join(root, "pki")
    init_certs(CertsPlan(pki, sources=SOURCES, operators=("ops",)))
    config = TargetConfig(os.path.join(root, "target"), apply_idle_s=0.005, history_window_s=0.0)
    target = Target(config, RocksIndex)
    await target.__aenter__()
    server, port = await start_server(
        target, "127.0.0.1:0", tls.load_server_tls(os.path.join(pki, "target"))
    )
    try:
        yield Secure(target, f"127.0.0.1:{port}", pki)
    finally:
        await server.stop(grace=1.0)
        await target.__aexit__(None, None, None)


async def stream_one(client: ReplicationClient, session_id: str, seq: int) -> AckReply | None:
    """Send one batch of one record on a new stream; the first ack (or the call's error)."""
    stream = client.stream(session_id)
    try:
        await stream.send([make_record(seq)])
        return await stream.recv()
    finally:
        stream.cancel()


async def refused_fast(client: ReplicationClient) -> RemoteError:
    """The error of a status call that waits at most 1 s for a connection."""
    async with client:
        with pytest.raises(RemoteError) as err:
            async with client._rpc():
                await client._stub.GetStatus(pb.GetStatusRequest(), timeout=1, wait_for_ready=True)
    return err.value


def denied(err: pytest.ExceptionInfo[RemoteError], *words: str) -> None:
    assert err.value.code == "PERMISSION_DENIED", err.value
    for w in words:
        assert w in str(err.value), (w, str(err.value))


# -- sources write their own groups only -----------------------------------------------


async def test_source_streams_to_its_group_and_is_denied_another(secure: Secure) -> None:
    async with secure.client("sources", "host-a") as client:
        reply = await client.open_session("host-a", SPEC_A, 0, 1)
        ack = await stream_one(client, reply.session_id, 1)
        assert ack is not None and ack.durable_seq == 1
        with pytest.raises(RemoteError) as err:
            await client.open_session("host-a", SPEC_B, 0, 1)
    denied(err, "source 'host-a'", "group 'gb'", "ga")
    assert [g.group_id for g in secure.target.status()] == ["ga"]  # gb was never created


async def test_simulated_host_replicates_over_mtls(secure: Secure, tmp_path: object) -> None:
    config = runner.SimConfig(
        target=secure.address, folder=os.path.join(str(tmp_path), "src"), group="ga",
        vms=("ga-vm",), disks_per_vm=1, disk_bytes=8 * 2**20,
        workload=WorkloadSpec("random", 4096, iops=2000, seed=3), seconds=0.5,
        tls=secure.tls_of("sources", "host-a"),
    )  # fmt: skip
    result = await runner.run(config)
    assert result["writes"] > 0 and result["acked_seq"] == result["writes"]


async def test_stolen_session_id_is_denied(secure: Secure) -> None:
    async with secure.client("sources", "host-a") as owner:
        session = (await owner.open_session("host-a", SPEC_A, 0, 1)).session_id
        # host-a2 may write group ga too, but not through host-a's session
        async with secure.client("sources", "host-a2") as thief:
            with pytest.raises(RemoteError) as err:
                await stream_one(thief, session, 1)
        denied(err, "opened by source 'host-a'", "not by source 'host-a2'")
        # host-b may not write ga at all
        async with secure.client("sources", "host-b") as other:
            with pytest.raises(RemoteError) as err:
                await stream_one(other, session, 1)
        denied(err, "source 'host-b'", "group 'ga'")
        assert secure.target.status("ga")[0].durable_seq == 0
        ack = await stream_one(owner, session, 1)  # the owner's session still works
        assert ack is not None and ack.durable_seq == 1


async def test_stolen_session_id_is_denied_for_compare_regions(secure: Secure) -> None:
    async with secure.client("sources", "host-a") as owner:
        session = (await owner.open_session("host-a", SPEC_A, 0, 1)).session_id
        async with secure.client("sources", "host-a2") as thief:
            with pytest.raises(RemoteError) as err:
                await thief.compare_regions(session, 0, 2**20, [0], [0])
        denied(err, "CompareRegions", "opened by source 'host-a'")
        assert await owner.compare_regions(session, 0, 2**20, [0], [0]) == [0]


# -- members of a group spanning hosts: each source streams as its own member -------------


def write_authz(secure: Secure, text: str) -> None:
    """Replace the target's authz.yaml (the target reloads it on the next call)."""
    with open(secure.authz_path(), "w") as f:
        f.write(text)


async def test_source_streams_only_as_the_member_its_certificate_names(secure: Secure) -> None:
    async with secure.client("sources", "host-a") as a, secure.client("sources", "host-a2") as a2:
        mine = (await a.open_session("host-a", SPEC_A, 0, 1, "host-a")).session_id
        await a2.open_session("host-a2", SPEC_A2, 0, 1, "host-a2")
        with pytest.raises(RemoteError) as err:  # host-a2 posing as host-a's member
            await a2.open_session("host-a2", SPEC_A, 0, 1, "host-a")
        denied(err, "OpenSession: source 'host-a2'", "member 'host-a' of group 'ga'",
               "it streams as 'host-a2', the name in its certificate")  # fmt: skip
        ack = await stream_one(a, mine, 1)  # host-a's session was not superseded
        assert ack is not None and ack.durable_seq == 1
    assert sorted(g.member_id for g in secure.target.status("ga")) == ["host-a", "host-a2"]


async def test_shipper_with_another_hosts_member_id_stops(secure: Secure) -> None:
    """A host misconfigured with another host's member_id gets a final PERMISSION_DENIED."""
    buffer = SourceBuffer()
    buffer.append(0, 0, b"\1" * 512, 1)
    async with secure.client("sources", "host-a2") as client:
        shipper = Shipper(SPEC_A, buffer, client, ShipperConfig("host-a2", member_id="host-a"))
        with pytest.raises(RemoteError) as err:
            await asyncio.wait_for(shipper.run(), 20)
    denied(err, "source 'host-a2'", "member 'host-a'")
    assert secure.target.status() == []


async def test_authz_members_list_the_member_ids_a_source_may_use(secure: Secure) -> None:
    """A host renamed in its certificate keeps streaming its old member journal."""
    write_authz(secure, "sources:\n  host-a: [ga]\n  host-b: [gb]\n"
                "  host-a2: {groups: [ga], members: [esx-old]}\noperators: [ops]\n")  # fmt: skip
    async with secure.client("sources", "host-a2") as client:
        session = (await client.open_session("host-a2", SPEC_A, 0, 1, "esx-old")).session_id
        ack = await stream_one(client, session, 1)
        assert ack is not None and ack.durable_seq == 1
        with pytest.raises(RemoteError) as err:  # the list replaces the certificate's name
            await client.open_session("host-a2", SPEC_A, 0, 1, "host-a2")
    denied(err, "source 'host-a2'", "member 'host-a2' of group 'ga'",
           "its members in the target's authz.yaml: esx-old")  # fmt: skip
    assert [g.member_id for g in secure.target.status("ga")] == ["esx-old"]


async def test_member_taken_away_in_authz_is_refused_on_the_next_call(secure: Secure) -> None:
    async with secure.client("sources", "host-a") as client:
        session = (await client.open_session("host-a", SPEC_A, 0, 1, "host-a")).session_id
        write_authz(secure, "sources:\n  host-a: {groups: [ga, gc], members: []}\n"
                    "operators: [ops]\n")  # fmt: skip
        with pytest.raises(RemoteError) as err:
            await stream_one(client, session, 1)
        denied(err, "StreamJournal: source 'host-a'", "member 'host-a'", "authz.yaml: none")
        alone = await client.open_session("host-a", small_group("gc"), 0, 1)  # no member_id
        assert await stream_one(client, alone.session_id, 1) is not None
    assert secure.target.status("ga")[0].durable_seq == 0


async def test_plain_text_target_does_not_check_member_ids(tmp_path: object) -> None:
    """Without TLS there is no identity: any source id may stream as any member."""
    r = await start_target(os.path.join(str(tmp_path), "target"))
    try:
        for source, spec, member in (("host-a", SPEC_A2, "host-a2"), ("x", SPEC_A, "host-a")):
            reply = await r.client.open_session(source, spec, 0, 1, member)
            assert reply.session_id
        assert sorted(g.member_id for g in r.target.status("ga")) == ["host-a", "host-a2"]
    finally:
        await stop_target(r)


async def test_unknown_session_is_left_to_the_target(secure: Secure) -> None:
    """A session that is not live is the servicer's FAILED_PRECONDITION, not an auth error."""
    async with secure.client("sources", "host-a") as client:
        with pytest.raises(RemoteError) as err:
            await stream_one(client, "no-such-session", 1)
    assert err.value.code == "FAILED_PRECONDITION", err.value


# -- operators read; roles do not mix ------------------------------------------------------


async def test_operator_reads_and_bookmarks(secure: Secure) -> None:
    async with secure.client("sources", "host-a") as source:
        session = (await source.open_session("host-a", SPEC_A, 0, 1)).session_id
        await stream_one(source, session, 1)
    async with secure.client("operators", "ops") as ops:
        assert [g.group_id for g in (await ops.status()).groups] == ["ga"]
        assert (await ops.timeline("ga")).spans
        mark = await ops.create_bookmark("ga", "m1")
        assert mark.seq == 1
        assert [p.label for p in await ops.list_points("ga", labelled_only=True)] == ["m1"]
        first = [m async for m in ops.read_image("ga", "ga-vm0", 0, "latest", dry_run=True)]
        assert first[0].plan.point.seq == 1
        with pytest.raises(RemoteError) as err:
            await ops.open_session("ops", SPEC_A, 0, 1)
    denied(err, "operator 'ops' is not a source")


@pytest.mark.parametrize("call", ["status", "timeline", "points", "image", "bookmark"])
async def test_source_may_not_read_other_groups(secure: Secure, call: str) -> None:
    """A source reads only the groups it writes; every group's status is an operator's."""
    async with secure.client("sources", "host-a") as client:
        with pytest.raises(RemoteError) as err:
            if call == "status":
                await client.status()
            elif call == "timeline":
                await client.timeline("gb")
            elif call == "points":
                await client.list_points("gb")
            elif call == "bookmark":
                await client.create_bookmark("gb", "b1")
            else:
                await anext(client.read_image("gb", "gb-vm0", 0, "latest", dry_run=True))
    denied(err, "source 'host-a' is not an operator", "--operator")


async def test_source_reads_and_bookmarks_its_own_group(secure: Secure) -> None:
    """What failback needs with one source certificate (issue 13 #2): the status, points,
    image and a bookmark of a group the source writes."""
    async with secure.client("sources", "host-a") as client:
        session = (await client.open_session("host-a", SPEC_A, 0, 1)).session_id
        assert session
        assert [g.group_id for g in (await client.status("ga")).groups] == ["ga"]
        await client.list_points("ga")
        await client.timeline("ga")
        with pytest.raises(RemoteError) as err:  # admitted: the group has no point yet
            await anext(client.read_image("ga", "ga-vm0", 0, "latest", dry_run=True))
        assert err.value.code == "NOT_FOUND", err.value


async def test_only_an_operator_unfences(secure: Secure) -> None:
    """A source may mark and fence its own group (a failback's failover at the original
    site does), never another's, and never unfence: only an operator loosens a fence."""
    async with secure.client("sources", "host-a") as client:
        await client.open_session("host-a", SPEC_A, 0, 1)
        fenced = await client.set_lifecycle("ga", pb.LIFECYCLE_STATE_FAILING_OVER, fence=True)
        assert fenced.epoch == 1
        with pytest.raises(RemoteError) as err:
            await client.set_lifecycle("ga", pb.LIFECYCLE_STATE_PROTECTING, unfence=True)
        denied(err, "SetLifecycle", "source 'host-a' is not an operator", "unfence")
        with pytest.raises(RemoteError) as err:
            await client.set_lifecycle("gb", pb.LIFECYCLE_STATE_FAILING_OVER, fence=True)
        denied(err, "SetLifecycle", "source 'host-a' is not an operator")
    async with secure.client("operators", "ops") as ops:
        resp = await ops.set_lifecycle("ga", pb.LIFECYCLE_STATE_PROTECTING, unfence=True)
    assert resp.epoch == 0


async def test_health_is_open_to_every_authenticated_client(secure: Secure) -> None:
    async with secure.client("sources", "host-b") as client:
        stub = health_pb2_grpc.HealthStub(client._channel)
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


# -- identities the handshake admits but the policy does not know ---------------------------


async def test_certificate_without_identity_is_unauthenticated(secure: Secure) -> None:
    ca = tls.read_ca(os.path.join(secure.pki, "ca"))
    anonymous = tls.issue(ca, "no identity")  # a client certificate of the right CA, no URI
    async with secure.odd_client(anonymous) as client:
        with pytest.raises(RemoteError) as err:
            await client.status()
    assert err.value.code == "UNAUTHENTICATED", err.value
    assert "no cdp identity" in str(err.value)


async def test_source_missing_from_authz_is_denied(secure: Secure) -> None:
    ca = tls.read_ca(os.path.join(secure.pki, "ca"))
    stranger = tls.issue(ca, "x", identity=tls.Identity(tls.ROLE_SOURCE, "host-x"))
    async with secure.odd_client(stranger) as client:
        with pytest.raises(RemoteError) as err:
            await client.open_session("host-x", SPEC_A, 0, 1)
    denied(err, "source 'host-x' is not listed", "authz.yaml")


async def test_editing_authz_revokes_without_restart(
    secure: Secure, caplog: pytest.LogCaptureFixture
) -> None:
    async with secure.client("sources", "host-a") as client:
        await client.open_session("host-a", SPEC_A, 0, 1)
        with open(secure.authz_path(), "w") as f:
            f.write("sources:\n  host-b: [gb]\noperators: [ops]\n")
        with pytest.raises(RemoteError) as err:
            await client.open_session("host-a", SPEC_A, 0, 1)
        denied(err, "source 'host-a' is not listed")
        with open(secure.authz_path(), "w") as f:  # a broken edit keeps the last good policy
            f.write("sources: [host-a]\n")
        with caplog.at_level(logging.ERROR, "cdp.rpc.auth"), pytest.raises(RemoteError) as err:
            await client.open_session("host-a", SPEC_A, 0, 1)
        denied(err, "source 'host-a' is not listed")
        assert "previous policy stays in force" in caplog.text and "sources" in caplog.text


# -- refused in the TLS handshake: the client says so, with a hint -------------------------


def handshake_refused(err: RemoteError) -> None:
    """The documented client error when the target refuses the TLS handshake."""
    assert err.code == "UNAVAILABLE", err
    text = str(err)
    assert "no connection to 127.0.0.1:" in text
    assert "missing, expired or not signed by its CA" in text  # the hint


async def test_client_without_certificate_is_refused_in_the_handshake(secure: Secure) -> None:
    ca_pem = secure.tls_of("operators", "ops").ca_pem
    no_cert = tls.ClientTLS(ca_pem, None, None)
    handshake_refused(await refused_fast(ReplicationClient(secure.address, no_cert)))


async def test_certificate_of_another_ca_is_refused(secure: Secure) -> None:
    other = tls.new_ca("another CA")
    cert = tls.issue(other, "a", identity=tls.Identity(tls.ROLE_SOURCE, "host-a"))
    handshake_refused(await refused_fast(secure.odd_client(cert)))


async def test_expired_certificate_is_refused(secure: Secure) -> None:
    ca = tls.read_ca(os.path.join(secure.pki, "ca"))
    past = tls.now_utc() - datetime.timedelta(days=10)
    cert = tls.issue(
        ca, "a", identity=tls.Identity(tls.ROLE_OPERATOR, "ops"), days=1, not_before=past
    )
    handshake_refused(await refused_fast(secure.odd_client(cert)))


async def test_target_name_not_in_its_certificate_is_refused_by_the_client(
    secure: Secure,
) -> None:
    good = secure.tls_of("operators", "ops")
    wrong = tls.ClientTLS(good.ca_pem, good.cert_pem, good.key_pem, server_name="other.example")
    err = await refused_fast(ReplicationClient(secure.address, wrong))
    assert err.code == "UNAVAILABLE" and "Hostname Verification" in str(err), err
    assert "does not name the host" in str(err)


async def test_plain_text_client_is_refused_with_a_hint(secure: Secure) -> None:
    err = await refused_fast(ReplicationClient(secure.address))
    assert err.code == "UNAVAILABLE", err
    assert "pass --tls-dir instead of --insecure" in str(err)


async def test_wait_for_a_connection_ends_with_the_handshake_error(secure: Secure) -> None:
    """The real status call (10 s deadline) ends UNAVAILABLE with the hint, not a bare deadline."""
    other = tls.new_ca("another CA")
    cert = tls.issue(other, "a", identity=tls.Identity(tls.ROLE_OPERATOR, "ops"))
    async with secure.odd_client(cert) as client:
        with pytest.raises(RemoteError) as err:
            await asyncio.wait_for(client.status(), 20)
    handshake_refused(err.value)


# -- rotation ----------------------------------------------------------------------------


async def test_ca_bundle_admits_clients_of_the_old_and_the_new_ca(tmp_path: object) -> None:
    """While a CA is rotated, the target's ca.pem holds both CAs and admits both."""
    root = str(tmp_path)
    old_pki = os.path.join(root, "old")
    init_certs(CertsPlan(old_pki, operators=("ops",)))
    new_pki = os.path.join(root, "new")
    init_certs(CertsPlan(new_pki, operators=("ops",)))
    target_dir = os.path.join(old_pki, "target")
    bundle = b"".join(Path(p, "ca", "ca.pem").read_bytes() for p in (old_pki, new_pki))
    with open(os.path.join(target_dir, "ca.pem"), "wb") as f:
        f.write(bundle)
    config = TargetConfig(os.path.join(root, "target"), history_window_s=0.0)
    async with Target(config, RocksIndex) as target:
        server, port = await start_server(target, "127.0.0.1:0", tls.load_server_tls(target_dir))
        try:
            for pki in (old_pki, new_pki):
                mine = tls.load_client_tls(os.path.join(pki, "operators", "ops"))
                both = tls.ClientTLS(bundle, mine.cert_pem, mine.key_pem)
                async with ReplicationClient(f"127.0.0.1:{port}", both) as client:
                    assert (await client.status()).groups == []
        finally:
            await server.stop(grace=1.0)


async def test_status_names_the_certificate_identity_of_the_source(secure: Secure) -> None:
    """Issue 13 #13: under mTLS status shows who really writes (the certificate), not only
    the source's self-reported id."""
    async with secure.client("sources", "host-a") as client:
        await client.open_session("claims-to-be-sim-host-1", SPEC_A, 0, 1)
        async with secure.client("operators", "ops") as ops:
            (g,) = (await ops.status("ga")).groups
    assert (g.source_id, g.source_identity) == ("claims-to-be-sim-host-1", "cdp://source/host-a")
    assert g.source_connected


async def test_non_source_refused_before_its_first_message(secure: Secure) -> None:
    """Issue 12, defect 7: under mTLS the peer is known at call start; an operator's
    StreamJournal is refused before the target reads (buffers) any message of it, so a
    slow-drip or huge first message costs nothing. Before: the call waited for a message."""
    async with secure.client("operators", "ops") as client:
        call = client._stub.StreamJournal()
        try:
            with pytest.raises(RemoteError) as err:
                async with client._rpc():
                    await asyncio.wait_for(call.read(), 5)  # nothing written, not even done
            denied(err, "StreamJournal", "not a source")
        finally:
            call.cancel()
