"""``cdp certs init``: a development CA and the certificates of a target, sources, operators.

Layout of DIR (each party gets one folder to copy to its host; the CA key stays here)::

    ca/ca.pem, ca/ca.key                  the CA (the key signs certificates: keep it offline)
    target/ca.pem cert.pem key.pem authz.yaml
    sources/<name>/ca.pem cert.pem key.pem
    operators/<name>/ca.pem cert.pem key.pem

An existing CA in DIR is reused (new certificates for the same trust), unless --new-ca;
then the sources and operators already in authz.yaml stay, and those named are added (a
source named again gets the groups named now and keeps the member ids its entry lists).
Revoking is an edit of authz.yaml.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

import yaml

from cdp import authz, tls
from cdp.cli import common
from cdp.errors import InvalidInputError
from cdp.fsutil import write_atomic
from cdp.group import check_name

TARGET_HOSTS = ("127.0.0.1", "localhost")
"""Names every target certificate carries, so loopback works out of the box."""
DEFAULT_OPERATOR = "admin"
"""The operator made when a new CA is made and no ``--operator`` is named; never added later."""


@dataclass(frozen=True)
class CertsPlan:
    """What ``certs init`` makes."""

    folder: str
    hosts: tuple[str, ...] = TARGET_HOSTS
    sources: dict[str, list[str]] = field(default_factory=dict)
    """Source name -> the groups it may write."""
    operators: tuple[str, ...] = ()
    """Operators named; with a new CA and none named, :data:`DEFAULT_OPERATOR`."""
    days: int = tls.DEFAULT_LEAF_DAYS
    new_ca: bool = False


def add_parser(sub: Any) -> None:
    """Register ``certs init``."""
    p = sub.add_parser("certs", help="certificates for mutual TLS between target and clients")
    csub = p.add_subparsers(dest="certs_command", required=True, metavar="SUBCOMMAND")
    i = csub.add_parser(
        "init", help="make a development CA and certificates for a target, sources, operators"
    )
    i.add_argument("dir", metavar="DIR", help="folder to write into (created if missing)")
    i.add_argument(
        "--host", action="append", default=[], metavar="NAME",
        help="a DNS name or IP address clients use to reach the target (repeat); "
        "127.0.0.1 and localhost are always included",
    )  # fmt: skip
    i.add_argument(
        "--source", action="append", default=[], metavar="NAME=GROUP[,GROUP...]",
        help="a protected host's certificate and the groups it may write (repeat)",
    )  # fmt: skip
    i.add_argument(
        "--operator", action="append", default=[], metavar="NAME",
        help=f"an operator's certificate: reads every group, bookmarks (repeat; with a "
        f"new CA and none named: {DEFAULT_OPERATOR}; adding to an existing DIR adds only "
        "what is named)",
    )  # fmt: skip
    i.add_argument(
        "--days", type=int, default=tls.DEFAULT_LEAF_DAYS,
        help=f"validity of the new certificates (default {tls.DEFAULT_LEAF_DAYS})",
    )  # fmt: skip
    i.add_argument("--new-ca", action="store_true", help="replace an existing CA in DIR")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Make the certificates and say where they are."""
    plan = CertsPlan(
        os.path.abspath(args.dir),
        tuple(dict.fromkeys([*TARGET_HOSTS, *args.host])),
        parse_sources(args.source),
        tuple(dict.fromkeys(check_name("--operator", o) for o in args.operator)),
        args.days,
        args.new_ca,
    )
    result = init_certs(plan)
    if args.json:
        common.emit_json(result)
    else:
        print(render(result))
    return common.EXIT_OK


def parse_sources(specs: list[str]) -> dict[str, list[str]]:
    """``NAME=GROUP[,GROUP...]`` options as name -> groups."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, groups = spec.partition("=")
        if not sep or not groups.strip():
            raise InvalidInputError("--source", f"{spec!r} is not NAME=GROUP[,GROUP...]")
        if name in out:
            raise InvalidInputError("--source", f"source {name!r} is given twice")
        check_name("--source", name)
        out[name] = [check_name("--source", g.strip()) for g in groups.split(",")]
    return out


def init_certs(plan: CertsPlan) -> dict[str, Any]:
    """Write the CA (or reuse it), the target's folder with authz.yaml, sources, operators."""
    if not 1 <= plan.days <= 3650:
        raise InvalidInputError("--days", "must be 1..3650")
    for host in plan.hosts:
        tls.host_san(host)  # check every name before anything is written
    ca_dir = os.path.join(plan.folder, "ca")
    target_dir = os.path.join(plan.folder, "target")
    authz_path = os.path.join(target_dir, tls.AUTHZ_FILE)
    reused = os.path.exists(os.path.join(ca_dir, tls.CA_KEY_FILE)) and not plan.new_ca
    ca = _existing_ca(ca_dir) if reused else tls.new_ca(f"cdp dev CA {secrets.token_hex(4)}")
    old = authz.load_policy(authz_path) if reused and os.path.isfile(authz_path) else None
    if not plan.operators and not reused:
        plan = dataclasses.replace(plan, operators=(DEFAULT_OPERATOR,))
    policy_text = _policy_text(plan, old)
    authz.parse_policy(authz_path, yaml.safe_load(policy_text))  # the target must accept it
    if not reused:
        tls.write_ca(ca_dir, ca)
    server = tls.issue(ca, "cdp target", hosts=plan.hosts, server=True, days=plan.days)
    tls.write_party(target_dir, ca.cert_pem(), server)
    write_atomic(authz_path, policy_text.encode(), tls.PUBLIC_MODE)
    made: dict[str, list[dict[str, Any]]] = {"sources": [], "operators": []}
    for name, groups in plan.sources.items():
        made["sources"].append(_client(plan, ca, tls.Identity(tls.ROLE_SOURCE, name), groups))
    for name in plan.operators:
        made["operators"].append(_client(plan, ca, tls.Identity(tls.ROLE_OPERATOR, name)))
    return {
        "folder": plan.folder,
        "ca": {"folder": ca_dir, "reused": reused},
        "target": {"folder": target_dir, "hosts": list(plan.hosts), "authz": authz_path},
        **made,
        "days": plan.days,
    }


def _policy_text(plan: CertsPlan, old: authz.Policy | None) -> str:
    """authz.yaml: who ``old`` authorised, plus ``plan``'s parties (named again: as now)."""
    sources, operators = dict(plan.sources), set(plan.operators)
    members: dict[str, list[str]] = {}
    if old is not None:
        sources = {**{n: sorted(g) for n, g in old.sources.items()}, **sources}
        operators |= old.operators
        members = {n: sorted(m) for n, m in old.members.items()}
    return authz.format_policy(sources, sorted(operators), members)


def _client(
    plan: CertsPlan, ca: tls.Issued, who: tls.Identity, groups: list[str] | None = None
) -> dict[str, Any]:
    """Issue and write one source's or operator's folder; describe it."""
    kind = "sources" if who.role == tls.ROLE_SOURCE else "operators"
    folder = os.path.join(plan.folder, kind, who.name)
    cert = tls.issue(ca, f"cdp {who.role} {who.name}", identity=who, days=plan.days)
    tls.write_party(folder, ca.cert_pem(), cert)
    entry: dict[str, Any] = {"name": who.name, "identity": who.uri, "folder": folder}
    if groups is not None:
        entry["groups"] = groups
    return entry


def _existing_ca(ca_dir: str) -> tls.Issued:
    ca = tls.read_ca(ca_dir)
    if ca.cert.not_valid_after_utc < tls.now_utc():
        raise InvalidInputError(
            "DIR", f"the CA in {ca_dir} expired on {ca.cert.not_valid_after_utc}",
            hint="pass --new-ca to replace it (every party then needs the new ca.pem)",
        )  # fmt: skip
    return ca


def render(r: dict[str, Any]) -> str:
    """What was made, and how each party uses it."""
    ca = r["ca"]
    t = r["target"]
    lines = [
        f"CA        {ca['folder']} ({'reused' if ca['reused'] else 'new'}; keep ca.key offline)",
        f"target    {t['folder']}  names: {', '.join(t['hosts'])}",
        f"          {t['authz']} says which source may write which groups",
    ]
    lines += [f"source    {s['folder']}  groups: {', '.join(s['groups'])}" for s in r["sources"]]
    lines += [f"operator  {o['folder']}" for o in r["operators"]]
    src = r["sources"][0]["folder"] if r["sources"] else os.path.join(r["folder"], "sources/NAME")
    op = (
        r["operators"][0]["folder"]
        if r["operators"]
        else os.path.join(r["folder"], "operators/NAME")
    )
    lines += [
        "",
        "Copy each folder to its host, then:",
        f"  cdp target serve --data-dir DATA --listen HOST:PORT --tls-dir {t['folder']}",
        f"  cdp sim run --target HOST:PORT --group GROUP --tls-dir {src}",
        f"  cdp status --target HOST:PORT --tls-dir {op}",
    ]
    return "\n".join(lines)
