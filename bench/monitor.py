"""Watching a running target: its status over gRPC and its /proc counters, every poll.

Owns :class:`Monitor` (the polling task of an ingest case), its :class:`Sample` readings
and what is derived from them alone (:func:`journaled_rates`). It never starts or stops
a process (bench/processes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from bench.processes import CaseError
from bench.procfs import ThreadCpu, proc_cpu_s, proc_io, proc_threads_cpu_s


@dataclass
class Sample:
    """One reading of the target during a case."""

    t_s: float
    durable_seq: int
    applied_seq: int
    target_cpu_s: float
    received_bytes: int = 0
    """Guest bytes the target took into the journal so far (its status' received_bytes)."""


@dataclass
class Monitor:
    """Polls the target's status and the processes' /proc counters."""

    address: str
    target_pid: int
    poll_s: float
    group: str = field(kw_only=True)
    """The consistency group whose durable and applied seq are read."""
    tls_dir: str = ""
    """An operator's certificate folder for the status calls ("" for plain text)."""
    t0: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    source_pid: int = 0
    source_io: dict[str, int] = field(default_factory=dict)
    source_threads: ThreadCpu = field(default_factory=dict)
    """The source's per-thread CPU at its last reading before it exited."""
    task: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Begin polling in a task of the running event loop."""
        self.task = asyncio.ensure_future(self.run())

    async def stop(self) -> None:
        """Cancel the polling task and wait for it to end."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def run(self) -> None:
        """Poll until cancelled: one :class:`Sample` every ``poll_s``."""
        from cdp import tls
        from cdp.errors import RemoteError
        from cdp.rpc.client import ReplicationClient

        creds = tls.load_client_tls(self.tls_dir) if self.tls_dir else None
        client = ReplicationClient(self.address, creds)
        try:
            while True:
                durable = applied = received = 0
                with contextlib.suppress(RemoteError):
                    for g in (await client.status("")).groups:
                        if g.group_id == self.group:
                            durable, applied = g.durable_seq, g.applied_seq
                            received = g.received_bytes
                cpu = proc_cpu_s(self.target_pid)
                t = round(time.monotonic() - self.t0, 3)
                self.samples.append(Sample(t, durable, applied, cpu, received))
                if self.source_pid:
                    self.source_io = proc_io(self.source_pid) or self.source_io
                    self.source_threads = proc_threads_cpu_s(self.source_pid) or self.source_threads
                await asyncio.sleep(self.poll_s)
        finally:
            await client.close()

    @property
    def latest(self) -> Sample | None:
        """The newest sample, if any."""
        return self.samples[-1] if self.samples else None

    async def wait_for(self, attr: str, seq: int, timeout_s: float) -> bool:
        """Wait until the newest sample's ``attr`` reaches ``seq``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.task is not None and self.task.done():
                raise CaseError(f"polling the target failed: {self.task.exception()!r}")
            s = self.latest
            if s is not None and getattr(s, attr) >= seq:
                return True
            await asyncio.sleep(self.poll_s / 2)
        return False

    def first_time(self, attr: str, seq: int) -> float | None:
        """Seconds since the start at which ``attr`` first reached ``seq`` (None: never)."""
        return next((s.t_s for s in self.samples if getattr(s, attr) >= seq), None)

    def apply_lag_s(self, seq: int) -> float | None:
        """Seconds from the first sample with ``seq`` durable to the first with it applied."""
        t_durable = self.first_time("durable_seq", seq)
        t_applied = self.first_time("applied_seq", seq)
        return None if t_durable is None or t_applied is None else max(0.0, t_applied - t_durable)

    def apply_backlog_max(self) -> int:
        """The most records any sample showed durable but not yet applied."""
        return max((s.durable_seq - s.applied_seq for s in self.samples), default=0)


def journaled_rates(samples: list[Sample], final_seq: int) -> tuple[float, float, float]:
    """(records/s, MB/s, seconds) the target made durable, from the first status reading
    that showed a durable record to the first that showed ``final_seq`` durable."""
    first = next((s for s in samples if s.durable_seq > 0), None)
    last = next((s for s in samples if s.durable_seq >= final_seq), None)
    if first is None or last is None or last.t_s <= first.t_s:
        return 0.0, 0.0, 0.0
    span = last.t_s - first.t_s
    records = (last.durable_seq - first.durable_seq) / span
    mb = (last.received_bytes - first.received_bytes) / span / 1e6
    return round(records, 1), round(mb, 2), round(span, 3)
