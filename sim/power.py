"""The protected VMs' power state, as the simulated host obeys it (issue 13 #7).

Two sources of truth, one interface (``is_on(vm)``):

- ``cdp sim run --power-file PATH`` (:class:`PowerSwitch`): PATH is read every
  :data:`POLL_S`; ``off`` powers every guest off — no more writes, so the shipper drains
  what it holds and the source goes idle — and ``on`` (or a missing or empty file) powers
  them on again. An explicit control for rehearsals without a protected vCenter.
- ``cdp sim run --power-plan PLAN`` (:class:`VCenterPower`): the protected vCenter of a
  failover plan (``protected_site``) is asked for each VM's power state every
  :data:`VCENTER_POLL_S`; a VM it reports ``poweredOff`` issues no writes. So the
  power-off a planned failover does through that vCenter stops the simulated guests,
  exactly as it would stop real ones: ``cdp failover run --planned`` runs end to end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from cdp.errors import CdpError, InvalidInputError

log = logging.getLogger(__name__)

POLL_S = 0.05
"""How often the power file is read, seconds."""
VCENTER_POLL_S = 0.25
"""How often the protected vCenter is asked for the VMs' power states, seconds."""
STATES = ("on", "off")
POWERED_OFF = "poweredOff"
"""vSphere's name of the powered-off state (``VirtualMachinePowerState``)."""


class Power(Protocol):
    """Whether a simulated guest may write now."""

    power_offs: int
    """How many times a guest was seen powered off."""

    def is_on(self, vm: str = "") -> bool:
        """Whether VM ``vm`` is powered on ("" : whether any guest is)."""


class PowerSwitch:
    """Whether the guests may write now, from a power file ("" = always on)."""

    def __init__(self, path: str = "") -> None:
        self.path = path
        self._on = True
        self._read_at = 0.0
        self.power_offs = 0
        """How many times the guests were seen powered off."""

    def is_on(self, vm: str = "") -> bool:
        """The power state of every guest, read from the file at most every POLL_S."""
        if not self.path or time.monotonic() - self._read_at < POLL_S:
            return self._on
        self._read_at = time.monotonic()
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read().strip().lower()
        except FileNotFoundError:
            text = ""
        if text and text not in STATES:
            raise InvalidInputError(
                "--power-file", f"{self.path} says {text!r}; expected on or off"
            )
        on = text != "off"
        if self._on and not on:
            self.power_offs += 1
        self._on = on
        return on


class VCenterPower:
    """Each guest's power state as its vCenter reports it, refreshed in a thread.

    ``read`` returns {VM name: vSphere power state} for the VMs it found (a blocking call,
    run off the event loop). Until the first answer, and for a VM vCenter does not know,
    the guest counts as on (it was running before cdp was asked). A failed read is logged
    and the last known states stay.
    """

    def __init__(self, read: Callable[[], dict[str, str]], poll_s: float = VCENTER_POLL_S) -> None:
        self._read = read
        self._poll_s = poll_s
        self._states: dict[str, str] = {}
        self._task: asyncio.Future[dict[str, str]] | None = None
        self._asked_at = float("-inf")
        self.power_offs = 0
        """How many times a guest was seen going from on to off."""

    def is_on(self, vm: str = "") -> bool:
        """Whether ``vm`` (""  : any guest) is on, as of the newest answer of vCenter."""
        self._refresh()
        if vm:
            return self._states.get(vm) != POWERED_OFF
        return not self._states or any(s != POWERED_OFF for s in self._states.values())

    def _refresh(self) -> None:
        """Take a finished answer; ask again once ``poll_s`` has passed."""
        if self._task is not None and self._task.done():
            self._take(self._task)
            self._task = None
        if self._task is None and time.monotonic() - self._asked_at >= self._poll_s:
            self._asked_at = time.monotonic()
            self._task = asyncio.ensure_future(asyncio.to_thread(self._read))

    def _take(self, task: asyncio.Future[dict[str, str]]) -> None:
        try:
            states = task.result()
        except CdpError as exc:  # vCenter unreachable: keep the last known states
            log.warning("power: cannot read the protected vCenter: %s", exc)
            return
        went_off = [
            vm for vm, s in states.items() if s == POWERED_OFF and self._states.get(vm) != s
        ]
        self.power_offs += len(went_off)
        for vm in went_off:
            log.warning("power: %s powered off at the protected vCenter; its writes stop", vm)
        self._states = states

    def close(self) -> None:
        """Stop asking (a read under way finishes in its thread)."""
        if self._task is not None:
            self._task.cancel()
