"""``last-clean`` in the ``--at`` grammar: its own spec kind, and a name no bookmark may take."""

from __future__ import annotations

import pytest

from cdp.errors import InvalidInputError
from cdp.restore.clean import combine
from cdp.restore.spec import LastClean, check_bookmark_name, parse_at
from cdp.verdict import CLEAN, SUSPECT, UNKNOWN


def test_last_clean_parses_to_its_kind_with_outer_space_ignored() -> None:
    assert parse_at("last-clean") == LastClean() == parse_at("  last-clean\n")
    assert parse_at("last-cleaner").__class__.__name__ == "AtBookmark"


def test_no_bookmark_may_be_named_last_clean() -> None:
    with pytest.raises(InvalidInputError, match="name: 'last-clean' reads as"):
        check_bookmark_name("name", "last-clean")


@pytest.mark.parametrize(
    ("members", "group"),
    [((CLEAN, CLEAN), CLEAN), ((CLEAN, UNKNOWN), UNKNOWN), ((UNKNOWN, SUSPECT), SUSPECT),
     ((SUSPECT, CLEAN), SUSPECT), ((), CLEAN)],
)  # fmt: skip
def test_a_group_point_is_as_bad_as_its_worst_member(members: tuple[str, ...], group: str) -> None:
    assert combine(members) == group
