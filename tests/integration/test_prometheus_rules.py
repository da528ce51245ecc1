"""The shipped alert rules (deploy/prometheus/cdp-rules.yml) under ``promtool``:
``check rules`` for syntax and ``test rules`` for the unit tests in cdp-rules.test.yml
(each alert fires when it must, stays quiet before its ``for:`` and on healthy series)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing (Debian package prometheus; deploy/setup.sh)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """promtool in the rules folder, bounded in time."""
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120
    )


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", "cdp-rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 16 rules found" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", "cdp-rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
