"""Conformance of the seal (docs/PROTOCOL.md "Seal"), from protos/ alone.

A planned failover calls SealGroup; the target asks the group's source on its open
StreamJournal call (StreamJournalResponse.seal_request_id, pushed at once even to an idle
source). The source holds its guest writes, sends what it holds, and once an ack covers
its last record answers with a request carrying the id and next_seq. SealGroup then
returns the member's sealed seq. A source that never answers (frozen) makes SealGroup
fail with FAILED_PRECONDITION after timeout_seconds, and the request is withdrawn (the
next response carries no id).
"""

from __future__ import annotations

import concurrent.futures
import queue
import time
from typing import Any

import grpc
import pytest

from tests.conformance.conftest import Client, refused


class Call:
    """One StreamJournal call kept open: put requests, take responses one by one."""

    def __init__(self, client: Client, timeout_s: float = 30) -> None:
        self._q: queue.Queue[Any] = queue.Queue()
        self._call = client.stub.StreamJournal(iter(self._q.get, None), timeout=timeout_s)

    def put(self, request: Any) -> Any:
        """Send one request and return the next response."""
        self._q.put(request)
        return next(self._call)

    def take(self) -> Any:
        """The next response, without sending anything (one the target pushed)."""
        return next(self._call)

    def close(self) -> None:
        """Half-close and cancel the call."""
        self._q.put(None)
        self._call.cancel()


def seal_msg(client: Client, request_id: str, next_seq: int) -> Any:
    """The source's seal: no records, no payload, the request's id and next_seq."""
    return client.wire.StreamJournalRequest(
        session_id=client.session_id, next_seq=next_seq, seal_request_id=request_id
    )


def seal_group(client: Client, timeout_s: float = 10.0, **kw: Any) -> Any:
    req = client.wire.SealGroupRequest(group_id=client.group, timeout_seconds=timeout_s, **kw)
    return client.stub.SealGroup(req, timeout=timeout_s + 30)


@pytest.fixture
def pool() -> Any:
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        yield ex


def written(client: Client, call: Call, n: int) -> None:
    """Records 1..n sent and acked on ``call``."""
    items = [client.write(seq, b"s" * 4096, offset=seq * 4096) for seq in range(1, n + 1)]
    ack = call.put(client.batch(items))
    while ack.durable_seq < n:
        ack = call.take()


def test_seal_returns_the_sources_last_durable_seq(client: Client, pool: Any) -> None:
    """Asked, the idle source hears the id at once; its seal at next_seq = 4 seals seq 3."""
    client.open()
    call = Call(client)
    try:
        written(client, call, 3)
        sealing = pool.submit(seal_group, client)
        pushed = call.take()  # the target pushes the request to an idle source
        assert pushed.seal_request_id and pushed.durable_seq == 3
        ack = call.put(seal_msg(client, pushed.seal_request_id, 4))
        assert ack.durable_seq == 3
        resp = sealing.result(timeout=20)
        assert [(m.member_id, m.sealed_seq) for m in resp.members] == [("", 3)]
        assert resp.members[0].sealed_unix_ns > 0
        assert call.put(seal_msg(client, pushed.seal_request_id, 4)).seal_request_id  # held
        assert seal_group(client, release=True).released
        assert not call.take().seal_request_id  # lifted: the source takes writes again
    finally:
        call.close()


def test_a_source_that_does_not_answer_is_refused_in_time(client: Client, pool: Any) -> None:
    """A frozen source: FAILED_PRECONDITION after timeout_seconds, and the ask withdrawn."""
    client.open()
    call = Call(client)
    try:
        written(client, call, 2)
        t0 = time.monotonic()
        sealing = pool.submit(seal_group, client, 1.0)
        assert call.take().seal_request_id  # asked; this source never answers
        with pytest.raises(grpc.RpcError) as err:
            sealing.result(timeout=20)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "did not seal within 1 s" in (err.value.details() or "")
        assert time.monotonic() - t0 < 10
        assert not call.take().seal_request_id  # withdrawn
    finally:
        call.close()


def test_a_seal_before_every_record_is_durable_is_not_confirmed(client: Client, pool: Any) -> None:
    """next_seq must be durable_seq + 1: a seal that claims less (or more) is not taken."""
    client.open()
    call = Call(client)
    try:
        written(client, call, 2)
        sealing = pool.submit(seal_group, client, 1.5)
        request_id = call.take().seal_request_id
        assert call.put(seal_msg(client, request_id, 5)).durable_seq == 2  # acked, not taken
        assert call.put(seal_msg(client, "another-id", 3)).durable_seq == 2  # not the request
        with pytest.raises(grpc.RpcError) as err:
            sealing.result(timeout=20)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        call.close()


def test_seal_refusals_name_their_cause(client: Client) -> None:
    """No source connected, an unknown group, a bad timeout: refused at once, by field."""
    client.open()
    call = Call(client)
    written(client, call, 1)
    call.close()  # the source went away
    deadline = time.monotonic() + 10
    while client.status().source_connected:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    err = refused(lambda: seal_group(client, 5.0))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no source connected" in (err.details() or "")
    bad = client.wire.SealGroupRequest(group_id=client.group, timeout_seconds=601)
    err = refused(lambda: client.stub.SealGroup(bad, timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "timeout_seconds" in (err.details() or "")
    unknown = client.wire.SealGroupRequest(group_id="no-such-group", timeout_seconds=1)
    err = refused(lambda: client.stub.SealGroup(unknown, timeout=30))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert not seal_group(client, release=True).released  # nothing was asked
