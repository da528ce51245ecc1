"""Certificates for cdp's mutual TLS: a development CA, leaf certificates, TLS folders.

Owns the certificate profile (what a cdp certificate says, and how an identity is
written into it as the SAN URI ``cdp://<role>/<name>``) and the layout of a TLS folder:
``ca.pem``, ``cert.pem``, ``key.pem`` (mode 0600) and, for a target, ``authz.yaml``.
It never imports grpc and never opens a socket: the gRPC edges (``cdp/rpc/``) turn a
:class:`ServerTLS` or :class:`ClientTLS` into credentials. Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cdp.errors import InvalidInputError
from cdp.fsutil import fsync_dir, write_atomic

log = logging.getLogger(__name__)

PUBLIC_MODE = 0o644
"""Mode of certificates: public by nature, readable by every local user (keys are 0600)."""

ROLE_SOURCE = "source"
"""A protected host: may write the journals of the groups the target's authz.yaml lists."""
ROLE_OPERATOR = "operator"
"""A person or tool: may read status, restore points, timelines and images, and bookmark."""
CA_FILE, CERT_FILE, KEY_FILE, AUTHZ_FILE = "ca.pem", "cert.pem", "key.pem", "authz.yaml"
CA_KEY_FILE = "ca.key"
"""Only in the CA's own folder; never copied to a target, source or operator."""
DEFAULT_CA_DAYS = 3650
DEFAULT_LEAF_DAYS = 365
EXPIRY_WARNING_DAYS = 14
"""Loading a certificate that expires sooner than this logs a warning."""
CLOCK_SKEW = datetime.timedelta(minutes=5)
"""Certificates are valid from this long before they were made (hosts' clocks differ)."""

_URI = re.compile(r"cdp://(source|operator)/([A-Za-z0-9_][A-Za-z0-9._-]{0,63})")
_DNS = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_][A-Za-z0-9_-]{0,62}(\.[A-Za-z0-9_-]{1,63})*")
Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True, order=True)
class Identity:
    """Who a client certificate says its holder is: a role and a name."""

    role: str
    name: str

    @property
    def uri(self) -> str:
        """The SAN URI that carries this identity in a certificate."""
        return f"cdp://{self.role}/{self.name}"

    def __str__(self) -> str:
        return f"{self.role} {self.name!r}"


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: Key

    def cert_pem(self) -> bytes:
        """The certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (protected by file mode 0600)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class ClientTLS:
    """What a client needs for mTLS: the CA to trust and its own certificate and key."""

    ca_pem: bytes
    cert_pem: bytes | None
    key_pem: bytes | None
    server_name: str = ""
    """Expected name in the target's certificate when it differs from the address' host."""


@dataclass(frozen=True)
class ServerTLS:
    """What a target needs for mTLS: the CA of its clients, its certificate, its policy."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    authz_path: str
    """The authorization file: which source may write which groups, who is an operator."""


# -- making certificates -------------------------------------------------------------------


def now_utc() -> datetime.datetime:
    """The current time, timezone-aware (certificate validity is in UTC)."""
    return datetime.datetime.now(datetime.UTC)


def new_ca(common_name: str, days: int = DEFAULT_CA_DAYS) -> Issued:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _cn(common_name)
    start = now_utc() - CLOCK_SKEW
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued, common_name: str, *, identity: Identity | None = None,
    hosts: Sequence[str] = (), server: bool = False, days: int = DEFAULT_LEAF_DAYS,
    not_before: datetime.datetime | None = None,
) -> Issued:  # fmt: skip
    """A leaf certificate signed by ``ca``: a server (``hosts`` as SANs) or a client identity."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or now_utc() - CLOCK_SKEW
    sans = [host_san(h) for h in hosts]
    if identity is not None:
        sans.append(x509.UniformResourceIdentifier(identity.uri))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_cn(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _cn(common_name: str) -> x509.Name:
    """A subject with this common name (informational only; X.509 caps it at 64)."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def host_san(host: str) -> x509.GeneralName:
    """An IP address SAN for an address, a DNS SAN for a name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _DNS.fullmatch(host):
        raise InvalidInputError("--host", f"{host!r} is neither an IP address nor a DNS name")
    return x509.DNSName(host.lower())


# -- files -----------------------------------------------------------------------------------


def write_party(folder: str, ca_cert_pem: bytes, issued: Issued) -> list[str]:
    """Write ``ca.pem``, ``cert.pem`` and ``key.pem`` (0600) into ``folder``; their paths."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    paths = [os.path.join(folder, f) for f in (CA_FILE, CERT_FILE, KEY_FILE)]
    write_atomic(paths[0], ca_cert_pem, PUBLIC_MODE)
    write_atomic(paths[1], issued.cert_pem(), PUBLIC_MODE)
    write_private(paths[2], issued.key_pem())
    return paths


def write_ca(folder: str, ca: Issued) -> None:
    """Keep the CA's certificate and key (0600) in its own folder."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    write_atomic(os.path.join(folder, CA_FILE), ca.cert_pem(), PUBLIC_MODE)
    write_private(os.path.join(folder, CA_KEY_FILE), ca.key_pem())


def read_ca(folder: str) -> Issued:
    """The CA kept by :func:`write_ca`."""
    cert = read_cert(os.path.join(folder, CA_FILE), "CA folder")
    key = read_key(os.path.join(folder, CA_KEY_FILE), "CA folder")
    _check_pair(cert, key, os.path.join(folder, CA_KEY_FILE), "CA folder")
    return Issued(cert, key)


def write_private(path: str, data: bytes) -> None:
    """Like :func:`cdp.fsutil.write_atomic`, readable by the owner only from the start."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def load_client_tls(folder: str, flag: str = "--tls-dir") -> ClientTLS:
    """ca.pem, cert.pem and key.pem of a client folder, checked; errors name the file."""
    ca, cert, key = _load_party(folder, flag)
    return ClientTLS(ca, cert, key)


def load_server_tls(folder: str, flag: str = "--tls-dir") -> ServerTLS:
    """A target folder: its certificate files and its authz.yaml, checked."""
    ca, cert, key = _load_party(folder, flag)
    authz = os.path.join(folder, AUTHZ_FILE)
    if not os.path.isfile(authz):
        raise InvalidInputError(
            flag, f"{authz}: no such file", hint="the target's folder from `cdp certs init DIR` "
            "holds authz.yaml: which source may write which groups, who is an operator",
        )  # fmt: skip
    return ServerTLS(ca, cert, key, authz)


def _load_party(folder: str, flag: str) -> tuple[bytes, bytes, bytes]:
    if not os.path.isdir(folder):
        raise InvalidInputError(
            flag, f"{folder}: no such folder",
            hint="make one with `cdp certs init DIR`, or pass --insecure for plain text",
        )  # fmt: skip
    ca_path, cert_path, key_path = (os.path.join(folder, f) for f in (CA_FILE, CERT_FILE, KEY_FILE))
    ca_pem, cert_pem, key_pem = (_read(p, flag) for p in (ca_path, cert_path, key_path))
    cert = _parse_cert(cert_pem, cert_path, flag)
    _check_pair(cert, _parse_key(key_pem, key_path, flag), key_path, flag)
    _check_validity(cert, cert_path, flag)
    try:  # ca.pem may hold several CAs (old and new while a CA is rotated)
        cas = x509.load_pem_x509_certificates(ca_pem)
    except ValueError as exc:
        raise InvalidInputError(flag, f"{ca_path}: not PEM certificates ({exc})") from exc
    for ca in cas:
        _check_validity(ca, ca_path, flag)
    return ca_pem, cert_pem, key_pem


def _read(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise InvalidInputError(
            flag, f"{path}: no such file",
            hint="a TLS folder made by `cdp certs init DIR` holds ca.pem, cert.pem and key.pem",
        ) from None  # fmt: skip
    except OSError as exc:
        raise InvalidInputError(flag, f"{path}: cannot read it ({exc.strerror})") from exc


def read_cert(path: str, flag: str) -> x509.Certificate:
    """The first certificate of a PEM file; the error names the file."""
    return _parse_cert(_read(path, flag), path, flag)


def _parse_cert(data: bytes, path: str, flag: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise InvalidInputError(flag, f"{path}: not a PEM certificate ({exc})") from exc


def read_key(path: str, flag: str) -> Key:
    """An unencrypted EC private key from a PEM file; the error names the file."""
    return _parse_key(_read(path, flag), path, flag)


def _parse_key(data: bytes, path: str, flag: str) -> Key:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            flag, f"{path}: not an unencrypted PEM private key ({exc})"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInputError(flag, f"{path}: not an EC private key (cdp uses ECDSA P-256)")
    return key


def _check_pair(cert: x509.Certificate, key: Key, key_path: str, flag: str) -> None:
    if cert.public_key() != key.public_key():
        raise InvalidInputError(flag, f"{key_path}: the key does not belong to the certificate")


def _check_validity(cert: x509.Certificate, path: str, flag: str) -> None:
    now = now_utc()
    if now < cert.not_valid_before_utc:
        raise InvalidInputError(flag, f"{path}: not valid before {cert.not_valid_before_utc}")
    if now > cert.not_valid_after_utc:
        raise InvalidInputError(
            flag, f"{path}: expired on {cert.not_valid_after_utc}",
            hint="issue new certificates with `cdp certs init DIR` (it reuses DIR's CA)",
        )  # fmt: skip
    if cert.not_valid_after_utc - now < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        log.warning("%s expires on %s; renew it soon", path, cert.not_valid_after_utc)


# -- identities ------------------------------------------------------------------------------


def identity_of(cert_pem: bytes) -> Identity | None:
    """The cdp identity of a client certificate, or None if it carries none."""
    return _identity_of(bytes(cert_pem))


@functools.lru_cache(maxsize=256)
def _identity_of(cert_pem: bytes) -> Identity | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        return None
    found = {m.groups() for u in sans.get_values_for_type(x509.UniformResourceIdentifier)
             if (m := _URI.fullmatch(u))}  # fmt: skip
    if len(found) != 1:
        return None  # none, or an ambiguous certificate naming two identities
    role, name = found.pop()
    return Identity(role, name)
