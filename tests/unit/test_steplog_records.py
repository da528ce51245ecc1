"""The failover step log on disk: today's files load, typed; a future version is refused.

The fixtures are operation logs written by the current code (a planned live failover
rolled back, and a test failover stopped, from the vcsim suites), kept byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cdp.failover.errors import OperationStateError
from cdp.failover.failback import summary as failback_summary
from cdp.failover.failback_record import FailbackLog, FailbackOperation
from cdp.failover.records import Operation, StepEntry
from cdp.failover.steplog import LOG_VERSION, OPERATION_FILE, RUNNING, StepLog

FIXTURES = Path(__file__).parent / "fixtures" / "steplog"
LOGS = sorted(FIXTURES.glob("*.json"))


def _active_copy(src: Path, state: Path, **changes: Any) -> dict[str, Any]:
    """The fixture as the active operation of plan ``dr-test`` under ``state``."""
    data = json.loads(src.read_text())
    data.update(status=RUNNING, **changes)
    folder = state / "dr-test"
    folder.mkdir(parents=True)
    (folder / OPERATION_FILE).write_text(json.dumps(data))
    return data


@pytest.mark.parametrize("path", LOGS, ids=[p.stem for p in LOGS])
def test_a_current_log_round_trips_through_the_typed_record(path: Path) -> None:
    data = json.loads(path.read_text())
    op = Operation.from_json(data)
    assert json.loads(json.dumps(op.to_json())) == data  # same keys and values on disk
    assert all(isinstance(s, StepEntry) for s in op.steps)
    assert op.version == LOG_VERSION


@pytest.mark.parametrize("path", LOGS, ids=[p.stem for p in LOGS])
def test_a_current_log_on_disk_loads(path: Path, tmp_path: Path) -> None:
    data = _active_copy(path, tmp_path)
    assert StepLog(str(tmp_path), "dr-test").load() == data


def test_a_log_of_a_future_version_is_refused_naming_it(tmp_path: Path) -> None:
    _active_copy(LOGS[0], tmp_path, version=LOG_VERSION + 1)
    log = StepLog(str(tmp_path), "dr-test")
    with pytest.raises(OperationStateError, match=f"version {LOG_VERSION + 1}") as err:
        log.load()
    assert f"version {LOG_VERSION}" in str(err.value)
    assert log.data is None
    assert (tmp_path / "dr-test" / OPERATION_FILE).exists()  # left as it was


def test_a_final_log_of_a_future_version_is_not_archived(tmp_path: Path) -> None:
    folder = tmp_path / "dr-test"
    folder.mkdir()
    data = json.loads(LOGS[0].read_text()) | {"version": LOG_VERSION + 1}
    (folder / OPERATION_FILE).write_text(json.dumps(data))
    with pytest.raises(OperationStateError, match="version"):
        StepLog(str(tmp_path), "dr-test").load()
    assert (folder / OPERATION_FILE).exists() and not (folder / "history").exists()


def test_a_log_with_a_missing_key_is_refused_naming_it() -> None:
    data = json.loads(LOGS[0].read_text())
    del data["steps"][3]["kind"]
    with pytest.raises(OperationStateError, match=r"steps\[3\]\.kind is missing"):
        Operation.from_json(data)


# -- the failback log: a typed record too, same file format -----------------------------

FAILBACK_LOGS = sorted((Path(__file__).parent / "fixtures" / "failback").glob("*.json"))
"""Failback logs written by the dict-based code before the typed record (a vcsim run of
tests/vsphere/test_failback.py::test_cli_failback_dry_run_then_run), byte for byte."""


@pytest.mark.parametrize("path", FAILBACK_LOGS, ids=[p.stem for p in FAILBACK_LOGS])
def test_a_failback_log_round_trips_through_the_typed_record(path: Path) -> None:
    data = json.loads(path.read_text())
    rec = FailbackOperation.from_json(data)
    assert json.loads(json.dumps(rec.to_json())) == data  # same keys and values on disk
    assert all(isinstance(s, StepEntry) for s in rec.steps)
    assert {v.vm for v in rec.vms} == {"db01", "app01"} and rec.groups == {"g1": "g1-failback"}


def test_an_active_failback_log_on_disk_loads_typed_and_summarises(tmp_path: Path) -> None:
    data = json.loads(FAILBACK_LOGS[0].read_text())
    data.update(status=RUNNING)
    del data["finished_unix"]
    for step in data["steps"][-3:]:  # failover-back and unregister-dr not done yet
        step["done"] = False
        for k in ("result", "started_unix", "finished_unix", "seconds"):
            step.pop(k)
    folder = tmp_path / "dr-test" / "failback"
    folder.mkdir(parents=True)
    (folder / OPERATION_FILE).write_text(json.dumps(data))

    rec = FailbackLog(str(tmp_path), "dr-test", "failback").load_rec()

    assert rec is not None and json.loads(json.dumps(rec.to_json())) == data
    assert [s.id for s in rec.pending()] == [s["id"] for s in data["steps"][-3:]]
    view = failback_summary(rec)
    assert view["steps_done"] == len(data["steps"]) - 3 and view["bookmark"] == data["bookmark"]
    assert view["regions_sent"] > 0 and view["rto_back_s"] is None  # failover-back not done


def test_a_failback_log_with_a_missing_key_is_refused_naming_it() -> None:
    data = json.loads(FAILBACK_LOGS[0].read_text())
    del data["bookmark"]
    with pytest.raises(OperationStateError, match="bookmark is missing"):
        FailbackOperation.from_json(data)
