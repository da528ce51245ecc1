"""The --at grammar (cdp.restore.spec): one typed value per spec, bad input names the field."""

from __future__ import annotations

import pytest

from cdp.errors import InvalidInputError
from cdp.restore.spec import (
    AtBookmark,
    AtSeq,
    AtTime,
    Latest,
    check_bookmark_name,
    format_ns,
    parse_at,
)


def test_each_form_parses_to_its_value() -> None:
    assert parse_at(" latest ") == Latest()
    assert parse_at("42") == AtSeq(42)
    assert parse_at("2024-01-02T03:04:05Z") == AtTime(1_704_164_645_000_000_000,
                                                      "2024-01-02T03:04:05Z")  # fmt: skip
    assert parse_at("before-upgrade") == AtBookmark("before-upgrade")


def test_time_round_trips_through_its_string_form() -> None:
    ns = 1_704_164_645_123_000_000
    spec = parse_at(format_ns(ns))
    assert isinstance(spec, AtTime) and abs(spec.ns - ns) < 1000  # float seconds inside


@pytest.mark.parametrize("text", ["", "   ", "2024-13-45"])
def test_bad_spec_names_the_field(text: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_at(text, "--at")
    assert err.value.field == "--at"


@pytest.mark.parametrize("name", ["latest", "17", "2024-01-02", " pad"])
def test_bookmark_names_that_read_as_another_spec_are_refused(name: str) -> None:
    with pytest.raises(InvalidInputError, match="name"):
        check_bookmark_name("name", name)
