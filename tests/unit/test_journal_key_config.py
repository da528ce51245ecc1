"""The journal keyring in the target config: the file key, the flag, the environment,
and a reload that changes it (needs a restart; the keys are never printed)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cdp.cli import target_config
from cdp.errors import ConfigError

K1 = "k1:" + "11" * 32
K2 = "k2:" + "22" * 32


def key_file(tmp_path: Path, text: str, name: str = "keys") -> str:
    f = tmp_path / name
    f.write_text(text)
    f.chmod(0o600)
    return str(f)


def test_config_key_and_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDP_JOURNAL_KEY", raising=False)
    data = {"data_dir": str(tmp_path), "journal_key_file": key_file(tmp_path, K1)}
    keys = target_config.parse_config(data).target.journal_keys
    assert keys is not None and keys.newest.key_id == "k1"
    flags = argparse.Namespace(journal_key_file=key_file(tmp_path, f"{K1}\n{K2}", "k2"))
    keys = target_config.parse_config(data, flags).target.journal_keys
    assert keys is not None and keys.newest.key_id == "k2"
    assert target_config.parse_config({"data_dir": str(tmp_path)}).target.journal_keys is None
    monkeypatch.setenv("CDP_JOURNAL_KEY", K2)
    keys = target_config.parse_config({"data_dir": str(tmp_path)}).target.journal_keys
    assert keys is not None and keys.newest.key_id == "k2"


def test_bad_key_file_names_the_config_key(tmp_path: Path) -> None:
    data = {"data_dir": str(tmp_path), "journal_key_file": key_file(tmp_path, "k1:short")}
    with pytest.raises(ConfigError) as info:
        target_config.parse_config(data)
    assert info.value.field == "journal_key_file[1]"


def test_reload_says_a_new_keyring_needs_a_restart(tmp_path: Path) -> None:
    old = target_config.parse_config(
        {"data_dir": str(tmp_path), "journal_key_file": key_file(tmp_path, K1)}
    )
    new = target_config.parse_config(
        {"data_dir": str(tmp_path), "journal_key_file": key_file(tmp_path, f"{K1}\n{K2}", "b")}
    )
    live, restart = target_config.describe_reload(old, new)
    assert restart == ["journal_key_file: the journal keyring changed; needs a restart"]
    assert new.target.journal_keys is not None
    assert "k2" in repr(new.target.journal_keys)
    assert repr(b"\x22" * 32) not in repr(new.target), "a key in a repr (and so in a log)"
