"""A member's encryption detector on the data path: fed off the loop, turned into verdicts.

Every batch that became durable goes, in order, to the member's
:class:`cdp.target.detect.Detector` on one worker thread of its own (the detector is
cheap, but a batch of 8192 records is milliseconds of Python the event loop should not
wait for). Its events come back to the loop and are told to the member's
:class:`cdp.target.verdicts.Verdicts`: training ended (``start_watching``), a suspicion
raised (with a WARNING in the log) or closed.

The learned baseline is persisted in the index meta (``detect/<member key>``) when
training ends, so a restarted target judges at once. What a restart loses: the region
map (until a region is written again, an overwrite of it counts as a write into new
space), the CUSUMs and the windows in flight; a member restarted before its training
ended trains again from the start. An open detector suspicion stays open across a
restart and is closed by the restarted detector once the signal is quiet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from cdp.journal.index import Index
from cdp.record import Record
from cdp.restore.spec import format_ns
from cdp.status import DetectorStatus
from cdp.target.detect import (
    Closed,
    Detector,
    DetectorConfig,
    DetectorState,
    Event,
    Raised,
    Watching,
)
from cdp.target.verdicts import Verdicts
from cdp.verdict import DETECTOR, Suspicion

log = logging.getLogger("cdp.target")

BASELINE_META = "detect"
"""Index meta key prefix (``<prefix>/<member key>``) of a member's learned baseline."""


class Detection:
    """One member's detector, fed durable batches in order, off the event loop."""

    def __init__(
        self, index: Index, member_key: str, capacities: Sequence[int], training_s: float,
        verdicts: Verdicts,
    ) -> None:  # fmt: skip
        self._index, self._key, self._verdicts = index, member_key, verdicts
        raw = index.get_meta(f"{BASELINE_META}/{member_key}")
        self._detector = Detector(
            capacities, DetectorConfig(training_s=training_s),
            baseline=json.loads(raw) if raw else None, alarmed=self._open() is not None,
        )  # fmt: skip
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: set[asyncio.Future[list[Event]]] = set()

    def set_resyncing(self, active: bool) -> None:
        """A resync is open (from the journal's events, on open): its writes are not judged."""
        self._detector.set_resyncing(active)

    def durable(self, records: list[Record], received_ns: int, fut: asyncio.Future[object]) -> None:
        """Done callback of a batch's commit: judge it if it became durable."""
        if fut.cancelled() or fut.exception() is not None or not records:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"detect-{self._key}")
        self._submit(received_ns, partial(self._detector.observe, records, received_ns))

    def tick(self, now_ns: int, next_seq: int) -> None:
        """Judge the windows that ended by ``now_ns`` without a record (an idle member).

        Queued behind the batches handed over before; ``next_seq`` is the first seq not
        yet durable (where watching starts if training ends on this tick).
        """
        if self._pool is not None:  # nothing was fed yet: nothing to judge
            self._submit(now_ns, partial(self._detector.tick, now_ns, next_seq))

    def _submit(self, ns: int, work: Callable[[], list[Event]]) -> None:
        assert self._pool is not None
        job = asyncio.wrap_future(self._pool.submit(work))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        job.add_done_callback(partial(self._judged, ns))

    async def settled(self) -> None:
        """Wait until every durable batch handed over so far was judged."""
        if self._jobs:
            await asyncio.wait(set(self._jobs))

    def close(self) -> None:
        """End the worker thread (after the last batch)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def state(self) -> DetectorState:
        """What the detector is doing now."""
        return self._detector.state()

    def status(self) -> DetectorStatus:
        """Phase, training end and first judged seq, as status surfaces show them."""
        state, since = self._detector.state(), self._verdicts.watched_from_seq
        # training ends on the worker thread; it is shown once the loop has been told
        phase = state.phase if since or state.phase == "training" else "training"
        return DetectorStatus(phase, state.training_until_ns, since)

    def _judged(self, received_ns: int, job: asyncio.Future[list[Event]]) -> None:
        if job.cancelled():
            return
        if (exc := job.exception()) is not None:  # the top of this background path
            log.error("group %s: the encryption detector failed on the batch or tick of %s: "
                      "%r", self._key, format_ns(received_ns), exc)  # fmt: skip
            return
        for event in job.result():
            self._tell(event)

    def _tell(self, event: Event) -> None:
        if isinstance(event, Watching):
            self._index.put_meta(
                f"{BASELINE_META}/{self._key}",
                json.dumps(self._detector.baseline(), sort_keys=True).encode(),
            )
            self._verdicts.start_watching(event.seq)
            log.info("group %s: encryption detector trained; judging from seq %d", self._key,
                     event.seq)  # fmt: skip
        elif isinstance(event, Raised):
            s = self._verdicts.raise_(
                event.start_seq, event.start_ns, disks=event.disks, signal=event.signal,
                now_ns=time.time_ns(),
            )  # fmt: skip
            log.warning(
                "group %s: SUSPECTED ENCRYPTION (%s) from seq %d (%s), disks %s: %s; restore "
                "points from there on are suspect", self._key, s.id, s.start_seq,
                format_ns(s.start_ns), list(s.disks) or "all", s.signal,
            )  # fmt: skip
        elif isinstance(event, Closed) and (open_ := self._open()) is not None:
            end_seq = max(event.end_seq, open_.start_seq)
            self._verdicts.close(open_.id, end_seq, max(event.end_ns, open_.start_ns))
            log.warning("group %s: the encryption signal of %s stopped at seq %d", self._key,
                        open_.id, end_seq)  # fmt: skip

    def _open(self) -> Suspicion | None:
        """The newest open suspicion the detector raised (None: none is open)."""
        mine = [s for s in self._verdicts.all() if s.is_open and s.raised_by == DETECTOR]
        return mine[-1] if mine else None
