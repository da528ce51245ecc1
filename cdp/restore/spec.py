"""The ``--at`` grammar: what names a restore point, and the names and times inside it.

A spec is ``latest``, ``last-clean`` (the newest point whose verdict is clean), a seq
(for a group on several hosts: a consistency marker number), an ISO-8601 time, or a
bookmark name; :func:`parse_at` turns the text into one
typed value. Bookmark names are checked here too (:func:`check_bookmark_name`), so that
no name can read as another spec. Times have one string form (:func:`format_ns`) and
one parser (:func:`parse_time`). Pure: imports only value modules; never looks a point up.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cdp.errors import InvalidInputError

TIME_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}")
"""What an ISO-8601 restore point spec starts with."""
LATEST = "latest"
"""The spec of the newest restorable point."""
LAST_CLEAN = "last-clean"
"""The spec of the newest restorable point whose verdict is clean (see cdp.verdict)."""
MAX_LABEL = 128
"""Longest bookmark name or marker label, in characters."""
MIN_NS, MAX_NS = -(2**63) + 1, 2**63 - 1
"""Times are signed 64-bit Unix nanoseconds on the wire and in the index."""


@dataclass(frozen=True)
class Latest:
    """The newest restorable point."""


@dataclass(frozen=True)
class LastClean:
    """The newest restorable point whose verdict is clean."""


@dataclass(frozen=True)
class AtSeq:
    """A point by number: a seq, or a consistency marker number for a multi-host group."""

    n: int


@dataclass(frozen=True)
class AtTime:
    """The newest point at or before a time."""

    ns: int
    """Unix nanoseconds."""
    text: str
    """The time as the operator wrote it (for messages)."""


@dataclass(frozen=True)
class AtBookmark:
    """A point by bookmark name."""

    name: str


AtSpec = Latest | LastClean | AtSeq | AtTime | AtBookmark
"""A parsed ``--at``."""


def parse_at(text: str, field: str = "at") -> AtSpec:
    """The typed value of a restore point spec (outer white space ignored), or raise."""
    text = text.strip()
    if not text:
        raise InvalidInputError(
            field, "give latest, last-clean, a restore point seq, a time or a bookmark"
        )
    if text == LATEST:
        return Latest()
    if text == LAST_CLEAN:
        return LastClean()
    if is_decimal(text):
        return AtSeq(int(text))
    if TIME_LIKE.match(text):
        return AtTime(parse_time(field, text), text)
    return AtBookmark(text)


def is_decimal(text: str) -> bool:
    """Whether ``text`` is ASCII digits only (``str.isdigit`` passes "²", which int refuses)."""
    return text.isascii() and text.isdecimal()


MARKER_PREFIX = "cg-"
"""Consistency marker labels are ``cg-<n>``."""
MAX_MARKER = 2**63 - 1
"""Largest consistency marker number (a signed 64-bit value, like seqs on the wire)."""


def parse_marker_label(label: str) -> int | None:
    """The number of a ``cg-<n>`` label (n decimal from 1, no leading zeros); None otherwise."""
    digits = label[len(MARKER_PREFIX) :]
    if not label.startswith(MARKER_PREFIX) or not is_decimal(digits) or digits[0] == "0":
        return None
    n = int(digits)
    return n if n <= MAX_MARKER else None


def format_ns(ns: int) -> str:
    """An ISO-8601 UTC time with milliseconds."""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")


FRACTION = re.compile(r"(T\d{2}:\d{2}:\d{2})[.,](\d+)")
"""The fraction of a second of an ISO-8601 time (kept to the nanosecond, not to the µs)."""


def parse_time(field_name: str, text: str) -> int:
    """Unix ns of an ISO-8601 time, exact to the nanosecond; a time without zone is UTC."""
    frac_ns, whole = 0, text.replace("Z", "+00:00")
    if m := FRACTION.search(whole):
        digits = m.group(2)
        if len(digits) > 9 or not is_decimal(digits):
            raise InvalidInputError(field_name, f"{text!r}: at most nine fraction digits")
        frac_ns = int(digits.ljust(9, "0"))
        whole = whole[: m.start()] + m.group(1) + whole[m.end() :]
    try:
        t = dt.datetime.fromisoformat(whole)
    except ValueError as exc:
        raise InvalidInputError(field_name, f"{text!r} is not an ISO-8601 time") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    seconds = (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(seconds=1)
    ns = seconds * 10**9 + frac_ns
    if not MIN_NS <= ns <= MAX_NS:
        raise InvalidInputError(field_name, f"{text!r} is outside 1678..2261 (Unix nanoseconds)")
    return ns


def check_label(field: str, raw: bytes) -> str:
    """Decode and check a marker label or bookmark name: 1-128 printable characters."""
    try:
        label = raw.decode()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(field, "is not UTF-8") from exc
    if not 0 < len(label) <= MAX_LABEL or not label.isprintable():
        raise InvalidInputError(field, f"{label!r} is not 1-{MAX_LABEL} printable characters")
    return label


def check_bookmark_name(field: str, name: str) -> str:
    """A bookmark name must be usable as ``--at``: no outer spaces, not read as another spec."""
    if name != name.strip():
        raise InvalidInputError(field, f"{name!r} starts or ends with white space")
    if name in (LATEST, LAST_CLEAN) or name.isdigit() or TIME_LIKE.match(name):  # "²" too
        raise InvalidInputError(
            field, f"{name!r} reads as 'latest', 'last-clean', a seq or a time; choose another name"
        )
    return name
