"""How a plan reaches a vCenter: its URL, TLS trust and where the credentials come from.

Each ``vcenter`` section of a plan (the recovery site's, ``protected_site.vcenter``)
parses into a :class:`VCenterSettings` here, and :func:`resolve_credentials` reads the
user and password from the environment or the 0600 file the plan names, when a command
needs them. Credentials never live in the plan: a plan that holds them is refused, naming
the key. This module owns the vCenter defaults (``DEFAULT_*``); it never talks to vCenter
(``vsphere/`` does) and reads no file but a credentials file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import yaml

from cdp.errors import ConfigError
from cdp.failover.yamlkeys import Section

DEFAULT_USER_ENV = "CDP_VCENTER_USER"
DEFAULT_PASSWORD_ENV = "CDP_VCENTER_PASSWORD"
DEFAULT_VCENTER_TIMEOUT_S = 30.0
_THUMBPRINT = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TlsSettings:
    """How the vCenter certificate is trusted: CA (default), a pinned thumbprint, or not."""

    verify: bool = True
    """False only by explicit opt-out (``tls: {verify: false}``); a lab setting."""
    ca_file: str = ""
    """PEM bundle of CAs to trust instead of the system store; empty: system store."""
    thumbprint: str = ""
    """SHA-256 of the server certificate (64 hex digits); trusted even without a CA."""


@dataclass(frozen=True)
class CredentialSource:
    """Where the vCenter user and password come from (never the plan itself)."""

    user_env: str = DEFAULT_USER_ENV
    password_env: str = DEFAULT_PASSWORD_ENV
    file: str = ""
    """YAML file with ``user:`` and ``password:``, mode 0600; used instead of env if set."""


@dataclass(frozen=True)
class Credentials:
    """A resolved user and password, with where they came from (for error hints)."""

    user: str
    password: str = field(repr=False)
    source: str = ""


@dataclass(frozen=True)
class VCenterSettings:
    """How to reach one vCenter."""

    url: str
    host: str
    port: int
    path: str
    credentials: CredentialSource
    tls: TlsSettings
    timeout_s: float = DEFAULT_VCENTER_TIMEOUT_S
    """Socket timeout of each vCenter call, seconds."""


# ---------------------------------------------------------------- parsing


def parse_vcenter(m: Section, base: str) -> VCenterSettings:
    """Validate a ``vcenter`` section (``base``: the plan's folder, for relative paths)."""
    if "password" in m.data or "user" in m.data or "username" in m.data:
        raise ConfigError(
            m.key("password" if "password" in m.data else "user"),
            "credentials never go in the plan",
            hint="name environment variables (credentials.user_env/password_env) "
            "or a 0600 file (credentials.file)",
        )
    m.allow("url", "credentials", "tls", "timeout_s")
    url = m.string("url", required=True)
    host, port, sdk_path = _parse_url(m.key("url"), url)
    return VCenterSettings(
        url=url,
        host=host,
        port=port,
        path=sdk_path,
        credentials=_credentials(m.section("credentials"), base),
        tls=_tls(m.section("tls"), base),
        timeout_s=m.number("timeout_s", default=DEFAULT_VCENTER_TIMEOUT_S, low=0.1),
    )


def plan_path(base: str, value: str) -> str:
    """A path as the plan gives it (``~`` expanded), relative to the plan's folder ``base``."""
    return os.path.normpath(os.path.join(base, os.path.expanduser(value)))


def _parse_url(key: str, url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ConfigError(key, f"{url!r} must be an https:// URL")
    if parts.username or parts.password:
        raise ConfigError(key, "must not contain credentials", hint="use vcenter.credentials")
    try:
        port = parts.port or 443
    except ValueError as exc:
        raise ConfigError(key, f"{url!r} has a bad port") from exc
    if not parts.hostname:
        raise ConfigError(key, f"{url!r} has no host name")
    return parts.hostname, port, parts.path or "/sdk"


def _credentials(m: Section, base: str) -> CredentialSource:
    if "password" in m.data or "user" in m.data:
        raise ConfigError(
            m.key("password" if "password" in m.data else "user"),
            "credentials never go in the plan",
            hint="use user_env/password_env or file",
        )
    m.allow("user_env", "password_env", "file")
    file = m.string("file", default="")
    if file and ("user_env" in m.data or "password_env" in m.data):
        raise ConfigError(m.key("file"), "give either file or user_env/password_env, not both")
    return CredentialSource(
        user_env=m.string("user_env", default=DEFAULT_USER_ENV),
        password_env=m.string("password_env", default=DEFAULT_PASSWORD_ENV),
        file=plan_path(base, file) if file else "",
    )


def _tls(m: Section, base: str) -> TlsSettings:
    m.allow("verify", "ca_file", "thumbprint")
    verify = m.boolean("verify", default=True)
    ca_file = m.string("ca_file", default="")
    thumbprint = m.string("thumbprint", default="").replace(":", "").lower()
    if thumbprint and not _THUMBPRINT.fullmatch(thumbprint):
        raise ConfigError(m.key("thumbprint"), "must be the SHA-256 of the certificate (64 hex)")
    if not verify and (ca_file or thumbprint):
        raise ConfigError(m.key("verify"), "false contradicts ca_file/thumbprint; drop one")
    if ca_file and not os.path.isfile(plan_path(base, ca_file)):
        raise ConfigError(m.key("ca_file"), f"{ca_file!r} is not a file")
    return TlsSettings(verify, plan_path(base, ca_file) if ca_file else "", thumbprint)


# ---------------------------------------------------------------- credentials


def resolve_credentials(source: CredentialSource, environ: Mapping[str, str]) -> Credentials:
    """Read the user and password from the file or the environment the plan names."""
    if source.file:
        return _credentials_file(source.file)
    user, password = environ.get(source.user_env, ""), environ.get(source.password_env, "")
    missing = [n for n, v in ((source.user_env, user), (source.password_env, password)) if not v]
    if missing:
        raise ConfigError(
            "vcenter.credentials",
            f"environment variable {' and '.join(missing)} not set",
            hint="export them, or point credentials.file at a 0600 YAML file",
        )
    return Credentials(user, password, f"env {source.user_env}/{source.password_env}")


def _credentials_file(path: str) -> Credentials:
    key = "vcenter.credentials.file"
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path!r}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(key, f"{path!r} is not valid YAML: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            key, f"{path!r} is readable by others (mode {mode & 0o777:o})", hint=f"chmod 600 {path}"
        )
    m = Section(data, key)
    m.allow("user", "password")
    user, password = m.string("user", required=True), m.string("password", required=True)
    return Credentials(user, password, f"file {path}")
