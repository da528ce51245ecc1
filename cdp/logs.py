"""Log hygiene: a rate limit, so a flood of one message cannot fill a disk or hide others.

Owns :class:`RateLimit`, a filter that the CLI installs on the root handlers. A message
is keyed by its logger, level and unformatted template; past ``burst`` in a window the
rest are counted, and the next one let through says how many were suppressed. It never
drops a message of a kind it has not seen in the window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

DEFAULT_BURST = 10
"""Messages of one kind let through per window."""
DEFAULT_WINDOW_S = 10.0
"""Length of a rate-limit window, in seconds."""


class RateLimit(logging.Filter):
    """At most ``burst`` records of one kind per ``window_s``; the rest counted, then said."""

    def __init__(
        self,
        burst: int = DEFAULT_BURST,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._burst, self._window_s, self._clock = burst, window_s, clock
        self._seen: dict[tuple[str, int, str], list[float | int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to emit ``record``; notes suppressed ones in the next one emitted."""
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        start, count, dropped = self._seen.get(key, (now, 0, 0))
        if now - start >= self._window_s:
            start, count = now, 0
        if count >= self._burst:
            self._seen[key] = [start, count, int(dropped) + 1]
            return False
        if dropped:
            record.msg = f"{record.msg} ({int(dropped)} like it suppressed)"
        self._seen[key] = [start, int(count) + 1, 0]
        if len(self._seen) > 10_000:
            self._seen.clear()
        return True


def install(handlers: list[logging.Handler]) -> None:
    """Put one shared rate limit on each handler."""
    limit = RateLimit()
    for handler in handlers:
        handler.addFilter(limit)
