"""Conformance of the heartbeat contract (docs/PROTOCOL.md "Heartbeats"), from protos/ alone.

A source that holds nothing unacked sends a StreamJournalRequest with no records and
``next_seq`` = the seq it would give next. The target acks every heartbeat with its
durable seq; while fresh heartbeats say "fully acked" (next_seq == durable_seq + 1) the
group is idle, not lagging: GroupStatus.rpo_seconds stays small. A heartbeat whose
next_seq is anything else is acked but not counted: the RPO keeps growing.
"""

# fails before the heartbeat change: the target sends no ack for an empty batch once its
# durable seq was acked on the call (the stream waits into its deadline), and rpo_seconds
# of an idle, fully acked group grows with the age of its last write.

from __future__ import annotations

import queue
import time
from typing import Any

from tests.conformance.conftest import Client

S = 10**9


class Call:
    """One StreamJournal call kept open: put requests, take acks one by one."""

    def __init__(self, client: Client, timeout_s: float = 30) -> None:
        self._q: queue.Queue[Any] = queue.Queue()
        self._call = client.stub.StreamJournal(iter(self._q.get, None), timeout=timeout_s)

    def put(self, request: Any) -> Any:
        """Send one request and return the next ack."""
        self._q.put(request)
        return next(self._call)

    def close(self) -> None:
        """Half-close and cancel the call."""
        self._q.put(None)
        self._call.cancel()


def heartbeat(client: Client, next_seq: int) -> Any:
    """A heartbeat request: no records, no payload."""
    return client.wire.StreamJournalRequest(session_id=client.session_id, next_seq=next_seq)


def test_handshake_names_the_heartbeat_interval(client: Client) -> None:
    """The target says how often an idle source sends a heartbeat, in seconds."""
    resp = client.open()
    assert 0 < resp.heartbeat_interval_seconds <= 10


def test_heartbeats_are_acked_with_the_durable_seq(client: Client) -> None:
    """Each heartbeat gets an ack of the current durable seq, also after writes on the call."""
    client.open()
    call = Call(client)
    try:
        assert call.put(heartbeat(client, 1)).durable_seq == 0
        write = client.write(1, b"h" * 4096, ts=time.time_ns())
        assert call.put(client.batch([write])).durable_seq == 1
        for _ in range(2):
            ack = call.put(heartbeat(client, 2))
            assert ack.durable_seq == 1 and ack.window_bytes > 0
    finally:
        call.close()


def test_idle_fully_acked_group_has_no_rpo(client: Client) -> None:
    """Written 3 s ago, idle since, heartbeats saying fully acked: RPO stays under 2 s."""
    resp = client.open()
    interval = resp.heartbeat_interval_seconds
    call = Call(client)
    try:
        call.put(client.batch([client.write(1, b"i" * 4096, ts=time.time_ns())]))
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            call.put(heartbeat(client, 2))
            time.sleep(interval / 2)
            assert client.status().rpo_seconds < 2.0
    finally:
        call.close()


def test_heartbeat_with_other_next_seq_is_not_idle(client: Client) -> None:
    """next_seq != durable_seq + 1 (the source holds more): acked, but the RPO grows."""
    resp = client.open()
    interval = resp.heartbeat_interval_seconds
    call = Call(client)
    try:
        call.put(client.batch([client.write(1, b"j" * 4096, ts=time.time_ns())]))
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            assert call.put(heartbeat(client, 5)).durable_seq == 1
            time.sleep(interval / 2)
        assert client.status().rpo_seconds > 2.5
    finally:
        call.close()


def test_status_error_is_empty_for_a_healthy_group(client: Client) -> None:
    """GroupStatus.error names the cause only in ERROR; a healthy group has none."""
    client.open()
    client.send([client.write(1, b"k" * 512)])
    assert client.status().error == ""
