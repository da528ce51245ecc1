"""Guards on the destructive steps: recovered VMs' disks are never lost silently.

A ``<vm>-dr/`` folder holds a recovered VM's disks. Once the recovered VMs have been
powered on (or the failover was committed) it holds data that exists nowhere else: what
the guests wrote since the failover. Nothing overwrites or deletes such a folder unless

* that data exists elsewhere: a failback finished (``failed-back``) after the folder was
  last written, so the original site holds every byte; or
* the operator named the loss with a flag: ``run --overwrite-recovered``,
  ``rollback --discard-recovered-data``.

``rollback --keep-recovered-data`` (and the commit deadline's ``default_action:
rollback``) powers off and unregisters the recovered VMs but leaves each folder holding
their data where it is; a later ``run`` then refuses to export over it until the operator
moves it away or passes ``--overwrite-recovered``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

from cdp.failover import steps as st
from cdp.failover.errors import OperationStateError
from cdp.failover.records import Operation

REFUSE = "refuse"
"""No flag: a folder holding recovered data stops the command."""
KEEP = "keep"
"""Remove the recovered VMs, leave their folders (and data) where they are."""
DISCARD = "discard"
"""Delete the folders (the operator named the loss)."""
RECOVERED_CHOICES = (REFUSE, KEEP, DISCARD)


@dataclass(frozen=True)
class Held:
    """A recovered VM's folder holding data that exists nowhere else."""

    folder: str
    bytes: int
    last_write_unix: float
    ran_since_unix: float | None
    """When the recovered VM was powered on (None: not known from the log)."""

    def describe(self) -> str:
        """One line: the folder, its size, since when the VM ran, when last written."""
        ran = ""
        if self.ran_since_unix is not None:
            minutes = (time.time() - self.ran_since_unix) / 60
            ran = f"; its VM ran since {_iso(self.ran_since_unix)} ({minutes:.0f} min)"
        return (
            f"{self.folder}/ ({_mib(self.bytes)}, last written {_iso(self.last_write_unix)}{ran})"
        )


def held_by_operation(op: Operation) -> list[Held]:
    """The ``-dr`` folders of a live failover whose recovered VMs were powered on."""
    out: list[Held] = []
    for vm in op.vms:
        power_on = op.step(f"{st.POWER_ON}:{vm.vm}")
        if power_on is None or not power_on.done or op.operation != st.MODE_LIVE:
            continue
        held = _held(vm.folder, power_on.finished_unix)
        if held is not None:
            out.append(held)
    return out


def held_before_start(vms: Iterable[st.RecoveredVm], failback_history: str) -> list[Held]:
    """Existing ``-dr`` folders a new live failover would overwrite.

    A folder last written before a finished failback is not held: its data was brought
    home (``failback_history`` is the failback log's history folder).
    """
    failed_back = _last_failback_unix(failback_history)
    held = [_held(vm.folder, None) for vm in vms]
    return [h for h in held if h is not None and h.last_write_unix > failed_back]


def refuse(held: list[Held], doing: str, command: str, alternative: str = "") -> None:
    """Raise OperationStateError naming every held folder and the command that names the loss."""
    if not held:
        return
    lines = "\n  ".join(h.describe() for h in held)
    also = f"; or {alternative}" if alternative else ""
    raise OperationStateError(
        f"{doing} would destroy data that exists only in the recovered VMs' folders:\n  {lines}",
        hint=f"to go on and lose it: {command}{also}",
    )


def _held(folder: str, ran_since: float | None) -> Held | None:
    size, newest = 0, 0.0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return None
    for e in entries:
        if e.is_file(follow_symlinks=False) and e.name.endswith(".vmdk"):
            info = e.stat(follow_symlinks=False)
            size, newest = size + info.st_size, max(newest, info.st_mtime)
    return Held(folder, size, newest, ran_since) if size else None


def _last_failback_unix(history: str) -> float:
    names = sorted(os.listdir(history)) if os.path.isdir(history) else []
    done = [n for n in names if n.endswith("-failed-back.json")]
    if not done:
        return 0.0
    try:
        with open(os.path.join(history, done[-1]), encoding="utf-8") as f:
            return float(json.load(f).get("finished_unix") or 0.0)
    except (OSError, ValueError):
        return 0.0


def _iso(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(unix))


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
