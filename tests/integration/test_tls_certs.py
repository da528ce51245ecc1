"""``cdp certs init`` and the TLS files it writes: names, identities, usages, modes; and
clear errors for missing or corrupt PEM files and bad authz.yaml files."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
import sys
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cdp import authz, tls
from cdp.errors import ConfigError, InvalidInputError


def cdp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdp", *args], capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def init(folder: str, *args: str) -> dict[str, Any]:
    proc = cdp("certs", "init", folder, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(data, dict)
    return data


def cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def sans(c: x509.Certificate) -> x509.SubjectAlternativeName:
    return c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def usages(c: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = str(tmp_path_factory.mktemp("pki"))
    hosts = ["--host", "dr-site.example", "--host", "10.1.2.3"]
    init(folder, *hosts, "--source", "host-a=group1,group2", "--source", "host-b=group3",
         "--operator", "ops")  # fmt: skip
    return folder


def test_layout_and_file_modes(pki: str) -> None:
    expected = {
        "ca": {"ca.pem", "ca.key"},
        "target": {"ca.pem", "cert.pem", "key.pem", "authz.yaml"},
        "sources/host-a": {"ca.pem", "cert.pem", "key.pem"},
        "sources/host-b": {"ca.pem", "cert.pem", "key.pem"},
        "operators/ops": {"ca.pem", "cert.pem", "key.pem"},
    }
    for folder, files in expected.items():
        assert set(os.listdir(os.path.join(pki, folder))) == files, folder
        for f in files:
            mode = stat.S_IMODE(os.stat(os.path.join(pki, folder, f)).st_mode)
            assert mode == (0o600 if f.endswith(".key") or f == "key.pem" else 0o644), (f, mode)
    assert not os.path.exists(os.path.join(pki, "operators", "admin"))  # only when none named


def test_target_certificate_names_loopback_and_every_host(pki: str) -> None:
    c = cert(os.path.join(pki, "target", "cert.pem"))
    names = sans(c)
    assert set(names.get_values_for_type(x509.DNSName)) == {"localhost", "dr-site.example"}
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.1.2.3"),
    }
    assert usages(c) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == []


@pytest.mark.parametrize(
    ("folder", "uri"),
    [
        ("sources/host-a", "cdp://source/host-a"),
        ("sources/host-b", "cdp://source/host-b"),
        ("operators/ops", "cdp://operator/ops"),
    ],
)
def test_client_certificates_carry_their_identity(pki: str, folder: str, uri: str) -> None:
    path = os.path.join(pki, folder, "cert.pem")
    c = cert(path)
    assert sans(c).get_values_for_type(x509.UniformResourceIdentifier) == [uri]
    assert sans(c).get_values_for_type(x509.DNSName) == []  # cannot pose as a target
    assert usages(c) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    c.verify_directly_issued_by(cert(os.path.join(pki, "ca", "ca.pem")))
    with open(path, "rb") as f:
        who = tls.identity_of(f.read())
    assert who is not None and who.uri == uri


def test_every_party_trusts_the_same_ca(pki: str) -> None:
    with open(os.path.join(pki, "ca", "ca.pem"), "rb") as f:
        ca = f.read()
    for folder in ("target", "sources/host-a", "operators/ops"):
        with open(os.path.join(pki, folder, "ca.pem"), "rb") as f:
            assert f.read() == ca
    ca_cert = x509.load_pem_x509_certificate(ca)
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_authz_binds_sources_to_their_groups(pki: str) -> None:
    policy = authz.load_policy(os.path.join(pki, "target", "authz.yaml"))
    assert policy.sources == {
        "host-a": frozenset({"group1", "group2"}),
        "host-b": frozenset({"group3"}),
    }
    assert policy.operators == frozenset({"ops"})


def test_folders_load_as_client_and_server_tls(pki: str) -> None:
    server = tls.load_server_tls(os.path.join(pki, "target"))
    assert server.authz_path.endswith("authz.yaml") and b"PRIVATE KEY" in server.key_pem
    client = tls.load_client_tls(os.path.join(pki, "sources", "host-a"))
    assert client.cert_pem and client.key_pem and client.ca_pem == server.ca_pem


def test_again_reuses_the_ca_and_keeps_authz(tmp_path: str) -> None:
    folder = str(tmp_path)
    first = init(folder, "--source", "host-a=g1")
    assert first["ca"]["reused"] is False and [o["name"] for o in first["operators"]] == ["admin"]
    with open(os.path.join(folder, "ca", "ca.pem"), "rb") as f:
        ca = f.read()
    again = init(folder, "--source", "host-b=g2", "--operator", "ops")
    assert again["ca"]["reused"] is True
    with open(os.path.join(folder, "sources", "host-b", "ca.pem"), "rb") as f:
        assert f.read() == ca
    policy = authz.load_policy(os.path.join(folder, "target", "authz.yaml"))
    assert policy.sources == {"host-a": frozenset({"g1"}), "host-b": frozenset({"g2"})}
    assert policy.operators == frozenset({"admin", "ops"})
    fresh = init(folder, "--new-ca", "--source", "host-c=g3")
    assert fresh["ca"]["reused"] is False
    with open(os.path.join(folder, "ca", "ca.pem"), "rb") as f:
        assert f.read() != ca
    policy = authz.load_policy(os.path.join(folder, "target", "authz.yaml"))
    assert policy.sources == {"host-c": frozenset({"g3"})}  # a new CA starts a new policy


def test_text_output_says_how_to_use_each_folder(tmp_path: str) -> None:
    proc = cdp("certs", "init", str(tmp_path), "--source", "host-a=g1")
    assert proc.returncode == 0, proc.stderr
    assert "--tls-dir" in proc.stdout and "keep ca.key offline" in proc.stdout
    assert "groups: g1" in proc.stdout


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--source", "host-a"], "--source"),
        (["--source", "host-a="], "--source"),
        (["--source", "bad name=g1"], "--source"),
        (["--source", "host-a=g1,../etc"], "--source"),
        (["--source", "h=g1", "--source", "h=g2"], "--source"),
        (["--operator=.x"], "--operator"),
        (["--host", "not a host!"], "--host"),
        (["--days", "0"], "--days"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path: str, args: list[str], flag: str) -> None:
    folder = os.path.join(str(tmp_path), "pki")
    proc = cdp("certs", "init", folder, *args)
    assert proc.returncode == 2, proc.stderr
    assert flag in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(folder)


def test_help_lists_the_options() -> None:
    proc = cdp("certs", "init", "--help")
    assert proc.returncode == 0
    for word in ("--source", "--operator", "--host", "--days", "--new-ca", "--json"):
        assert word in proc.stdout


# -- missing and corrupt files -----------------------------------------------------------


@pytest.fixture
def party(tmp_path: str) -> str:
    folder = str(tmp_path)
    init(folder, "--source", "host-a=g1")
    return folder


def test_missing_folder_names_the_flag_and_folder(tmp_path: str) -> None:
    missing = os.path.join(str(tmp_path), "nope")
    with pytest.raises(InvalidInputError) as err:
        tls.load_client_tls(missing)
    assert err.value.field == "--tls-dir" and missing in str(err.value)
    assert "cdp certs init" in str(err.value)


@pytest.mark.parametrize("name", ["ca.pem", "cert.pem", "key.pem"])
def test_missing_file_is_named(party: str, name: str) -> None:
    folder = os.path.join(party, "sources", "host-a")
    os.unlink(os.path.join(folder, name))
    with pytest.raises(InvalidInputError) as err:
        tls.load_client_tls(folder)
    assert os.path.join(folder, name) in str(err.value) and "no such file" in str(err.value)


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("cert.pem", b"garbage\n", "not a PEM certificate"),
        ("ca.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PEM"),
        ("key.pem", b"garbage\n", "not an unencrypted PEM private key"),
        ("cert.pem", b"", "not a PEM certificate"),
    ],
)
def test_corrupt_file_is_named(party: str, name: str, data: bytes, words: str) -> None:
    folder = os.path.join(party, "sources", "host-a")
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(InvalidInputError) as err:
        tls.load_client_tls(folder)
    assert path in str(err.value) and words in str(err.value)


def test_key_of_another_certificate_is_named(party: str) -> None:
    folder = os.path.join(party, "sources", "host-a")
    with open(os.path.join(party, "target", "key.pem"), "rb") as f:
        other_key = f.read()
    with open(os.path.join(folder, "key.pem"), "wb") as f:
        f.write(other_key)
    with pytest.raises(InvalidInputError) as err:
        tls.load_client_tls(folder)
    assert "key.pem: the key does not belong to the certificate" in str(err.value)


def test_expired_own_certificate_is_named(party: str) -> None:
    import datetime

    folder = os.path.join(party, "sources", "host-a")
    ca = tls.read_ca(os.path.join(party, "ca"))
    past = tls.now_utc() - datetime.timedelta(days=30)
    old = tls.issue(ca, "a", identity=tls.Identity("source", "host-a"), days=1, not_before=past)
    tls.write_party(folder, ca.cert_pem(), old)
    with pytest.raises(InvalidInputError) as err:
        tls.load_client_tls(folder)
    assert "cert.pem: expired on" in str(err.value)


def test_target_folder_without_authz_is_named(party: str) -> None:
    folder = os.path.join(party, "target")
    os.unlink(os.path.join(folder, "authz.yaml"))
    with pytest.raises(InvalidInputError) as err:
        tls.load_server_tls(folder)
    assert "authz.yaml: no such file" in str(err.value)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[a, b]\n", "must be a mapping"),
        ("sources: {}\nadmins: [x]\n", "admins"),
        ("sources: [host-a]\n", "sources"),
        ("sources:\n  host-a: group1\n", "sources.host-a"),
        ("sources:\n  host-a: [../x]\n", "sources.host-a"),
        ("sources:\n  'bad name': [g]\n", "sources"),
        ("operators: admin\n", "operators"),
        ("sources: {a: [b]\n", "not valid YAML"),
        ("sources:\n  host-a: {groups: [g], members: esx-01}\n", "sources.host-a.members: must"),
        ("sources:\n  host-a: {groups: [g], members: [../x]}\n", "sources.host-a.members: '../x'"),
        ("sources:\n  host-a: {members: [esx-01]}\n", "sources.host-a.groups: missing"),
        ("sources:\n  host-a: {groups: [g], member: [x]}\n", "sources.host-a.member: unknown"),
        ("sources:\n  host-a: {groups: g}\n", "sources.host-a.groups: must be a list"),
        # two sources of one group may not stream as the same member (told apart)
        (
            "sources:\n  host-a: [g]\n  host-b: {groups: [g], members: [host-a]}\n",
            "sources.host-b.members: member id 'host-a' of group 'g' is also used by",
        ),
        (
            "sources:\n  a: {groups: [g], members: [b]}\n  b: [g]\n",
            "sources.a.members: member id 'b' of group 'g' is also used by source 'b'",
        ),
        (
            "sources:\n  a: {groups: [g], members: [m]}\n  b: {groups: [g, h], members: [m]}\n",
            "sources.b.members: member id 'm' of group 'g' is also used by source 'a'",
        ),
    ],
)
def test_bad_authz_file_names_the_key(tmp_path: str, text: str, where: str) -> None:
    path = os.path.join(str(tmp_path), "authz.yaml")
    with open(path, "w") as f:
        f.write(text)
    with pytest.raises(ConfigError) as err:
        authz.load_policy(path)
    assert path in str(err.value) and where in str(err.value), str(err.value)


def test_authz_members_are_the_source_name_unless_listed(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "authz.yaml")
    with open(path, "w") as f:
        f.write("sources:\n  esx-01: [cg]\n  esx-02: {groups: [cg], members: [esx-02, old]}\n"
                "  esx-03: {groups: [solo], members: []}\n  esx-04: {groups: [cg]}\n")  # fmt: skip
    policy = authz.load_policy(path)
    assert policy.sources["esx-02"] == frozenset({"cg"})
    assert policy.member_ids("esx-01") == frozenset({"esx-01"})  # the old form: its name
    assert policy.member_ids("esx-02") == frozenset({"esx-02", "old"})
    assert policy.member_ids("esx-03") == frozenset()
    assert policy.member_ids("esx-04") == frozenset({"esx-04"})  # no members key: its name
    who = tls.Identity(tls.ROLE_SOURCE, "esx-02")
    assert authz.check_member(policy, who, "OpenSession", "cg", "old") is None
    assert authz.check_member(policy, who, "OpenSession", "cg", "") is None  # streams alone
    refusal = authz.check_member(policy, who, "OpenSession", "cg", "esx-01")
    assert refusal is not None and refusal.code == authz.PERMISSION_DENIED


def test_again_keeps_the_members_listed_in_authz(tmp_path: str) -> None:
    folder = str(tmp_path)
    init(folder, "--source", "host-a=g1")
    path = os.path.join(folder, "target", "authz.yaml")
    with open(path, "w") as f:
        f.write("sources:\n  host-a: {groups: [g1], members: [esx-old]}\noperators: [admin]\n")
    init(folder, "--source", "host-a=g1,g2", "--source", "host-b=g2")
    policy = authz.load_policy(path)
    assert policy.sources["host-a"] == frozenset({"g1", "g2"})
    assert policy.members == {"host-a": frozenset({"esx-old"})}
    proc = cdp("certs", "init", folder, "--source", "esx-old=g1")  # would share member esx-old
    assert proc.returncode != 0 and "sources.host-a.members" in proc.stderr, proc.stderr
    assert authz.load_policy(path).members == {"host-a": frozenset({"esx-old"})}  # unchanged


def test_empty_authz_file_allows_nobody(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "authz.yaml")
    open(path, "w").close()
    policy = authz.load_policy(path)
    who = tls.Identity(tls.ROLE_SOURCE, "host-a")
    refusal = authz.check_write(policy, who, "OpenSession", "g1")
    assert refusal is not None and refusal.code == authz.PERMISSION_DENIED


# -- identities ------------------------------------------------------------------------


def test_identity_needs_exactly_one_cdp_uri_and_client_usage() -> None:
    ca = tls.new_ca("t")
    server = tls.issue(ca, "s", identity=tls.Identity("source", "a"), server=True)
    assert tls.identity_of(server.cert_pem()) is None  # a server certificate is no client
    assert tls.identity_of(tls.issue(ca, "n").cert_pem()) is None
    assert tls.identity_of(b"not a certificate") is None
    one = tls.issue(ca, "o", identity=tls.Identity("operator", "ops"))
    assert tls.identity_of(one.cert_pem()) == tls.Identity("operator", "ops")


def test_adding_a_source_adds_only_that_source(tmp_path: str) -> None:
    """Issue 13 #11: re-running ``certs init`` to add a source minted an ``admin``
    operator and put it into the authz.yaml a running target reloads."""
    folder = str(tmp_path)
    init(folder, "--source", "host-a=g1", "--operator", "ops")
    again = init(folder, "--source", "host-b=g2")
    assert again["operators"] == []
    assert not os.path.exists(os.path.join(folder, "operators", "admin"))
    policy = authz.load_policy(os.path.join(folder, "target", "authz.yaml"))
    assert policy.operators == frozenset({"ops"})
    assert set(policy.sources) == {"host-a", "host-b"}
