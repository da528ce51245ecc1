"""The target's config file: every bad value is named by its key path; flags override it;
a reload says what changed and what needs a restart."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cdp.cli.main import build_parser
from cdp.cli.target_config import describe_reload, load_config, parse_config
from cdp.errors import ConfigError, InvalidInputError
from cdp.target.config import DEFAULT_RPO_ALERT_S, GroupPolicy, TargetConfig

GOOD: dict[str, Any] = {
    "data_dir": "/var/lib/cdp",
    "listen": "0.0.0.0:7711",
    "tls_dir": "/etc/cdp/tls/target",
    "policies": {
        "default": {"history_window": "2h", "rpo_alert": 60},
        "gold": {"history_window": "7d", "priority": "high", "journal_limit": "64GiB"},
    },
    "groups": {"db": "gold", "web": {"policy": "gold", "checkpoint_interval": 5}},
}


def _with(path: str, value: object) -> dict[str, Any]:
    """GOOD with the dotted ``path`` set to ``value``."""
    data = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[last] = value
    return data


def _serve_flags(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["target", "serve", *argv])


def test_good_file_resolves_every_group_policy() -> None:
    s = parse_config(GOOD)
    t = s.target
    assert (s.listen, s.tls_dir, s.insecure) == ("0.0.0.0:7711", "/etc/cdp/tls/target", False)
    assert t.policy_for("elsewhere") == GroupPolicy(history_window_s=7200.0, rpo_alert_s=60.0)
    assert t.history_window_s == 7200.0  # the target-wide fields are the default policy
    gold = t.policy_for("db")
    assert (gold.history_window_s, gold.priority) == (7 * 86400.0, "high")
    assert gold.journal_limit_bytes == 64 * 2**30
    assert gold.rpo_alert_s == 60.0  # inherited from default
    assert t.policy_for("web") == dataclasses.replace(gold, checkpoint_interval_s=5.0)


def test_no_policies_means_the_target_wide_defaults() -> None:
    t = TargetConfig("/d", history_window_s=10.0)
    assert t.policy_for("any") == GroupPolicy(history_window_s=10.0)
    assert t.policy_for("any").rpo_alert_s == DEFAULT_RPO_ALERT_S


@pytest.mark.parametrize(
    ("path", "value", "key", "words"),
    [
        ("groups.db", {"history_window": "forever"}, "groups.db.history_window", "duration"),
        ("groups.db", {"history_window": [1]}, "groups.db.history_window", "duration"),
        ("groups.db", {"history_window": "31d"}, "groups.db.history_window", "outside"),
        ("groups.db", {"policy": "silver"}, "groups.db.policy", "no policy 'silver'"),
        ("groups.db", {"polcy": "gold"}, "groups.db.polcy", "unknown key"),
        ("groups.db", 5, "groups.db", "mapping"),
        ("groups.bad name", "gold", "groups.bad name", "is not 1-64"),
        ("policies.gold.priority", "urgent", "policies.gold.priority", "high, normal, low"),
        ("policies.gold.journal_limit", True, "policies.gold.journal_limit", "size"),
        ("policies.default.checkpoint_interval", 0, "policies.default.checkpoint_interval",
         "outside"),
        ("policies.default.rpo_alert", "1x", "policies.default.rpo_alert", "duration"),
        ("listen", 7711, "listen", "must be a string"),
        ("insecure", "yes", "insecure", "true or false"),
        ("insecure", True, "insecure", "not both"),
        ("lisen", "0.0.0.0:1", "lisen", "unknown key"),
        ("policies", ["default"], "policies", "mapping"),
    ],
)  # fmt: skip
def test_a_bad_value_is_named_by_its_key_path(
    path: str, value: object, key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_with(path, value))
    assert err.value.field == key
    assert words in str(err.value)


def test_data_dir_is_required() -> None:
    data = dict(GOOD)
    del data["data_dir"]
    with pytest.raises(ConfigError, match="data_dir: required"):
        parse_config(data)


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "target.yaml"
    path.write_text(json.dumps(GOOD))  # JSON is YAML
    flags = _serve_flags("--config", str(path), "--listen", "127.0.0.1:0", "--insecure",
                         "--history-window", "15m", "--data-dir", str(tmp_path))  # fmt: skip
    s = load_config(str(path), flags)
    assert (s.listen, s.insecure, s.tls_dir, s.data_dir) == ("127.0.0.1:0", True, "", str(tmp_path))
    assert s.target.policy_for("other").history_window_s == 900.0
    assert s.target.policy_for("db").history_window_s == 7 * 86400.0  # gold sets its own
    assert s.target.policy_for("db").rpo_alert_s == 60.0


def test_a_bad_flag_is_named_by_the_flag() -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_config(GOOD, _serve_flags("--history-window", "31d"))
    assert err.value.field == "--history-window"


def test_unreadable_or_not_yaml_files_name_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config: cannot read"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: [\n")
    with pytest.raises(ConfigError, match="--config: .* is not valid YAML"):
        load_config(str(bad))
    twice = tmp_path / "twice.yaml"
    twice.write_text("data_dir: /a\ndata_dir: /b\n")
    with pytest.raises(ConfigError, match="data_dir: given twice"):
        load_config(str(twice))


def test_reload_says_what_changed_and_what_needs_a_restart() -> None:
    old = parse_config(GOOD)
    new = parse_config(_with("policies.gold.history_window", "1d") | {"listen": "0.0.0.0:1"})
    live, restart = describe_reload(old, new)
    assert "policies.gold: history_window_s 604800.0 -> 86400.0" in live
    assert "groups.db: history_window_s 604800.0 -> 86400.0" in live
    assert restart == ["listen: '0.0.0.0:7711' -> '0.0.0.0:1' needs a restart"]
    assert describe_reload(old, old) == ([], [])


def _check(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdp", "target", "config", "check", *argv],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_config_check_exit_codes_and_json(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(json.dumps(GOOD))
    bad.write_text(json.dumps(_with("groups.db", {"policy": "silver"})))
    proc = _check(str(good), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.splitlines()[-1])
    assert data["valid"] is True
    assert data["config"]["groups"]["db"]["priority"] == "high"
    proc = _check(str(bad), "--json")
    assert proc.returncode == 2
    data = json.loads(proc.stdout.splitlines()[-1])
    assert (data["valid"], data["key"]) == (False, "groups.db.policy")
    assert "groups.db.policy: no policy 'silver'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _check(str(good))
    assert proc.returncode == 0 and "group db: history 604800 s" in proc.stdout


def test_detect_training_flag_sets_the_detectors_training_and_is_bounded() -> None:
    assert parse_config(GOOD).target.detect_training_s == 600.0
    s = parse_config(GOOD, _serve_flags("--detect-training", "30s"))
    assert s.target.detect_training_s == 30.0
    with pytest.raises(InvalidInputError) as err:
        parse_config(GOOD, _serve_flags("--detect-training", "0"))
    assert err.value.field == "--detect-training"
