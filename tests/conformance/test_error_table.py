"""Conformance: the rows of docs/PROTOCOL.md 9 (error table) the other modules do not reach:
RESOURCE_EXHAUSTED for a full disk under the journal (a tiny tmpfs, skipped where mounting
is not permitted) and the journal limit (history applied early, never a refusal),
FAILED_PRECONDITION for other VMs or disks on a re-open, and the mTLS rows (a target
serving ``--tls-dir`` from ``cdp certs init``, run as a subprocess): no client certificate
is refused in the TLS handshake, a certificate of the target's CA without a cdp identity is
UNAUTHENTICATED, a source writing a group it is not authorized for and a source calling an
operator's method are PERMISSION_DENIED. Every refusal names what it refused, and changes
nothing durable.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conformance.conftest import ROOT, Client, MiB, TargetProc, Wire, refused

# -- full disk, journal limit --------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs; skipped where mounting is not permitted."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)],
                          capture_output=True, text=True, timeout=10)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; return it."""
    filler = folder / "filler"
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\1" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\1" * 4096)
        except OSError:
            pass
    return filler


def test_full_disk_is_resource_exhausted_and_changes_nothing(
    small_fs: Path, make_client: Callable[..., Client]
) -> None:
    """A write the target cannot store for want of space: RESOURCE_EXHAUSTED, durable_seq
    unchanged; once space returns the same seq is taken (it was never made durable)."""
    t = TargetProc(small_fs / "target")
    t.start()
    try:
        c = make_client(t, group="full", vms=[("full-vm", [4 * MiB])])
        c.open()
        assert c.send([c.write(1, b"a" * 4096)]) == 1
        filler = _fill(small_fs)
        c.open(next_seq=2)
        e = refused(lambda: c.send([c.write(2, os.urandom(MiB))], timeout=30))
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
        filler.unlink()
        assert c.status().durable_seq == 1
        c.open(next_seq=2)
        assert c.send([c.write(2, b"b" * 4096)]) == 2
        _, data = c.read("latest", length=8192)
        assert b"".join(m.data for m in data)[:4096] == b"b" * 4096
    finally:
        t.stop()


def test_journal_limit_applies_history_early_never_refuses(
    make_target: Callable[..., TargetProc], make_client: Callable[..., Client]
) -> None:
    """Past ``--journal-limit`` the oldest history goes into the base (the timeline says
    so); writes are never refused for it (RESOURCE_EXHAUSTED is only a full disk)."""
    t = make_target("--journal-limit", "1MiB", name="limited")
    c = make_client(t, group="lim", vms=[("lim-vm", [8 * MiB])])
    c.open()
    for seq in range(1, 9):
        assert c.send([c.write(seq, os.urandom(512 * 1024), offset=(seq - 1) * 512 * 1024)]) == seq
    deadline = time.monotonic() + 20
    while c.status().applied_seq == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    tl = c.timeline()
    assert c.status().applied_seq > 0, "nothing applied early past the journal limit"
    assert tl.journal_limit_bytes == MiB
    causes = [s.cause for s in tl.spans if not s.restorable]
    assert any("journal size limit" in cause for cause in causes), tl


# -- re-open with other VMs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    ["another vm", "vm missing", "another disk", "disk id"],
)
def test_other_vms_on_reopen_is_failed_precondition(client: Client, change: str) -> None:
    """A re-open must state exactly the same VMs, disk ids and capacities."""
    vm = client.vms[0][0]
    client.open()
    client.send([client.write(1, b"x" * 512)])
    if change == "disk id":
        req_vms = None
    else:
        req_vms = {
            "another vm": [(vm, [4 * MiB]), ("other-vm", [4 * MiB])],
            "vm missing": [("other-vm", [4 * MiB])],
            "another disk": [(vm, [4 * MiB, 4 * MiB])],
        }[change]
    if req_vms is None:
        req = client.wire.OpenSessionRequest(
            protocol_version=1, source_id="src", group_id=client.group, next_seq=2,
            vms=[client.wire.VmSpec(vm_id=vm, disks=[
                client.wire.DiskSpec(disk_id="scsi0:0", capacity_bytes=4 * MiB)])],
        )  # fmt: skip
        e = refused(lambda: client.stub.OpenSession(req, timeout=30))
    else:
        e = refused(lambda: client.open(next_seq=2, vms=req_vms))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "vms" in e.details(), e.details()
    assert client.status().durable_seq == 1 and client.open(next_seq=2).durable_seq == 1


# -- mutual TLS -----------------------------------------------------------------------------


class Pki:
    """``cdp certs init`` output: a CA, the target's folder, one source, one operator."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        subprocess.run(
            [sys.executable, "-m", "cdp", "certs", "init", str(folder),
             "--source", "host-a=ga", "--operator", "ops"],
            check=True, capture_output=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip

    def creds(self, who: str | None) -> grpc.ChannelCredentials:
        """Channel credentials of ``sources/NAME`` or ``operators/NAME`` (None: no cert)."""
        ca = (self.folder / "ca" / "ca.pem").read_bytes()
        if who is None:
            return grpc.ssl_channel_credentials(root_certificates=ca)
        d = self.folder / who
        return grpc.ssl_channel_credentials(
            ca, (d / "key.pem").read_bytes(), (d / "cert.pem").read_bytes()
        )

    def anonymous(self) -> grpc.ChannelCredentials:
        """A client certificate signed by the target's CA with no cdp:// identity."""
        ca_cert = x509.load_pem_x509_certificate((self.folder / "ca" / "ca.pem").read_bytes())
        ca_key: Any = serialization.load_pem_private_key(
            (self.folder / "ca" / "ca.key").read_bytes(), None
        )
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nobody")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(ca_key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return grpc.ssl_channel_credentials(
            (self.folder / "ca" / "ca.pem").read_bytes(),
            pem_key,
            cert.public_bytes(serialization.Encoding.PEM),
        )


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pki, TargetProc]]:
    """A target serving mutual TLS with the certificates of ``cdp certs init``."""
    base = tmp_path_factory.mktemp("mtls")
    pki = Pki(base / "pki")
    t = TargetProc(base / "target", "--tls-dir", str(pki.folder / "target"))
    t.start()
    yield pki, t
    t.stop()


@pytest.fixture
def tls_client(
    wire: Wire, secure: tuple[Pki, TargetProc]
) -> Iterator[Callable[[grpc.ChannelCredentials, str], Client]]:
    """Raw clients of the mTLS target with the given credentials."""
    channels: list[grpc.Channel] = []
    _, t = secure

    def make(creds: grpc.ChannelCredentials, group: str) -> Client:
        ch = grpc.secure_channel(t.address, creds)
        channels.append(ch)
        return Client(wire, t, ch, wire.stub(ch), group=group, vms=[(f"{group}-vm", [4 * MiB])])

    yield make
    for ch in channels:
        ch.close()


def test_source_writes_its_group(secure: tuple[Pki, TargetProc], tls_client: Any) -> None:
    """The control: host-a's certificate opens and writes group ga."""
    pki, _ = secure
    c = tls_client(pki.creds("sources/host-a"), "ga")
    c.open()
    assert c.send([c.write(1, b"a" * 512)]) == 1


def test_no_client_certificate_is_refused_in_the_tls_handshake(
    secure: tuple[Pki, TargetProc], tls_client: Any
) -> None:
    """No certificate: the TLS handshake fails, so no gRPC status of the server reaches the
    client; gRPC reports the transport failure as UNAVAILABLE (PROTOCOL.md 9)."""
    pki, _ = secure
    c = tls_client(pki.creds(None), "ga")
    e = refused(lambda: c.stub.GetStatus(c.wire.GetStatusRequest(), timeout=10))
    assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())


def test_certificate_without_identity_is_unauthenticated(
    secure: tuple[Pki, TargetProc], tls_client: Any
) -> None:
    """A certificate of the target's CA with no cdp://ROLE/NAME identity: UNAUTHENTICATED."""
    pki, _ = secure
    c = tls_client(pki.anonymous(), "ga")
    e = refused(lambda: c.stub.GetStatus(c.wire.GetStatusRequest(), timeout=10))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())
    assert "identity" in e.details()


def test_source_writing_another_group_is_permission_denied(
    secure: tuple[Pki, TargetProc], tls_client: Any
) -> None:
    """host-a may write ga only: OpenSession of gb is PERMISSION_DENIED naming the group,
    and gb does not come into being."""
    pki, _ = secure
    c = tls_client(pki.creds("sources/host-a"), "gb")
    e = refused(c.open)
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED and "gb" in e.details(), e.details()
    ops = tls_client(pki.creds("operators/ops"), "gb")
    assert refused(ops.status).code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("call", ["ListRestorePoints", "GetTimeline", "CreateBookmark"])
def test_source_reading_a_group_it_does_not_write_is_permission_denied(
    secure: tuple[Pki, TargetProc], tls_client: Any, call: str
) -> None:
    """A source reads and bookmarks only the groups it writes (failback's reverse source
    needs its own group's points); any other group's history is an operator's."""
    pki, _ = secure
    c = tls_client(pki.creds("sources/host-a"), "ga")
    req = {
        "ListRestorePoints": c.wire.ListRestorePointsRequest(group_id="gz"),
        "GetTimeline": c.wire.GetTimelineRequest(group_id="gz"),
        "CreateBookmark": c.wire.CreateBookmarkRequest(group_id="gz", name="mine"),
    }[call]
    e = refused(lambda: getattr(c.stub, call)(req, timeout=10))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED and call in e.details(), e.details()


def test_operator_opening_a_session_is_permission_denied(
    secure: tuple[Pki, TargetProc], tls_client: Any
) -> None:
    """An operator reads; it never writes a journal."""
    pki, _ = secure
    c = tls_client(pki.creds("operators/ops"), "ga")
    e = refused(c.open)
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (e.code(), e.details())
