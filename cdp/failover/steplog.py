"""The durable step log of a plan's operation: what was planned, what is done.

One JSON file per plan, ``<state_dir>/<plan>/operation.json``, replaced atomically
(:func:`cdp.fsutil.write_atomic`) after every finished step. A crash therefore loses at
most the record of steps that were running; each step is written to be safe to run
again (it checks vCenter and the datastore before it acts), so running the same command
again continues from the last recorded step. A finished operation (test stopped,
committed, rolled back) moves to ``history/`` under the same folder.

``<state_dir>/<plan>/lock`` is held (``flock``) by the command changing the log, so two
commands never run steps of the same plan at once; the kernel drops the lock when its
holder dies, which is what lets a crashed command be resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from cdp.failover.errors import OperationStateError
from cdp.failover.records import LOG_VERSION, Operation, check_version
from cdp.fsutil import fsync_dir, write_atomic

OPERATION_FILE = "operation.json"

# operation statuses
RUNNING = "running"
"""Forward steps are being run (or were, when the command died)."""
TESTING = "testing"
AWAITING_COMMIT = "awaiting-commit"
UNDOING = "undoing"
"""stop-test or rollback steps are being run."""
COMMITTED = "committed"
ROLLED_BACK = "rolled-back"
TEST_STOPPED = "test-stopped"
FINAL = (COMMITTED, ROLLED_BACK, TEST_STOPPED)


OWNER_LOCK = "owner"
"""Lock file held for its whole life by the background process of ``run --detach``: it owns
the operation's commit deadline (``status`` reports it as ``deadline_owner``)."""


class StepLog:
    """The step log of one plan (the file may not exist: no active operation)."""

    def __init__(self, state_dir: str, plan_name: str) -> None:
        self.folder = os.path.join(state_dir, plan_name)
        self.path = os.path.join(self.folder, OPERATION_FILE)
        self.data: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        """Read the active operation, or None when there is none.

        A log left with a final status (a crash between recording it and archiving) is
        archived now, so a new operation never overwrites it. A log of another format
        version is refused (OperationStateError naming both versions) and left as it is.
        """
        try:
            with open(self.path, encoding="utf-8") as f:
                self.data = json.load(f)
        except FileNotFoundError:
            self.data = None
        except (OSError, ValueError) as exc:
            raise OperationStateError(
                f"step log {self.path} is unreadable: {exc}",
                hint="restore it from history/ or move it away to start over (check vCenter "
                "for VMs it registered first)",
            ) from exc
        if self.data is not None:
            data, self.data = self.data, None
            check_version(data, self.path)
            self.data = data
        if self.data is not None and self.data.get("status") in FINAL:
            with contextlib.suppress(FileNotFoundError):  # another command archived it
                self.archive()
            self.data = None
        return self.data

    def start(self, data: dict[str, Any]) -> None:
        """Write a new operation's log (folder created as needed)."""
        os.makedirs(self.folder, exist_ok=True)
        self.data = {"version": LOG_VERSION, **data, "events": []}
        self.save()

    def save(self) -> None:
        """Durably replace the file with the current data."""
        assert self.data is not None
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode())

    def event(self, what: str) -> None:
        """Append a timestamped line to the operation's history (saved by the caller)."""
        assert self.data is not None
        self.data["events"].append({"unix": round(time.time(), 3), "what": what})

    def archive(self) -> str:
        """Move the finished operation into history/; return its new path."""
        assert self.data is not None
        history = os.path.join(self.folder, "history")
        os.makedirs(history, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.data["started_unix"]))
        dest = os.path.join(history, f"{stamp}-{self.data['operation']}-{self.data['status']}.json")
        os.replace(self.path, dest)
        fsync_dir(history)
        fsync_dir(self.folder)
        self.data = None
        return dest

    def holder(self, name: str = "lock") -> tuple[int | None, bool]:
        """The pid last written to lock file ``name`` and whether a command holds it now."""
        path = os.path.join(self.folder, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, False
        try:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # fails while a holder has it
            except OSError:
                alive = True
            else:
                alive = False
        finally:
            os.close(fd)
        return (int(text) if text.isdigit() else None), alive

    @contextlib.contextmanager
    def locked(self, name: str = "lock") -> Iterator[None]:
        """Hold the plan's lock file ``name``; OperationStateError if another command holds it."""
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise OperationStateError(
                    f"another cdp failover command (pid {holder}) is running for this plan",
                    hint="wait for it to finish, or stop it; a killed command leaves no lock",
                ) from exc
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing drops the flock


class OperationLog(StepLog):
    """The step log of a plan's failover operation, read and written as an :class:`Operation`.

    ``op`` is the typed record; the dict form exists only while reading and writing the file.
    """

    def __init__(self, state_dir: str, plan_name: str) -> None:
        super().__init__(state_dir, plan_name)
        self.op: Operation | None = None

    def load(self) -> dict[str, Any] | None:
        """The active operation's dict form (see :meth:`StepLog.load`); ``op`` is reset."""
        self.op = None
        return super().load()

    def load_op(self) -> Operation | None:
        """The active operation, or None (see :meth:`StepLog.load`)."""
        data = self.load()
        self.op = Operation.from_json(data) if data is not None else None
        return self.op

    def start_op(self, op: Operation) -> None:
        """Write a new operation's log."""
        self.op = op
        os.makedirs(self.folder, exist_ok=True)
        self.save()

    def save(self) -> None:
        """Durably replace the file with the typed record."""
        assert self.op is not None
        self.data = self.op.to_json()
        super().save()

    def event(self, what: str) -> None:
        """Append a timestamped line to the operation's history (saved by the caller)."""
        assert self.op is not None
        self.op.event(what)

    def archive(self) -> str:
        """Move the finished operation into history/; return its new path."""
        if self.op is not None:
            self.data = self.op.to_json()
        self.op = None
        return super().archive()


async def close_op(
    log: OperationLog, status: str, what: str, summarize: Callable[[Operation], dict[str, Any]]
) -> dict[str, Any]:
    """Record the operation's final ``status`` and event, save, then move it to history.

    Returns ``summarize`` of the record with ``archived``, the log's path in history.
    """
    op = log.op
    assert op is not None
    op.status = status
    log.event(what)
    await asyncio.to_thread(log.save)
    out = summarize(op)
    out["archived"] = await asyncio.to_thread(log.archive)
    return out
