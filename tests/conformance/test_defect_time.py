# fails on ece6b4a:
#   old time: history 1..5 lost; listed [6, 7, 8] (a retention gap after one write 2 h old)
#   -1: accepted (must be INVALID_ARGUMENT naming source_time_unix_ns)
#   +1 h: accepted (must be INVALID_ARGUMENT naming source_time_unix_ns)
"""Issue 11, defect 4: a source clock must never delete history. The target's receive
time (trusted time) decides retention, checkpoints and expiry; a source time that goes
backwards is clamped to the previous record's, one more than 300 s ahead of the target's
clock or not positive is INVALID_ARGUMENT naming source_time_unix_ns.

fails on ece6b4a: see each test's "Today:".
"""

from __future__ import annotations

import time

import grpc

from tests.conformance.conftest import Client, refused

S = 10**9


def _history(client: Client) -> int:
    """Five batches stamped about 60 s ago; returns the next seq."""
    client.open()
    base = time.time_ns() - 60 * S
    for seq in range(1, 6):
        client.send([client.write(seq, bytes([seq]) * 512, offset=seq * 512, ts=base + seq)])
    return 6


def _assert_history_kept(client: Client) -> None:
    time.sleep(2.5)  # several checkpoint/retention passes
    seqs = {p.seq for p in client.points()}
    assert set(range(1, 6)) <= seqs, f"history 1..5 lost; listed {sorted(seqs)}"
    causes = [s.cause for s in client.timeline().spans if not s.restorable]
    assert "retention" not in causes, causes


def test_defect4_old_source_time_keeps_history(client: Client) -> None:
    """One write stamped 2 h ago inside a 1 h window deletes nothing; it is acked (its
    time clamped to the previous record's) and history 1..5 stays restorable.

    Today: points 1..5 are dropped as a retention gap about a second later.
    """
    nxt = _history(client)
    client.send([client.write(nxt, b"o" * 512, ts=time.time_ns() - 7200 * S)])
    client.send([client.write(nxt + 1, b"p" * 512)])
    client.send([client.write(nxt + 2, b"q" * 512)])
    _assert_history_kept(client)
    times = [p.source_time_unix_ns for p in client.points()]
    assert times == sorted(times), "point times go backwards"


def test_defect4_negative_source_time_refused(client: Client) -> None:
    """source_time_unix_ns = -1 is INVALID_ARGUMENT naming the field; nothing is lost.

    Today: accepted, and history 1..5 is dropped.
    """
    nxt = _history(client)
    e = refused(lambda: client.send([client.write(nxt, b"n" * 512, ts=-1)], timeout=15))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "source_time_unix_ns" in e.details()
    _assert_history_kept(client)


def test_defect4_future_source_time_refused(client: Client) -> None:
    """A time 1 h ahead of the target's clock (beyond the 300 s skew allowed) is
    INVALID_ARGUMENT naming source_time_unix_ns; history is kept.

    Today: accepted.
    """
    nxt = _history(client)
    ahead = time.time_ns() + 3600 * S
    e = refused(lambda: client.send([client.write(nxt, b"f" * 512, ts=ahead)], timeout=15))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "source_time_unix_ns" in e.details()
    _assert_history_kept(client)
