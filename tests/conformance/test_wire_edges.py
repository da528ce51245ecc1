"""Issue 11 (wire half): bad input at the edges of the contract is INVALID_ARGUMENT naming
the field, never UNKNOWN, and leaves the group readable afterwards.

fails on 6be6e43:
  page_token "0:0:0": UNKNOWN (struct.error)
  at "²": UNKNOWN (ValueError: str.isdigit() passes, int() raises)
  consistency marker labels cg-x, cg--1, cg-<20 digits>: acked; afterwards timeline,
  points and ReadImage answer UNKNOWN
"""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

from tests.conformance.conftest import KIND_CG, Client, refused


@pytest.mark.parametrize("token", ["0:0:0", "-1:-1:-1", "1:99999999999999999999:0", "x"])
def test_bad_page_token_names_it(client: Client, token: str) -> None:
    """A page token this target never handed out is INVALID_ARGUMENT naming page_token."""
    client.open()
    client.send([client.write(1, b"a" * 512)])
    req = client.wire.ListRestorePointsRequest(group_id=client.group, page_token=token)
    e = refused(lambda: client.stub.ListRestorePoints(req, timeout=15))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
    assert "page_token" in e.details()


@pytest.mark.parametrize("at", ["\u00b2", "\u0661\u0662", "99999999999999999999999"])
def test_at_that_only_looks_numeric(client: Client, at: str) -> None:
    """Unicode digits are not a seq; a seq past 64 bits is no point: never UNKNOWN."""
    client.open()
    client.send([client.write(1, b"a" * 512)])
    e = refused(lambda: client.read(at, dry_run=True))
    assert e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), e.details()
    if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
        assert "at" in e.details()


@pytest.mark.parametrize("label", ["cg-x", "cg--1", "cg-0", "cg-01", "cg-" + "9" * 20, "cg-"])
def test_bad_cg_label(client: Client, label: str) -> None:
    """Only cg-<n> (n from 1, no leading zeros, below 2**63) is a consistency label; a bad
    one is INVALID_ARGUMENT naming the record's label, and the group's timeline, points
    and images still answer."""
    client.member_id = "h1"
    client.open()
    client.send([client.write(1, b"a" * 512)])
    e = refused(lambda: client.send([client.marker(2, KIND_CG, label)], timeout=15))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
    assert "records[0]" in e.details() and "label" in e.details()
    client.close_stream()
    client.open(next_seq=2)
    client.send([client.marker(2, KIND_CG, "cg-1")])
    assert client.timeline().spans
    client.points()
    assert client.read("latest", dry_run=True)[0].point.seq >= 1


def test_reflection_v1alpha_still_served(client: Client) -> None:
    """Older tools use grpc.reflection.v1alpha.ServerReflection; it keeps answering."""
    call = client.channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    answers = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                        timeout=10))  # fmt: skip
    names = [s.name for s in answers[0].list_services_response.service]
    assert "cdp.v1.ReplicationService" in names and "grpc.reflection.v1.ServerReflection" in names
