"""A shaping TCP proxy on loopback: a WAN link model between a source and a target.

Per direction it models a link of ``rate_bytes_s`` (0: unlimited) with ``delay_s`` of
one-way latency: a chunk leaves when the link has finished serialising the previous ones
(``len / rate`` each) and arrives ``delay_s`` later. At most ``queue_bytes`` wait in the
proxy per direction; beyond that it stops reading, so the sender feels TCP backpressure
as on a real bottleneck. ``outage()`` drops every connection and refuses new ones until
``restore()``; ``stall = True`` stops forwarding without closing anything (a hung link).
Used by ``bench/suite.py`` and by the fault tests; ``tc netem`` would need root and a
network namespace, which this machine does not grant.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass

CHUNK_BYTES = 16384
"""Largest piece read at once; smaller pieces keep serialisation smooth at low rates."""
MIN_QUEUE_BYTES = 256 * 1024
UNCAPPED_QUEUE_BYTES = 64 * 2**20
"""In flight on a link with latency but no cap: more than any delay x loopback rate here."""


@dataclass(frozen=True)
class LinkModel:
    """A link: bandwidth per direction (bytes/s, 0 = unlimited) and one-way delay (s)."""

    name: str = "loopback"
    rate_bytes_s: float = 0.0
    delay_s: float = 0.0

    @property
    def rtt_s(self) -> float:
        """Round-trip time the proxy adds."""
        return 2 * self.delay_s

    def queue_bytes(self) -> int:
        """Bytes the proxy holds per direction: the bandwidth-delay product plus 256 KiB of
        bottleneck buffer (an uncapped link holds up to :data:`UNCAPPED_QUEUE_BYTES`)."""
        if not self.rate_bytes_s:
            return UNCAPPED_QUEUE_BYTES
        return MIN_QUEUE_BYTES + int(self.rate_bytes_s * self.delay_s)


def mbit(n: float) -> float:
    """Bytes per second of ``n`` Mbit/s."""
    return n * 1e6 / 8


class _Direction:
    """One direction of one connection: the link's clock and its in-flight chunks."""

    def __init__(self, link: LinkModel) -> None:
        self.link = link
        self.busy_until = 0.0
        self.queued = 0
        self.chunks: collections.deque[tuple[float, bytes]] = collections.deque()
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()

    def admit(self, data: bytes) -> None:
        """Schedule ``data``: its arrival time is serialisation end + delay."""
        now = time.monotonic()
        start = max(now, self.busy_until)
        rate = self.link.rate_bytes_s
        self.busy_until = start + (len(data) / rate if rate else 0.0)
        self.chunks.append((self.busy_until + self.link.delay_s, data))
        self.queued += len(data)
        if self.queued >= self.link.queue_bytes():
            self.room.clear()
        self.ready.set()

    def pop(self) -> tuple[float, bytes]:
        due, data = self.chunks.popleft()
        self.queued -= len(data)
        if self.queued < self.link.queue_bytes():
            self.room.set()
        if not self.chunks:
            self.ready.clear()
        return due, data


class LinkProxy:
    """Forwards 127.0.0.1:<port> to ``upstream`` through a :class:`LinkModel`."""

    def __init__(self, upstream: str, link: LinkModel = LinkModel()) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.link = link
        self.down = False
        self.stall = False
        """While set, nothing is forwarded and no connection is closed (a hung link)."""
        self.outages = 0
        self.bytes_forwarded = 0
        self.bytes_up = 0
        """Bytes forwarded towards the upstream (source to target)."""
        self.first_up_s = 0.0
        self.last_up_s = 0.0
        """When the first and the latest of those bytes left (time.monotonic; 0: none yet)."""
        self.address = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> LinkProxy:
        """Listen on a free loopback port (``self.address``)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        if self.down:  # the link went down while connecting upstream
            writer.transport.abort()
            up_w.transport.abort()
            return
        self._writers |= {writer, up_w}
        for src, dst, up in ((reader, up_w, True), (up_r, writer, False)):
            d = _Direction(self.link)
            for coro in (self._read(src, d, dst), self._write(d, dst, up)):
                task = asyncio.ensure_future(coro)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _read(
        self, src: asyncio.StreamReader, d: _Direction, dst: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await src.read(CHUNK_BYTES):
                await d.room.wait()
                d.admit(data)
        except (ConnectionError, OSError):
            pass
        d.chunks.append((0.0, b""))  # end of stream
        d.ready.set()

    def wire_rate_up(self) -> float:
        """Bytes per second towards the upstream, from the first such byte to the latest."""
        span = self.last_up_s - self.first_up_s
        return self.bytes_up / span if span > 0 else 0.0

    async def _write(self, d: _Direction, dst: asyncio.StreamWriter, up: bool = False) -> None:
        try:
            while True:
                await d.ready.wait()
                due, data = d.pop()
                if not data:
                    break
                while self.stall:
                    await asyncio.sleep(0.01)
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                self.bytes_forwarded += len(data)
                if up:
                    self._count_up(len(data))
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    def _count_up(self, n: int) -> None:
        now = time.monotonic()
        self.first_up_s = self.first_up_s or now
        self.last_up_s = now
        self.bytes_up += n

    def outage(self) -> None:
        """The link goes down: drop every connection and refuse new ones."""
        self.outages += 1
        self._drop()

    def _drop(self) -> None:
        self.down = True
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        """The link comes back."""
        self.down = False

    async def close(self) -> None:
        """Stop listening and drop everything."""
        self._drop()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
