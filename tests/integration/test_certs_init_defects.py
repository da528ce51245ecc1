"""Issue 13, defect 11: ``cdp certs init`` adds only what it was asked to.

fails on ece6b4a:
  test_adding_a_source_mints_no_operator    defect 11
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cdp import authz


def init(folder: Path, *args: str) -> dict[str, object]:
    """``cdp certs init FOLDER ARGS --json`` as a subprocess; its JSON answer."""
    proc = subprocess.run(
        [sys.executable, "-m", "cdp", "certs", "init", str(folder), "--json", *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


def test_adding_a_source_mints_no_operator(tmp_path: Path) -> None:
    """A site set up with operator ``ops``; later ``certs init --source host-b=g2`` adds that
    source only: no ``admin`` operator certificate, and authz.yaml's operators unchanged
    (a running target reloads that file, so an extra operator is a new credential)."""
    pki = tmp_path / "pki"
    init(pki, "--source", "host-a=g1", "--operator", "ops")

    added = init(pki, "--source", "host-b=g2")

    assert added["operators"] == [], added["operators"]
    assert not (pki / "operators" / "admin").exists()
    policy = authz.load_policy(os.path.join(pki, "target", "authz.yaml"))
    assert policy.operators == frozenset({"ops"})
    assert policy.sources == {"host-a": frozenset({"g1"}), "host-b": frozenset({"g2"})}
