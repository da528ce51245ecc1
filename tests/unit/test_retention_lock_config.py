"""The retention lock in the target's config file and flags, and the rule that keeps a
stored lock: each refusal names the field (the key path, the flag, or the policy field)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cdp.cli.main import build_parser
from cdp.cli.target_config import describe_reload, parse_config
from cdp.errors import ConfigError, InvalidInputError
from cdp.target.retention_guard import StoredLock, check_policy

LOCKED: dict[str, Any] = {
    "data_dir": "/var/lib/cdp",
    "policies": {
        "default": {"history_window": "1d", "retention_lock": "24h"},
        "gold": {"history_window": "7d", "retention_lock": "3d"},
    },
    "groups": {"db": "gold", "web": {"history_window": "2d"}},
}


def _flags(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["target", "serve", *argv])


def test_the_lock_is_a_policy_key_inherited_like_the_others() -> None:
    t = parse_config(LOCKED).target
    assert t.policy_for("db").retention_lock_s == 3 * 86400.0
    assert t.policy_for("web").retention_lock_s == 86400.0  # from default
    assert t.policy_for("other").retention_lock_s == 86400.0
    assert t.default_policy.retention_lock_s == t.retention_lock_s == 86400.0


@pytest.mark.parametrize(
    ("path", "data", "key"),
    [
        ("default", {"history_window": "1h", "retention_lock": "24h"},
         "policies.default.history_window"),
        ("gold", {"history_window": "1h"}, "policies.gold.history_window"),  # inherits 24h
        ("gold", {"retention_lock": "forever"}, "policies.gold.retention_lock"),
        ("gold", {"retention_lock": "31d"}, "policies.gold.retention_lock"),
    ],
)  # fmt: skip
def test_a_window_shorter_than_the_lock_or_a_bad_lock_is_named(
    path: str, data: dict[str, Any], key: str
) -> None:
    bad = {**LOCKED, "policies": {**LOCKED["policies"], path: data}}
    with pytest.raises(ConfigError) as err:
        parse_config(bad)
    assert err.value.field == key, str(err.value)


def test_a_group_override_shorter_than_the_lock_is_named() -> None:
    bad = {**LOCKED, "groups": {"web": {"history_window": "2h"}}}
    with pytest.raises(ConfigError) as err:
        parse_config(bad)
    assert err.value.field == "groups.web.history_window"


def test_flags_carry_the_lock_and_a_short_window_flag_is_named() -> None:
    t = parse_config({"data_dir": "/d"}, _flags("--retention-lock", "2h",
                                                "--history-window", "3h")).target  # fmt: skip
    assert t.default_policy.retention_lock_s == 7200.0
    with pytest.raises(InvalidInputError) as err:
        parse_config({"data_dir": "/d"}, _flags("--retention-lock", "2h"))  # window 1h
    assert err.value.field == "--retention-lock"
    with pytest.raises(InvalidInputError) as err:
        parse_config(LOCKED, _flags("--history-window", "1h"))
    assert err.value.field == "--history-window"
    with pytest.raises(InvalidInputError) as err:
        parse_config({"data_dir": "/d"}, _flags("--retention-lock", "soon"))
    assert err.value.field == "--retention-lock"


def test_a_stored_lock_only_lengthens() -> None:
    stored = StoredLock(3600.0, 1)
    check_policy(stored, "db", 3600.0, 3600.0)  # the same
    check_policy(stored, "db", 7200.0, 7200.0)  # longer
    for lock, window, field, words in (
        (1800.0, 3600.0, "retention_lock", "lowers to 1800 s"),
        (0.0, 3600.0, "retention_lock", "removes it"),
        (3600.0, 1800.0, "history_window", "shorter than its retention lock of 3600 s"),
    ):
        with pytest.raises(ConfigError) as err:
            check_policy(stored, "db", lock, window)
        assert err.value.field == field and words in str(err.value) and "'db'" in str(err.value)
    check_policy(StoredLock(0.0), "db", 0.0, 0.0)  # never locked: anything goes


def test_a_reload_names_a_lock_change_and_config_check_shows_it(tmp_path: Path) -> None:
    longer = {
        **LOCKED,
        "policies": {
            **LOCKED["policies"],
            "gold": {"history_window": "7d", "retention_lock": "5d"},
        },
    }
    live, _ = describe_reload(parse_config(LOCKED), parse_config(longer))
    assert any("retention_lock_s 259200.0 -> 432000.0" in line for line in live), live
    path = tmp_path / "t.yaml"
    path.write_text(
        "data_dir: /d\npolicies:\n  default:\n    history_window: 2d\n    retention_lock: 1d\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "cdp", "target", "config", "check", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "retention lock 86400 s" in out
