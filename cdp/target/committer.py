"""Group commit: batches queued by the intake are appended, fsync'd once, then acked.

The committer owns the write side of one journal and runs it in its own thread, off
the event loop. A round takes every batch queued so far, appends them in order, makes
them durable with one fdatasync, indexes them, and only then resolves their futures.
A batch whose append fails (e.g. disk full) fails with every batch queued after it;
the ones before it are still synced and acked. A failed fsync fails the whole round
(:class:`cdp.errors.JournalSyncError`, UNAVAILABLE): the journal cuts those records and
refuses appends, so no later round can acknowledge them, until the group reopens it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from cdp.errors import JournalSyncError
from cdp.journal.journal import Journal
from cdp.record import Record

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ack:
    """Every record with seq <= ``durable_seq`` is durable."""

    durable_seq: int
    source_ns: int


class Committer:
    """Group commit for one journal."""

    def __init__(
        self, journal: Journal, on_sync_failure: Callable[[JournalSyncError], None] | None = None
    ) -> None:
        self.journal = journal
        self._on_sync_failure = on_sync_failure
        """Told when an fsync failed (the group shows the error until its journal reopens)."""
        self._queue: list[tuple[list[Record], Future[Ack]]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.rounds = 0
        """Commit rounds (fsyncs) done; for metrics and benchmarks."""

    def submit(self, records: list[Record]) -> Future[Ack]:
        """Queue a validated batch; the future resolves once it is durable."""
        fut: Future[Ack] = Future()
        with self._cond:
            if self._stopping:
                fut.set_exception(RuntimeError("committer is stopped"))
                return fut
            self._queue.append((records, fut))
            self._cond.notify()
        return fut

    def commit_once(self) -> int:
        """Commit every queued batch in one round; return how many were taken."""
        with self._cond:
            work, self._queue = self._queue, []
        if not work:
            return 0
        done: list[Future[Ack]] = []
        failure: BaseException | None = None
        for records, fut in work:
            if failure is None:
                try:
                    self.journal.append(records)
                    done.append(fut)
                    continue
                except Exception as exc:  # noqa: BLE001 - handed to every waiter below
                    failure = exc
                    self._tell(exc)
            fut.set_exception(failure)
        if done:
            try:
                ack = Ack(*self.journal.sync())
            except Exception as exc:  # noqa: BLE001 - an fsync failure fails the round
                self._tell(exc)  # the group shows the error before any waiter wakes
                for fut in done:
                    fut.set_exception(exc)
                raise
            for fut in done:
                fut.set_result(ack)
        self.rounds += 1
        return len(work)

    def _tell(self, exc: BaseException) -> None:
        if isinstance(exc, JournalSyncError) and self._on_sync_failure is not None:
            self._on_sync_failure(exc)

    def start(self) -> None:
        """Run rounds in a background thread until :meth:`stop`."""
        self._thread = threading.Thread(
            target=self._run, name=f"commit-{self.journal.group}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._queue:
                    return
            try:
                self.commit_once()
            except Exception:  # top of a background loop: log loudly, keep serving
                log.exception("group %s: commit round failed", self.journal.group)

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
