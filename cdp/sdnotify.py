"""The systemd notify protocol (``sd_notify(3)``) without a dependency.

A service started with ``Type=notify`` tells systemd it is ready (``READY=1``), alive
(``WATCHDOG=1`` at least every ``WatchdogSec``), reloading (``RELOADING=1``) and
stopping (``STOPPING=1``) by sending datagrams to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a leading ``@`` names the abstract namespace). Without that variable
(not under systemd) every call does nothing. Never raises and never blocks (the target
calls it on its event loop): a lost notification must not stop the target, it is logged.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends states to the service manager's notify socket (none: every call is a no-op)."""

    def __init__(self, address: str, watchdog_usec: int) -> None:
        self.address = address
        """The socket path ("" for none); a leading ``@`` is the abstract namespace."""
        self.watchdog_usec = watchdog_usec
        """The service's WatchdogSec in microseconds (0: no watchdog)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        """The notifier systemd set up for this process (``NOTIFY_SOCKET``, ``WATCHDOG_USEC``).

        ``WATCHDOG_PID``, when set, must be this process, else the watchdog is someone else's.
        """
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        return cls(env.get("NOTIFY_SOCKET", ""), int(usec) if usec.isdigit() and mine else 0)

    @property
    def watchdog_interval_s(self) -> float:
        """How often to send ``WATCHDOG=1``: half of WatchdogSec (0: no watchdog)."""
        return self.watchdog_usec / 2e6 if self.address else 0.0

    def notify(self, *states: str) -> bool:
        """Send ``states`` (``KEY=VALUE`` lines) in one datagram; whether it was sent."""
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.setblocking(False)  # a full queue must never stall the event loop
                s.sendto("\n".join(states).encode(), target)
        except OSError as exc:
            log.warning("systemd notify %s to %s failed: %s", states, self.address, exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """The service is up (the listening sockets are bound)."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        """The service is alive."""
        return self.notify("WATCHDOG=1")

    def reloading(self) -> bool:
        """A reload starts; :meth:`ready` ends it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """The service is shutting down."""
        return self.notify("STOPPING=1")
