"""Recovery plan files: every bad key or value is a ConfigError naming the key path.

Pure parsing (no simulator); the example plan of docs/FAILOVER.md must load.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdp.errors import ConfigError
from cdp.failover.plan import (
    CredentialSource,
    load_plan,
    parse_plan,
    resolve_credentials,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "FAILOVER.md"


def base() -> dict[str, Any]:
    return {
        "version": 1,
        "name": "payments",
        "target": {"address": "127.0.0.1:50051", "insecure": True},
        "vcenter": {"url": "https://vc.example.com/sdk"},
        "recovery": {
            "datacenter": "DC0",
            "cluster": "DC0_C0",
            "datastore": {"name": "cdp-replica", "path": "/srv/cdp/replicas"},
        },
        "network_mappings": [{"source": "VM Network", "live": "DR-Prod", "test": "DR-Test"}],
        "groups": [
            {
                "name": "g1",
                "vms": [
                    {"name": "db01", "nics": [{"network": "VM Network"}]},
                    {"name": "app01", "cpus": 2, "memory_mb": 2048},
                ],
            }
        ],
        "boot_order": [{"name": "db", "vms": ["db01"]}, {"name": "app", "vms": ["app01"]}],
    }


def test_minimal_plan_defaults(tmp_path: Path) -> None:
    plan = parse_plan(base(), str(tmp_path / "p.yaml"))
    assert plan.vcenter.tls.verify is True  # TLS verification is on unless opted out
    assert (plan.vcenter.host, plan.vcenter.port, plan.vcenter.path) == (
        "vc.example.com",
        443,
        "/sdk",
    )
    assert plan.vcenter.credentials == CredentialSource()  # env CDP_VCENTER_USER/PASSWORD
    assert plan.state_dir == str(tmp_path / ".cdp-failover")
    assert plan.commit.timeout_s == 3600 and plan.commit.default_action == "commit"
    assert [b.name for b in plan.boot_order] == ["db", "app"]
    assert plan.groups[0].vms[1].cpus == 2 and plan.groups[0].vms[0].memory_mb == 1024
    assert plan.groups[0].vms[0].nics[0].adapter == "vmxnet3"
    assert plan.protected_site is None


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    """Set d[a][b][0][c] = value for path 'a.b[0].c'; value DELETE removes the key."""
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    for k in keys[:-1]:
        d = d[k]
    if value is DELETE:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


DELETE = object()

BAD = [
    ("typo", "vcenterr", {"url": "https://x"}, "vcenterr"),
    ("version", "version", 2, "version"),
    ("no groups", "groups", DELETE, "groups"),
    ("empty groups", "groups", [], "groups"),
    ("password in plan", "vcenter.password", "secret", "vcenter.password"),
    ("user in credentials", "vcenter.credentials", {"user": "x"}, "vcenter.credentials.user"),
    ("http url", "vcenter.url", "http://vc/sdk", "vcenter.url"),
    ("url with creds", "vcenter.url", "https://u:p@vc/sdk", "vcenter.url"),
    ("verify not bool", "vcenter.tls", {"verify": "no"}, "vcenter.tls.verify"),
    (
        "verify off + pin",
        "vcenter.tls",
        {"verify": False, "thumbprint": "ab" * 32},
        "vcenter.tls.verify",
    ),
    ("bad thumbprint", "vcenter.tls", {"thumbprint": "abc"}, "vcenter.tls.thumbprint"),
    ("missing ca file", "vcenter.tls", {"ca_file": "/nonexistent.pem"}, "vcenter.tls.ca_file"),
    ("target address", "target.address", "localhost", "target.address"),
    ("no cluster or hosts", "recovery.cluster", DELETE, "recovery.cluster"),
    ("no datastore path", "recovery.datastore.path", DELETE, "recovery.datastore.path"),
    ("parallel 0", "recovery.parallel", 0, "recovery.parallel"),
    (
        "negative reserve",
        "recovery.datastore.reserve_bytes",
        -1,
        "recovery.datastore.reserve_bytes",
    ),
    ("cpus as text", "groups[0].vms[1].cpus", "two", "groups[0].vms[1].cpus"),
    ("cpus as bool", "groups[0].vms[1].cpus", True, "groups[0].vms[1].cpus"),
    ("memory too small", "groups[0].vms[1].memory_mb", 1, "groups[0].vms[1].memory_mb"),
    ("bad vm name", "groups[0].vms[0].name", "../etc", "groups[0].vms[0].name"),
    (
        "unmapped network",
        "groups[0].vms[0].nics[0].network",
        "Nope",
        "groups[0].vms[0].nics[0].network",
    ),
    (
        "bad adapter",
        "groups[0].vms[0].nics[0].adapter",
        "ne2000",
        "groups[0].vms[0].nics[0].adapter",
    ),
    ("vm twice", "groups[0].vms[1].name", "db01", "groups[0].vms[1].name"),
    ("boot unknown vm", "boot_order[1].vms", ["web99"], "boot_order[1].vms[0]"),
    ("boot twice", "boot_order[1].vms", ["app01", "db01"], "boot_order[1].vms[1]"),
    ("boot missing vm", "boot_order[1].vms", [], "boot_order"),
    ("negative delay", "boot_order[1].delay_s", -1, "boot_order[1].delay_s"),
    ("commit action", "commit", {"default_action": "maybe"}, "commit.default_action"),
    (
        "mapping twice",
        "network_mappings[1]",
        {"source": "VM Network", "live": "a", "test": "b"},
        "network_mappings[1].source",
    ),
    ("rpo negative", "rpo_sla_s", -5, "rpo_sla_s"),
    (
        "protected without dc",
        "protected_site",
        {"vcenter": {"url": "https://p/sdk"}},
        "protected_site.datacenter",
    ),
]


@pytest.mark.parametrize(("case", "path", "value", "key"), BAD, ids=[b[0] for b in BAD])
def test_bad_plan_names_the_key(case: str, path: str, value: Any, key: str) -> None:
    data = copy.deepcopy(base())
    if path.startswith("network_mappings[1]"):
        data["network_mappings"].append(None)
    _set(data, path, value)
    with pytest.raises(ConfigError) as info:
        parse_plan(data)
    assert info.value.field == key, str(info.value)
    assert str(info.value).startswith(f"{key}: ")


def test_duplicate_yaml_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(base()) + "name: other\n")
    with pytest.raises(ConfigError, match="name: given twice"):
        load_plan(str(path))


def test_unreadable_or_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--plan: cannot read"):
        load_plan(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("groups: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_plan(str(tmp_path / "bad.yaml"))
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="plan: must be a mapping"):
        load_plan(str(tmp_path / "list.yaml"))


def test_credentials_from_env() -> None:
    source = CredentialSource("VC_U", "VC_P")
    creds = resolve_credentials(source, {"VC_U": "cdp", "VC_P": "s3cret"})
    assert (creds.user, creds.password) == ("cdp", "s3cret")
    assert "s3cret" not in repr(creds)  # the password never shows in logs or tracebacks
    with pytest.raises(ConfigError, match="VC_P not set") as info:
        resolve_credentials(source, {"VC_U": "cdp"})
    assert info.value.field == "vcenter.credentials"


def test_credentials_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "vc.cred"
    path.write_text("user: cdp\npassword: s3cret\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others") as info:
        resolve_credentials(CredentialSource(file=str(path)), {})
    assert "chmod 600" in info.value.hint
    path.chmod(0o600)
    creds = resolve_credentials(CredentialSource(file=str(path)), {})
    assert (creds.user, creds.password) == ("cdp", "s3cret")
    path.write_text("user: cdp\n")
    with pytest.raises(ConfigError, match="vcenter.credentials.file.password: required"):
        resolve_credentials(CredentialSource(file=str(path)), {})


def test_relative_paths_follow_the_plan_file(tmp_path: Path) -> None:
    data = base()
    data["state_dir"] = "state"
    data["vcenter"]["credentials"] = {"file": "vc.cred"}
    data["recovery"]["datastore"]["path"] = "replicas"
    plan = parse_plan(data, str(tmp_path / "plans" / "p.yaml"))
    assert plan.state_dir == str(tmp_path / "plans" / "state")
    assert plan.vcenter.credentials.file == str(tmp_path / "plans" / "vc.cred")
    assert plan.recovery.datastore.path == str(tmp_path / "plans" / "replicas")


def test_docs_example_plan_loads(tmp_path: Path) -> None:
    """The reference plan in docs/FAILOVER.md is valid (and so stays in step with the code)."""
    text = DOCS.read_text()
    block = re.search(r"```yaml\n(# example plan.*?)```", text, re.S)
    assert block, "docs/FAILOVER.md lost its example plan"
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    example = yaml.safe_load(block.group(1))
    example["vcenter"]["tls"]["ca_file"] = str(ca)
    plan = parse_plan(example, str(tmp_path / "example.yaml"))
    assert plan.protected_site is not None
    assert os.path.isabs(plan.state_dir)
