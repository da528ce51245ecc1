"""Conformance: the handshake (OpenSession) and its answers.

Contract (docs/PROTOCOL.md "Handshake"): a new group answers durable_seq 0, no resync, and
positive limits; the batch payload cap fits the worst-case LZ4 frame of the largest write;
protocol_version other than 1 is FAILED_PRECONDITION; a malformed name is INVALID_ARGUMENT
naming the field; re-declaring other VMs/capacities is FAILED_PRECONDITION naming vms.
"""

from __future__ import annotations

import grpc

from tests.conformance.conftest import Client, MiB, refused


def test_new_group_handshake(client: Client) -> None:
    """A first handshake: a session id, durable 0, no resync, positive limits."""
    r = client.open()
    assert r.session_id and r.durable_seq == 0 and r.durable_source_time_unix_ns == 0
    assert not r.resync_required and r.resync_reason == ""
    assert r.max_batch_payload_bytes > 0 and r.max_batch_records > 0
    assert r.window_bytes >= r.max_batch_payload_bytes


def test_resume_point_after_writes(client: Client) -> None:
    """A re-open answers the durable seq and its source time."""
    client.open()
    ts = 1_700_000_000_000_000_000
    client.send([client.write(1, b"a" * 512, ts=ts), client.write(2, b"b" * 512, ts=ts + 5)])
    r = client.open(next_seq=3, oldest_held_seq=0)
    assert (r.durable_seq, r.durable_source_time_unix_ns, r.resync_required) == (2, ts + 5, False)


def test_unsupported_protocol_version(client: Client) -> None:
    """protocol_version 2 is FAILED_PRECONDITION naming protocol_version."""
    e = refused(lambda: client.open(protocol_version=2))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "protocol_version" in e.details()


def test_bad_group_id(client: Client) -> None:
    """A group id outside [A-Za-z0-9._-] is INVALID_ARGUMENT naming group_id."""
    e = refused(lambda: client.open(group_id="bad/name"))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "group_id" in e.details()


def test_capacity_change_on_reopen(client: Client) -> None:
    """Re-opening with another capacity is FAILED_PRECONDITION naming vms."""
    client.open()
    e = refused(lambda: client.open(vms=[(client.vms[0][0], [8 * MiB])]))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "vms" in e.details()
