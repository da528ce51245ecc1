"""The protected VMs' power state, as the simulated host obeys it (issue 13 #7).

``cdp sim run --power-file PATH`` makes the host read PATH (polled every
:data:`POLL_S`): ``off`` powers the guests off — no more writes, so the shipper drains
what it holds and the source goes idle — and ``on`` (or a missing or empty file) powers
them on again. This is how a planned failover is rehearsed with the shipped tools: the
operator (or a hook of the protected vCenter) writes ``off`` when the VM is powered off.
"""

from __future__ import annotations

import time

from cdp.errors import InvalidInputError

POLL_S = 0.05
"""How often the power file is read, seconds."""
STATES = ("on", "off")


class PowerSwitch:
    """Whether the guests may write now, from a power file ("" = always on)."""

    def __init__(self, path: str = "") -> None:
        self.path = path
        self._on = True
        self._read_at = 0.0
        self.power_offs = 0
        """How many times the guests were seen powered off."""

    def is_on(self) -> bool:
        """The power state, read from the file at most every POLL_S."""
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
