"""Which archived failover ``cdp failover promote`` promotes (real step-log files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdp.failover.errors import OperationStateError
from cdp.failover.promote import committed_failover
from cdp.failover.steplog import COMMITTED, OperationLog

FIXTURES = Path(__file__).parent / "fixtures" / "steplog"


def _archive(history: Path, name: str, fixture: str, **changes: str) -> Path:
    data = json.loads((FIXTURES / fixture).read_text())
    data.update(changes)
    path = history / name
    path.write_text(json.dumps(data))
    return path


def test_a_verify_after_the_commit_does_not_hide_the_committed_failover(tmp_path: Path) -> None:
    """A nightly verify (a test failover, archived later) must not make promote refuse."""
    history = tmp_path / "dr-test" / "history"
    history.mkdir(parents=True)
    live = _archive(
        history, "20261206T010000Z-live-committed.json", "planned-live-rolled-back.json",
        status=COMMITTED,
    )  # fmt: skip
    _archive(history, "20261206T020000Z-test-test-stopped.json", "test-stopped.json")
    path, op = committed_failover(OperationLog(str(tmp_path), "dr-test"))
    assert path == str(live) and op.status == COMMITTED


def test_without_a_committed_live_failover_promote_refuses(tmp_path: Path) -> None:
    history = tmp_path / "dr-test" / "history"
    history.mkdir(parents=True)
    _archive(history, "20261206T020000Z-test-test-stopped.json", "test-stopped.json")
    with pytest.raises(OperationStateError, match="no committed live failover"):
        committed_failover(OperationLog(str(tmp_path), "dr-test"))
