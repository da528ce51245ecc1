"""Who may mark and dismiss suspicions under mutual TLS: an operator only (never a source,
not even on its own group: a compromised host must not clear its own alert); a source may
list its own group's suspicions. Marks and dismissals name the caller's identity."""

from __future__ import annotations

import pytest
from test_tls_auth import SPEC_A, Secure, denied, secure, stream_one

from cdp.errors import RemoteError
from cdp.v1 import replication_pb2 as pb

__all__ = ["secure"]  # the fixture, shared with test_tls_auth


async def test_only_an_operator_marks_and_dismisses(secure: Secure) -> None:
    mark = pb.MarkCompromisedRequest(group_id="ga", start_seq=1, reason="EDR alert")
    async with secure.client("sources", "host-a") as source:
        session = (await source.open_session("host-a", SPEC_A, 0, 1)).session_id
        await stream_one(source, session, 1)
        with pytest.raises(RemoteError) as err:
            await source.mark_compromised(mark)
        denied(err, "MarkCompromised", "source 'host-a' is not an operator")
        assert await source.list_suspicions("ga") == []
        with pytest.raises(RemoteError) as err:
            await source.list_suspicions("gb")
        denied(err, "source 'host-a'")
    async with secure.client("operators", "ops") as ops:
        (s,) = await ops.mark_compromised(mark)
        assert s.raised_by == "operator 'ops'"
    async with secure.client("sources", "host-a") as source:
        with pytest.raises(RemoteError) as err:
            await source.dismiss_suspicion("ga", s.suspicion_id, "not me")
        denied(err, "DismissSuspicion")
        (listed,) = await source.list_suspicions("ga")
        assert not listed.dismissed
    async with secure.client("operators", "ops") as ops:
        done = await ops.dismiss_suspicion("ga", s.suspicion_id, "benign backup copy")
        assert done.dismissed_by == "operator 'ops'"
        entries = [(e.identity, e.action, e.outcome) for e in await ops.list_audit()]
    assert ("operator 'ops'", "suspicion.mark", "ok") in entries
    assert ("operator 'ops'", "suspicion.dismiss", "ok") in entries
